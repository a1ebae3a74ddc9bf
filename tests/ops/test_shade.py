"""shade: C++ kernels against the PyTorch reference, gradients, bad input."""
from __future__ import annotations

import pytest
import torch

from fastdream import ops
from fastdream.ops import reference as ref

TOL = dict(rtol=1e-5, atol=1e-5)


def _inputs(n, gen, dtype=torch.float32):
    albedo = torch.rand(n, 3, generator=gen, dtype=dtype)
    normals = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=dtype), dim=-1)
    positions = torch.randn(n, 3, generator=gen, dtype=dtype)
    light = torch.randn(3, generator=gen, dtype=dtype) * 3
    return albedo, normals, positions, light


@pytest.mark.parametrize("mode", ["albedo", "lambertian", "textureless"])
@pytest.mark.parametrize("seed", range(15))
def test_matches_reference(mode, seed):
    gen = torch.Generator().manual_seed(seed)
    albedo, normals, positions, light = _inputs(int(torch.randint(1, 500, (1,), generator=gen)), gen)
    amb = float(torch.rand(1, generator=gen))
    g = torch.rand(albedo.shape, generator=gen)
    results = []
    for fn in (ops.shade, ref.shade):
        a = albedo.clone().requires_grad_(True)
        n = normals.clone().requires_grad_(True)
        out = fn(a, n, positions, light, amb, mode)
        (out * g).sum().backward()
        results.append((out, a.grad, n.grad))
    (o1, ga1, gn1), (o2, ga2, gn2) = results
    torch.testing.assert_close(o1, o2, **TOL)
    torch.testing.assert_close(ga1, ga2 if ga2 is not None else torch.zeros_like(ga1), **TOL)
    if gn1 is not None or gn2 is not None:
        torch.testing.assert_close(gn1 if gn1 is not None else torch.zeros_like(normals),
                                   gn2 if gn2 is not None else torch.zeros_like(normals), **TOL)


@pytest.mark.parametrize("mode", ["lambertian", "textureless"])
def test_gradcheck_float64(mode):
    gen = torch.Generator().manual_seed(1)
    albedo, normals, positions, light = _inputs(20, gen, torch.float64)
    a = albedo.requires_grad_(True)
    n = normals.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: ops.shade(x, y, positions, light, 0.2, mode), (a, n))


def test_known_values():
    albedo = torch.tensor([[0.5, 1.0, 0.2], [0.5, 1.0, 0.2]])
    normals = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    positions = torch.zeros(2, 3)
    light = torch.tensor([0.0, 0.0, 5.0])
    out = ops.shade(albedo, normals, positions, light, 0.1, "lambertian")
    torch.testing.assert_close(out, torch.stack([albedo[0], albedo[1] * 0.1]))
    out = ops.shade(albedo, normals, positions, light, 0.1, "textureless")
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0, 1.0], [0.1, 0.1, 0.1]]))


def test_empty_and_bad_inputs():
    z = torch.zeros(0, 3)
    assert ops.shade(z, z, z, torch.zeros(3), 0.1, "lambertian").shape == (0, 3)
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="mode"):
        ops.shade(x, x, x, torch.zeros(3), 0.1, "phong")
    with pytest.raises(ValueError, match="normals"):
        ops.shade(x, x[:3], x, torch.zeros(3), 0.1, "lambertian")
    with pytest.raises(ValueError, match="light_position"):
        ops.shade(x, x, x, torch.zeros(4), 0.1, "lambertian")
    with pytest.raises(ValueError, match="ambient_ratio"):
        ops.shade(x, x, x, torch.zeros(3), 1.5, "lambertian")
    with pytest.raises(ValueError, match="albedo"):
        ops.shade(x.int(), x, x, torch.zeros(3), 0.1, "lambertian")


@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["albedo", "lambertian", "textureless"])
def test_cuda_matches_cpu(mode, cuda_device):
    gen = torch.Generator().manual_seed(0)
    inputs = _inputs(10000, gen)
    g = torch.rand(10000, 3, generator=gen)
    res = []
    for dev in ("cpu", cuda_device):
        # detach: on the CPU .to() returns the input itself, so requires_grad_ would leak into the CUDA pass
        a, n, p, l = (t.detach().to(dev) for t in inputs)
        a.requires_grad_(True)
        n.requires_grad_(True)
        out = ops.shade(a, n, p, l, 0.3, mode)
        (out * g.to(dev)).sum().backward()
        res.append([out.cpu(), a.grad.cpu(), None if n.grad is None else n.grad.cpu()])
    for x, y in zip(*res):
        if x is None or y is None:
            assert x is None and y is None
        else:
            torch.testing.assert_close(x, y, **TOL)
