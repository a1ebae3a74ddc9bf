"""Field: shapes and ranges, zero density outside the aabb, bad positions, normals vs finite differences."""
from __future__ import annotations

import pytest
import torch

from fastdream.scene.field import Field, trunc_exp

SMALL = dict(n_levels=4, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4, finest_resolution=32)


def make_field(backend="cpu", **kw) -> Field:
    args = dict(SMALL, backend=backend)
    args.update(kw)
    field = Field(**args)
    with torch.no_grad():
        field.encoding.params.uniform_(-0.5, 0.5)
    return field


def test_outputs_shapes_ranges_and_zero_outside():
    field = make_field(aabb=(-1.0, -0.5, -2.0, 1.0, 1.5, 0.5))
    x = torch.rand(3000, 3) * 6 - 3
    sigma, albedo = field(x)
    assert sigma.shape == (3000,) and albedo.shape == (3000, 3)
    assert sigma.dtype == torch.float32 and albedo.dtype == torch.float32
    lo, hi = field.aabb[:3], field.aabb[3:]
    inside = ((x >= lo) & (x <= hi)).all(-1)
    assert inside.any() and (~inside).any()
    assert (sigma[~inside] == 0).all()
    assert (sigma[inside] > 0).all()
    assert ((albedo >= 0) & (albedo <= 1)).all()
    torch.testing.assert_close(field.density(x), sigma)


def test_density_blob_makes_the_centre_dense():
    field = make_field()
    with torch.no_grad():
        field.encoding.params.zero_()
        field.mlp[-1].weight.zero_()
        field.mlp[-1].bias.zero_()
    sigma = field.density(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.0, 0.0]]))
    torch.testing.assert_close(sigma[0], torch.exp(torch.tensor(field.blob_density)))
    assert sigma[1] < sigma[0] / 100
    soft = make_field(density_activation="softplus")
    assert (soft.density(torch.rand(100, 3) * 2 - 1) >= 0).all()


def test_cone_blob_leaves_the_box_empty_outside_its_radius():
    field = make_field(blob_shape="cone")
    with torch.no_grad():
        field.encoding.params.zero_()
        field.mlp[-1].weight.zero_()
        field.mlp[-1].bias.zero_()
    x = torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.9, 0.0], [0.9, 0.9, 0.9]])
    sigma = field.density(x)
    r = x.norm(dim=-1)
    torch.testing.assert_close(sigma, torch.exp(field.blob_density * (1 - r / field.blob_radius)), rtol=1e-4, atol=0)
    assert sigma[3] < 1e-3 and sigma[4] < 1e-6  # the gaussian blob leaves ~1 per unit length out here
    assert make_field().density(x[3:]).min() > 0.5


def test_padded_and_bad_positions_give_zero_density_and_finite_gradients():
    field = make_field()
    x = torch.rand(64, 3) * 2 - 1
    x[:8] = float("nan")
    x[8:16] = float("inf")
    x[16:24] = 0.0  # zero padding is a valid position
    sigma, albedo, normals = field.forward_with_normals(x)
    assert (sigma[:16] == 0).all() and torch.isfinite(sigma).all()
    assert torch.isfinite(albedo).all() and torch.isfinite(normals).all()
    # NaN and inf positions clamp all 4 stencil points onto one spot: a flat density, so a zero normal
    assert (normals[:16] == 0).all()
    torch.testing.assert_close(normals[24:].norm(dim=-1), torch.ones(40))
    (sigma.sum() + albedo.sum() + normals.sum()).backward()
    for name, p in field.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    empty = field(torch.zeros(0, 3))
    assert empty[0].shape == (0,) and empty[1].shape == (0, 3)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 3\]"):
        field(torch.zeros(4, 2))


def test_bad_options():
    with pytest.raises(ValueError, match="aabb"):
        Field(aabb=(0, 0, 0, 1, 1))
    with pytest.raises(ValueError, match="aabb"):
        Field(aabb=(0, 0, 0, 1, -1, 1))
    with pytest.raises(ValueError, match="density_activation"):
        Field(density_activation="relu", **SMALL)
    with pytest.raises(ValueError, match="normal_eps"):
        Field(normal_eps=0.0, **SMALL)
    with pytest.raises(ValueError, match="blob_shape"):
        Field(blob_shape="cube", **SMALL)


def _central_difference_normals(field, x, h):
    grads = []
    for d in range(3):
        e = torch.zeros(3, dtype=x.dtype)
        e[d] = h
        grads.append((field.density(x + e) - field.density(x - e)) / (2 * h))
    return torch.nn.functional.normalize(-torch.stack(grads, -1), dim=-1)


