"""composite and render_weights: C++ kernels against the PyTorch reference, gradients, padding, bad input."""
from __future__ import annotations

import pytest
import torch

from fastdream import ops
from fastdream.ops import reference as ref

from tests.helpers.render import random_packed

TOL = dict(rtol=1e-5, atol=1e-5)


def _grads(fn, sigmas, rgbs, *rest, gen):
    s = sigmas.clone().requires_grad_(True)
    c = rgbs.clone().requires_grad_(True)
    colors, opac, depth = fn(s, c, *rest)
    gc = torch.rand(colors.shape, generator=gen)
    go = torch.rand(opac.shape, generator=gen)
    gd = torch.rand(depth.shape, generator=gen)
    (colors * gc).sum().add((opac * go).sum()).add((depth * gd).sum() * 0.3).backward()
    return (colors, opac, depth), (s.grad, c.grad)


@pytest.mark.parametrize("seed", range(80))
def test_composite_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    n_rays = int(torch.randint(1, 40, (1,), generator=gen))
    packed = random_packed(n_rays, gen, n_pad=int(seed % 3) * 5)
    thre = [0.0, 0.0, 0.2, 0.6][seed % 4]
    rest = (*packed[2:], n_rays, thre)
    g1 = torch.Generator().manual_seed(1000 + seed)
    g2 = torch.Generator().manual_seed(1000 + seed)
    out, grads = _grads(ops.composite, packed[0], packed[1], *rest, gen=g1)
    out_ref, grads_ref = _grads(ref.composite, packed[0], packed[1], *rest, gen=g2)
    for a, b in zip(out, out_ref):
        torch.testing.assert_close(a, b, **TOL)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, **TOL)
    assert (out[1] <= 1 + 1e-6).all()


@pytest.mark.parametrize("seed", range(50))
def test_render_weights_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    n_rays = int(torch.randint(1, 40, (1,), generator=gen))
    sigmas, _, ts, te, ri = random_packed(n_rays, gen, n_pad=4 if seed % 2 else 0)
    thre = 0.3 if seed % 3 == 0 else 0.0
    gw = torch.rand(sigmas.shape, generator=gen)
    s1 = sigmas.clone().requires_grad_(True)
    s2 = sigmas.clone().requires_grad_(True)
    w = ops.render_weights(s1, ts, te, ri, n_rays, thre)
    w_ref = ref.render_weights(s2, ts, te, ri, n_rays, thre)
    torch.testing.assert_close(w, w_ref, **TOL)
    (w * gw).sum().backward()
    (w_ref * gw).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad, **TOL)
    assert (w[ri < 0] == 0).all()


@pytest.mark.parametrize("thre", [0.0, 0.4])
def test_gradcheck_float64(thre):
    gen = torch.Generator().manual_seed(7)
    sigmas, rgbs, ts, te, ri = random_packed(6, gen, max_per_ray=6, n_pad=2, dtype=torch.float64)
    sigmas = sigmas * 0.2  # keep T away from the threshold so the step function does not jump under eps
    s = sigmas.clone().requires_grad_(True)
    c = rgbs.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ops.composite(a, b, ts, te, ri, 6, thre), (s, c))
    assert torch.autograd.gradcheck(lambda a: ops.render_weights(a, ts, te, ri, 6, thre), (s,))


def test_known_values():
    sig = torch.tensor([1.0, 2.0, 0.5])
    ts = torch.tensor([0.0, 0.5, 1.0])
    te = torch.tensor([0.5, 1.0, 2.0])
    ri = torch.tensor([0, 0, 2])
    rgb = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    colors, opac, depth = ops.composite(sig, rgb, ts, te, ri, 3)
    a0, a1, a2 = 1 - torch.exp(torch.tensor(-0.5)), 1 - torch.exp(torch.tensor(-1.0)), 1 - torch.exp(torch.tensor(-0.5))
    w1 = (1 - a0) * a1
    torch.testing.assert_close(colors[0], torch.stack([a0, w1, torch.tensor(0.0)]))
    torch.testing.assert_close(opac, torch.stack([a0 + w1, torch.tensor(0.0), a2]))
    torch.testing.assert_close(depth, torch.stack([a0 * 0.25 + w1 * 0.75, torch.tensor(0.0), a2 * 1.5]))


