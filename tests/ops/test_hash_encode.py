"""hash_encode: the C++ (and CUDA) kernels against the PyTorch reference, gradients, bad inputs, tcnn layout."""
from __future__ import annotations

import math

import pytest
import torch

from fastdream import ops
from fastdream.scene.encoding import HashGridEncoding
from fastdream.ops import reference as ref
from fastdream.ops.encoding import hash_grid_levels

# (n_levels, F, log2_hashmap_size, base_resolution, per_level_scale): dense-only, hashed-only and mixed grids.
CONFIGS = [
    (1, 1, 10, 4, 1.5),
    (2, 8, 8, 3, 2.0),
    (3, 4, 12, 6, 1.7),
    (4, 2, 9, 4, 1.9),
    (6, 1, 11, 8, 1.6),
    (8, 2, 14, 16, 1.447269237440378),
    (12, 4, 10, 2, 1.3),
    (16, 2, 12, 16, 1.447269237440378),
    (16, 8, 6, 2, 1.2),
]


def make(config, dtype=torch.float32, seed=0):
    L, F, log2, base, pls = config
    levels = hash_grid_levels(L, F, log2, base, pls)
    gen = torch.Generator().manual_seed(seed)
    params = (torch.rand(levels.n_params, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)
    return levels, params, gen


def border_points(levels, n: int, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """Points whose coordinates sit exactly on cell borders of random levels, plus 0 and 1."""
    lvl = torch.randint(0, levels.n_levels, (n,), generator=gen)
    scale = torch.tensor(levels.scales, dtype=torch.float64)[lvl]
    k = torch.floor(torch.rand(n, 3, generator=gen, dtype=torch.float64) * (scale[:, None] + 1))
    x = ((k - 0.5) / scale[:, None].clamp_min(1e-9)).clamp(0, 1).to(dtype)
    x[: n // 8] = 0.0
    x[n // 8: n // 4] = 1.0
    x[n // 4: n // 4 + 8, 0] = 1.0
    return x


def test_level_table_matches_tcnn_formulas():
    L, F, log2, base, pls = 16, 2, 15, 16, 1.447269237440378
    lv = hash_grid_levels(L, F, log2, base, pls)
    offset = 0
    for level in range(L):
        scale = 2.0 ** (level * math.log2(pls)) * base - 1.0
        assert abs(lv.scales[level] - scale) <= 1e-5 * scale
        res = math.ceil(lv.scales[level]) + 1
        assert lv.resolutions[level] == res
        size = min(-(-res ** 3 // 8) * 8, 2 ** log2)
        assert lv.sizes[level] == size and lv.offsets[level] == offset
        assert lv.hashed[level] == (res ** 3 > size)
        offset += size
    assert lv.n_params == offset * F
    assert any(lv.hashed) and not all(lv.hashed), "this config should mix dense and hashed levels"


@pytest.mark.parametrize("config", CONFIGS)
def test_cpu_matches_reference(config):
    levels, params, gen = make(config)
    x = torch.cat([torch.rand(1500, 3, generator=gen), border_points(levels, 500, gen)])
    out = ops.hash_encode(x, params, levels, backend="cpu")
    expected = ref.hash_encode(x, params, levels)
    assert out.shape == (2000, levels.n_levels * levels.n_features)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.abs().max() > 0.05, "random tables should give non-trivial features"


def test_mixed_config_really_mixes():
    levels = hash_grid_levels(*CONFIGS[7])
    assert any(levels.hashed) and not all(levels.hashed)


@pytest.mark.parametrize("config", [CONFIGS[2], CONFIGS[7], CONFIGS[8]])
def test_cpu_gradients_match_reference(config):
    levels, params64, gen = make(config, torch.float64)
    x64 = torch.rand(400, 3, generator=gen, dtype=torch.float64) * 1.2 - 0.1  # some clamped coordinates
    g = torch.randn(400, levels.n_levels * levels.n_features, generator=gen, dtype=torch.float64)
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
        outs = []
        for backend in ("cpu", "torch"):
            x = x64.to(dtype, copy=True).requires_grad_(True)
            params = params64.to(dtype, copy=True).requires_grad_(True)
            out = ops.hash_encode(x, params, levels, backend=backend)
            out.backward(g.to(dtype))
            outs.append((out.detach(), x.grad, params.grad))
        (o, gx, gp), (eo, egx, egp) = outs
        torch.testing.assert_close(o, eo, rtol=tol, atol=tol)
        torch.testing.assert_close(gp, egp, rtol=tol, atol=tol)
        # the input gradient scales with the finest resolution; compare relative to its magnitude
        torch.testing.assert_close(gx, egx, rtol=tol, atol=tol * float(egx.abs().max()))
        assert (gx[((x64 < 0) | (x64 > 1))] == 0).all(), "clamped coordinates get no gradient"
        assert gp.abs().sum() > 0 and gx.abs().sum() > 0


def test_gradcheck_float64():
    levels, params, gen = make((3, 2, 6, 3, 1.5), torch.float64)
    assert any(levels.hashed) and not all(levels.hashed)
    x = (torch.rand(6, 3, generator=gen, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    params.requires_grad_(True)
    fn = lambda x, p: ops.hash_encode(x, p, levels, backend="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, params), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_param_gradient_is_only_param_or_only_input():
    levels, params, gen = make(CONFIGS[3])
    x = torch.rand(100, 3, generator=gen).requires_grad_(True)
    ops.hash_encode(x, params, levels, backend="cpu").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    p = params.clone().requires_grad_(True)
    ops.hash_encode(x.detach(), p, levels, backend="cpu").sum().backward()
    # sum of trilinear weights is 1 per point and level, so the param grads sum to N * L * F
    assert float(p.grad.sum()) == pytest.approx(100 * levels.n_levels * levels.n_features, rel=1e-5)


def test_out_of_range_and_nan_inputs_are_clamped():
    levels, params, _ = make(CONFIGS[7])
    x = torch.tensor([[-0.5, 0.3, 2.0], [float("nan"), 0.5, 0.5], [float("inf"), -float("inf"), 0.2],
                      [0.0, 0.3, 1.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.2], [-1e30, 1e30, 1e38]])
    out = ops.hash_encode(x, params, levels, backend="cpu")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], out[3])
    torch.testing.assert_close(out[1], out[4])
    torch.testing.assert_close(out[2], out[5])
    torch.testing.assert_close(out, ref.hash_encode(x, params, levels))


def test_empty_input():
    levels, params, _ = make(CONFIGS[0])
    x = torch.zeros(0, 3, requires_grad=True)
    out = ops.hash_encode(x, params.requires_grad_(True), levels, backend="cpu")
    assert out.shape == (0, levels.n_levels * levels.n_features)
    out.sum().backward()
    assert params.grad.shape == params.shape and (params.grad == 0).all()


@pytest.mark.parametrize(
    "x, params_numel, dtype, match",
    [
        (torch.zeros(4, 2), None, None, "x must have shape"),
        (torch.zeros(4, 3, 1), None, None, "x must have shape"),
        ([[0.0, 0.0, 0.0]], None, None, "x must be a torch.Tensor"),
        (torch.zeros(4, 3, dtype=torch.float16), None, None, "x must be torch.float32 or torch.float64"),
        (torch.zeros(4, 3, dtype=torch.int32), None, None, "x must be torch.float32 or torch.float64"),
        (torch.zeros(4, 3), 10, None, "params must have shape"),
        (torch.zeros(4, 3), None, torch.float64, "params must be torch.float32"),
        (torch.zeros(4, 3, device="meta"), None, None, "params is on cpu but x is on meta"),
    ],
)
def test_bad_input_names_the_argument(x, params_numel, dtype, match):
    levels, params, _ = make(CONFIGS[1])
    if params_numel is not None:
        params = params[:params_numel]
    if dtype is not None:
        params = params.to(dtype)
    with pytest.raises(ValueError, match=match):
        ops.hash_encode(x, params, levels, backend="cpu")


def test_bad_options():
    levels, params, _ = make(CONFIGS[1])
    with pytest.raises(ValueError, match="backend must be one of"):
        ops.hash_encode(torch.zeros(2, 3), params, levels, backend="fast")
    with pytest.raises(ValueError, match="levels must be a HashGridLevels"):
        ops.hash_encode(torch.zeros(2, 3), params, (1, 2))
    with pytest.raises(ValueError, match="backend='cuda' needs x on a CUDA device"):
        ops.hash_encode(torch.zeros(2, 3), params, levels, backend="cuda")
    for kwargs, match in (({"n_levels": 0}, "n_levels"), ({"n_levels": 33}, "n_levels"),
                          ({"n_features_per_level": 3}, "n_features_per_level"),
                          ({"log2_hashmap_size": 31}, "log2_hashmap_size"),
                          ({"base_resolution": 0}, "base_resolution"),
                          ({"per_level_scale": float("nan")}, "per_level_scale"),
                          ({"per_level_scale": 0.5}, "per_level_scale")):
        args = dict(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            hash_grid_levels(**args)
    with pytest.raises(ValueError, match="n_input_dims must be 3"):
        HashGridEncoding(n_input_dims=2)
    with pytest.raises(ValueError, match="only tcnn HashGrid"):
        HashGridEncoding.from_tcnn_config({"otype": "Frequency"})
    with pytest.raises(ValueError, match="unknown tcnn HashGrid keys"):
        HashGridEncoding.from_tcnn_config({"otype": "HashGrid", "n_level": 4})


def test_kernel_checks_directly():
    """The C++ layer refuses tables that would read past params, for callers that bypass the wrapper."""
    from fastdream import _backend

    C = _backend.load()
    levels, params, _ = make(CONFIGS[3])
    meta, scale = levels.meta_tensor(), levels.scale_tensor()
    x = torch.rand(10, 3)
    with pytest.raises(RuntimeError, match="params has"):
        C.hash_encode_forward(x, params[:-2], meta, scale, 2)
    bad = meta.clone()
    bad[0, 1] = 0
    with pytest.raises(RuntimeError, match="level_meta row 0 is invalid"):
        C.hash_encode_forward(x, params, bad, scale, 2)
    with pytest.raises(RuntimeError, match="x must be contiguous"):
        C.hash_encode_forward(torch.rand(10, 4)[:, :3], params, meta, scale, 2)
    with pytest.raises(RuntimeError, match="n_features must be 1, 2, 4 or 8"):
        C.hash_encode_forward(x, params, meta, scale, 3)
    with pytest.raises(RuntimeError, match="level_scale"):
        C.hash_encode_forward(x, params, meta, torch.full_like(scale, float("nan")), 2)
    with pytest.raises(RuntimeError, match="grad_out must have shape"):
        C.hash_encode_backward(torch.zeros(10, 3), x, params, meta, scale, 2, True, True)


def test_module_layout_is_tcnn_layout():
    """Setting one table entry moves exactly the output column l*F + f of the points that touch it."""
    enc = HashGridEncoding.from_tcnn_config({"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
                                             "log2_hashmap_size": 14, "base_resolution": 4, "per_level_scale": 2.0})
    lv = enc.levels
    assert enc.params.shape == (lv.n_params,) and enc.n_output_dims == 8
    assert enc.tcnn_config()["per_level_scale"] == 2.0
    assert enc.params.abs().max() <= 1e-4
    with torch.no_grad():
        enc.params.zero_()
        level, feat = 2, 1
        res = lv.resolutions[level]
        vertex = (1, 2, 3)
        entry = vertex[0] + vertex[1] * res + vertex[2] * res * res  # dense levels are row-major in (x, y, z)
        enc.params[(lv.offsets[level] + entry) * 2 + feat] = 1.0
    assert not lv.hashed[level]
    x = torch.tensor([[(v - 0.5) / lv.scales[level] for v in vertex]])  # p = x * scale + 0.5 lands on the vertex
    out = enc(x)
    expected = torch.zeros(1, 8)
    expected[0, level * 2 + feat] = 1.0
    torch.testing.assert_close(out, expected)


def test_module_backends_agree_and_train():
    enc = HashGridEncoding(n_levels=6, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                           per_level_scale=1.5, backend="cpu")
    with torch.no_grad():
        enc.params.uniform_(-1, 1)
    x = torch.rand(500, 3)
    out_cpu = enc(x)
    enc.backend = "torch"
    torch.testing.assert_close(out_cpu, enc(x), rtol=1e-5, atol=1e-5)
    enc.backend = "auto"
    torch.testing.assert_close(out_cpu, enc(x.double()), rtol=1e-5, atol=1e-5)  # x is cast to the params dtype
    with pytest.raises(ValueError, match="backend must be one of"):
        HashGridEncoding(backend="nope")


@pytest.mark.cuda
@pytest.mark.parametrize("config", CONFIGS)
def test_cuda_matches_cpu(config, cuda_device):
    levels, params, gen = make(config)
    x = torch.cat([torch.rand(20000, 3, generator=gen) * 1.1 - 0.05, border_points(levels, 2000, gen)])
    x[5] = float("nan")
    g = torch.randn(x.shape[0], levels.n_levels * levels.n_features, generator=gen)
    results = []
    for dev in ("cpu", cuda_device):
        xd = x.to(dev, copy=True).requires_grad_(True)
        pd = params.to(dev, copy=True).requires_grad_(True)
        out = ops.hash_encode(xd, pd, levels)
        out.backward(g.to(dev))
        results.append((out.detach().cpu(), xd.grad.cpu(), pd.grad.cpu()))
    (o, gx, gp), (co, cgx, cgp) = results
    torch.testing.assert_close(co, o, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cgp, gp, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cgx, gx, rtol=1e-4, atol=1e-4 * float(gx.abs().max()))


@pytest.mark.cuda
def test_cuda_half_params(cuda_device):
    levels, params, gen = make(CONFIGS[7])
    x = torch.rand(5000, 3, generator=gen, device="cpu").to(cuda_device)
    p16 = params.to(cuda_device, torch.float16).requires_grad_(True)
    out = ops.hash_encode(x, p16, levels)
    assert out.dtype == torch.float32
    expected = ops.hash_encode(x, p16.detach().float(), levels)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert p16.grad.dtype == torch.float16 and torch.isfinite(p16.grad).all()


@pytest.mark.cuda
def test_cuda_matches_tcnn(cuda_device):
    pytest.importorskip("tinycudann")
    enc_t = HashGridEncoding(n_levels=16, log2_hashmap_size=15, base_resolution=16, backend="tcnn").to(cuda_device)
    enc = HashGridEncoding(n_levels=16, log2_hashmap_size=15, base_resolution=16, backend="cuda").to(cuda_device)
    with torch.no_grad():
        enc_t.params.uniform_(-1, 1)
        enc.params.copy_(enc_t.params)
    x = torch.rand(50000, 3, device=cuda_device)
    # tcnn fuses x * scale + 0.5 (fmaf), we round twice: fractions differ by up to an ulp of the finest scale
    atol = 8 * torch.finfo(torch.float32).eps * max(enc.levels.scales)
    torch.testing.assert_close(enc(x), enc_t(x), rtol=1e-4, atol=atol)