def test_normals_match_finite_differences_on_a_smooth_field():
    """A coarse grid and the blob make a smooth density; tetrahedral normals agree with central differences."""
    field = make_field(n_levels=2, base_resolution=3, finest_resolution=5, normal_eps=1e-4).double()
    with torch.no_grad():
        field.encoding.params.uniform_(-2.0, 2.0)
    x = torch.rand(400, 3, dtype=torch.float64) * 1.6 - 0.8
    normals = field.normals(x)
    expected = _central_difference_normals(field, x, 1e-6)
    cos = (normals * expected).sum(-1)
    assert normals.dtype == torch.float64
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(400, dtype=torch.float64))
    assert cos.min() > 0.99, f"worst cosine {cos.min():.4f}"
    assert cos.median() > 0.9999


def test_blob_normals_point_outward():
    field = make_field(normal_eps=1e-3)
    with torch.no_grad():
        field.encoding.params.zero_()
        field.mlp[-1].weight.zero_()
    x = torch.randn(200, 3)
    x = x / x.norm(dim=-1, keepdim=True) * 0.5
    cos = (field.normals(x) * x / 0.5).sum(-1)
    assert cos.min() > 0.999


def test_forward_with_normals_matches_separate_calls_and_is_differentiable():
    field = make_field()
    x = torch.rand(300, 3) * 1.8 - 0.9
    sigma, albedo, normals = field.forward_with_normals(x)
    s2, a2 = field(x)
    torch.testing.assert_close(sigma, s2)
    torch.testing.assert_close(albedo, a2)
    torch.testing.assert_close(normals, field.normals(x))
    # normals are differentiable w.r.t. the parameters, and the CPU kernel path equals the reference path
    target = torch.nn.functional.normalize(torch.randn(300, 3), dim=-1)
    grads = {}
    for backend in ("cpu", "torch"):
        field.zero_grad()
        field.encoding.backend = backend
        (field.normals(x) * target).sum().backward()
        grads[backend] = {n: p.grad.clone() for n, p in field.named_parameters()}
    for name, g in grads["cpu"].items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(g, grads["torch"][name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_half_on_cpu(dtype):
    field = make_field()
    x = torch.rand(2048, 3) * 2.2 - 1.1
    with torch.autocast("cpu", dtype=dtype):
        sigma, albedo, normals = field.forward_with_normals(x)
    assert sigma.dtype == torch.float32 and torch.isfinite(sigma).all() and torch.isfinite(normals).all()
    ref_sigma, ref_albedo = field(x)
    torch.testing.assert_close(albedo, ref_albedo, rtol=0.05, atol=0.02)
    # an opacity-like density loss (as compositing gives) and a normal loss: no fp16 overflow in the MLP backward
    ((1 - torch.exp(-0.01 * sigma)).sum() + albedo.sum() + normals.sum()).backward()
    for name, p in field.named_parameters():
        assert torch.isfinite(p.grad).all(), name


def test_trunc_exp_clamps_gradient():
    x = torch.tensor([0.0, 20.0, -30.0], requires_grad=True)
    y = trunc_exp(x)
    y.sum().backward()
    torch.testing.assert_close(y.detach(), torch.exp(torch.tensor([0.0, 15.0, -30.0])))
    torch.testing.assert_close(x.grad, torch.exp(torch.tensor([0.0, 15.0, -15.0])))


def test_state_dict_roundtrip():
    a, b = make_field(), make_field()
    b.load_state_dict(a.state_dict())
    x = torch.rand(50, 3)
    torch.testing.assert_close(a(x)[0], b(x)[0])
    assert "aabb" in a.state_dict() and "encoding.params" in a.state_dict()


@pytest.mark.cuda
def test_cuda_field_matches_cpu_and_runs_under_autocast(cuda_device):
    field = make_field(backend="auto")
    x = torch.rand(4096, 3) * 2.2 - 1.1
    s_cpu, a_cpu, n_cpu = field.forward_with_normals(x)
    fg = field.to(cuda_device)
    s, a, n = fg.forward_with_normals(x.to(cuda_device))
    torch.testing.assert_close(s.cpu(), s_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.cpu(), a_cpu, rtol=1e-4, atol=1e-4)
    ok = s_cpu > 1e-3
    cos = (n.cpu()[ok] * n_cpu[ok]).sum(-1)
    assert cos.median() > 0.999
    with torch.autocast("cuda", dtype=torch.float16):
        s16, a16, n16 = fg.forward_with_normals(x.to(cuda_device))
        # an opacity-like loss, as compositing gives: d/d(raw density) stays bounded, so fp16 cannot overflow
        ((1 - torch.exp(-0.01 * s16)).sum() + a16.sum() + n16.sum()).backward()
    assert s16.dtype == torch.float32 and torch.isfinite(s16).all()
    assert torch.isfinite(fg.encoding.params.grad).all()