def test_padding_and_out_of_range_indices_are_ignored():
    gen = torch.Generator().manual_seed(3)
    sigmas, rgbs, ts, te, ri = random_packed(10, gen)
    base = ops.composite(sigmas, rgbs, ts, te, ri, 10)
    extra = 7
    bad = torch.tensor([10, 11, 10**9, -5, -1, -1, -1])
    out = ops.composite(torch.cat([sigmas, torch.rand(extra) * 5]), torch.cat([rgbs, torch.rand(extra, 3)]),
                        torch.cat([ts, torch.rand(extra)]), torch.cat([te, torch.rand(extra) + 1]),
                        torch.cat([ri, bad]), 10)
    for a, b in zip(out, base):
        torch.testing.assert_close(a, b)


def test_empty_inputs():
    e = torch.zeros(0)
    colors, opac, depth = ops.composite(e, torch.zeros(0, 3), e, e, torch.zeros(0, dtype=torch.long), 4)
    assert colors.shape == (4, 3) and (colors == 0).all() and (opac == 0).all() and (depth == 0).all()
    colors, opac, depth = ops.composite(e, torch.zeros(0, 3), e, e, torch.zeros(0, dtype=torch.long), 0)
    assert colors.shape == (0, 3) and opac.shape == (0,)
    assert ops.render_weights(e, e, e, torch.zeros(0, dtype=torch.long), 3).shape == (0,)
    # Samples but no rays: every index is out of range.
    one = torch.ones(2)
    colors, opac, _ = ops.composite(one, torch.ones(2, 3), one * 0, one, torch.tensor([0, 1]), 0)
    assert colors.shape == (0, 3)


def test_bad_inputs():
    s = torch.rand(5)
    ri = torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="sigmas"):
        ops.composite(s.half(), torch.rand(5, 3), s, s, ri, 1)
    with pytest.raises(ValueError, match="rgbs"):
        ops.composite(s, torch.rand(5, 4), s, s, ri, 1)
    with pytest.raises(ValueError, match="t_ends"):
        ops.composite(s, torch.rand(5, 3), s, s[:4], ri, 1)
    with pytest.raises(ValueError, match="ray_indices"):
        ops.composite(s, torch.rand(5, 3), s, s, ri.int(), 1)
    with pytest.raises(ValueError, match="n_rays"):
        ops.render_weights(s, s, s, ri, -1)
    with pytest.raises(ValueError, match="transmittance_thre"):
        ops.render_weights(s, s, s, ri, 1, transmittance_thre=2.0)
    with pytest.raises(ValueError, match="t_starts"):
        ops.render_weights(s, s.double(), s, ri, 1)


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(5))
def test_cuda_matches_cpu(seed, cuda_device):
    gen = torch.Generator().manual_seed(seed)
    packed = random_packed(300, gen, max_per_ray=64, n_pad=33)
    gen1 = torch.Generator().manual_seed(seed)
    out_cpu, g_cpu = _grads(ops.composite, packed[0], packed[1], *packed[2:], 300, 0.1, gen=gen1)
    cu = [t.to(cuda_device) for t in packed]

    s = cu[0].clone().requires_grad_(True)
    c = cu[1].clone().requires_grad_(True)
    colors, opac, depth = ops.composite(s, c, *cu[2:], 300, 0.1)
    gen2 = torch.Generator().manual_seed(seed)
    gc, go, gd = (torch.rand(t.shape, generator=gen2).to(cuda_device) for t in (colors, opac, depth))
    (colors * gc).sum().add((opac * go).sum()).add((depth * gd).sum() * 0.3).backward()
    for a, b in zip((colors, opac, depth, s.grad, c.grad), (*out_cpu, *g_cpu)):
        torch.testing.assert_close(a.cpu(), b, **TOL)
    w = ops.render_weights(cu[0], *cu[2:], 300, 0.1)
    torch.testing.assert_close(w.cpu(), ops.render_weights(packed[0], *packed[2:], 300, 0.1), **TOL)
