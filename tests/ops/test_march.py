"""OccupancyGrid.sampling (the C++ marcher) against the reference marcher, its invariants, fixed capacity."""
from __future__ import annotations

import math

import pytest
import torch

from fastdream import OccupancyGrid
from fastdream.ops import reference as ref

AABB = [-1.0, -0.5, -0.8, 1.0, 1.5, 0.4]


def random_grid(gen, res, levels, p=0.3):
    grid = OccupancyGrid(AABB, resolution=res, levels=levels)
    occ = torch.rand(levels, res, res, res, generator=gen) < p
    grid.set_occupied(occ)
    return grid


def random_rays(n, gen, spread=4.0):
    rays_o = (torch.rand(n, 3, generator=gen) - 0.5) * spread
    target = (torch.rand(n, 3, generator=gen) - 0.5) * 1.5
    rays_d = torch.nn.functional.normalize(target - rays_o + 1e-3 * torch.randn(n, 3, generator=gen), dim=-1)
    rays_d[:5] = torch.randn(5, 3, generator=gen)  # a few random (often missing) directions
    return rays_o, rays_d


def assert_same_samples(out, expected):
    ri, ts, te = out
    e_ri, e_ts, e_te = expected
    assert ri.shape == e_ri.shape, f"{ri.shape[0]} samples vs {e_ri.shape[0]} in the reference"
    assert torch.equal(ri, e_ri)
    torch.testing.assert_close(ts, e_ts, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(te, e_te, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(30))
def test_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    res = [8, 16, 12, 32, 5][seed % 5]
    levels = 1 + seed % 3
    grid = random_grid(gen, res, levels, p=[0.05, 0.3, 0.7][seed % 3])
    rays_o, rays_d = random_rays(100, gen)
    step = [0.05, 0.017, 0.031][seed % 3]
    near, far = [(0.0, 1e10), (0.5, 3.0)][seed % 2]
    cone = 0.02 if seed % 4 == 3 else 0.0
    stratified = seed % 2 == 1
    g1 = torch.Generator().manual_seed(99)
    out = grid.march_rays(rays_o, rays_d, near_plane=near, far_plane=far, render_step_size=step,
                        stratified=stratified, cone_angle=cone, generator=g1)
    jitter = torch.rand(100, generator=torch.Generator().manual_seed(99)) if stratified else None
    expected = ref.march_rays(grid.occupied, AABB, rays_o, rays_d, near, far, step, cone, jitter=jitter)
    assert_same_samples(out, expected)


@pytest.mark.parametrize("levels", [1, 2])
def test_invariants(levels):
    gen = torch.Generator().manual_seed(levels)
    grid = random_grid(gen, 16, levels, p=0.4)
    rays_o, rays_d = random_rays(300, gen)
    near, far = 0.2, 4.0
    ri, ts, te = grid.march_rays(rays_o, rays_d, near_plane=near, far_plane=far, render_step_size=0.02,
                               stratified=True, generator=gen)
    assert ri.numel() > 1000
    # Sorted by ray, then t.
    assert (ri[1:] >= ri[:-1]).all()
    same = ri[1:] == ri[:-1]
    assert (ts[1:][same] >= te[:-1][same] - 1e-6).all()
    assert (te > ts).all()
    assert (ts >= near - 1e-6).all() and (te <= far + 1e-6).all()
    mids = (ts + te) * 0.5
    pts = rays_o[ri] + rays_d[ri] * mids[:, None]
    box = torch.tensor(grid.level_aabb(levels - 1))
    assert ((pts >= box[:3] - 1e-5) & (pts <= box[3:] + 1e-5)).all()
    assert ref.grid_lookup(grid.occupied, AABB, pts).all()
    # Every occupied lattice midpoint is sampled: the count matches a brute-force check.
    expected = ref.march_rays(grid.occupied, AABB, rays_o, rays_d, near, far, 0.02,
                                 jitter=torch.zeros(300))
    ri0, _, _ = grid.march_rays(rays_o, rays_d, near_plane=near, far_plane=far, render_step_size=0.02)
    assert ri0.shape == expected[0].shape


def test_full_grid_counts():
    grid = OccupancyGrid(AABB, resolution=8)
    gen = torch.Generator().manual_seed(0)
    rays_o, rays_d = random_rays(300, gen)
    step = 0.01
    ri, ts, te = grid.march_rays(rays_o, rays_d, render_step_size=step)
    t_near, t_far, hit = ref.ray_aabb_intersect(rays_o, rays_d, torch.tensor(AABB))
    counts = torch.bincount(ri, minlength=300)
    seg = torch.where(hit, t_far - t_near, torch.zeros_like(t_far))
    expected = torch.ceil(seg / step)
    assert ((counts - expected).abs() <= 1).all()
    assert (counts[~hit] == 0).all() and hit.sum() > 100
    torch.testing.assert_close(torch.zeros(300).index_add(0, ri, te - ts), seg, rtol=1e-4, atol=1e-4)


def test_fixed_capacity_matches_exact_and_truncates():
    gen = torch.Generator().manual_seed(5)
    grid = random_grid(gen, 16, 2)
    rays_o, rays_d = random_rays(300, gen)
    exact = grid.march_rays(rays_o, rays_d, render_step_size=0.02)
    n = exact[0].shape[0]
    assert n > 100
    for cap in (n, n + 77, n // 3, 0):
        ri, ts, te = grid.march_rays(rays_o, rays_d, render_step_size=0.02, max_samples=cap)
        assert ri.shape == (cap,) and ts.shape == (cap,) and te.shape == (cap,)
        k = min(cap, n)
        assert torch.equal(ri[:k], exact[0][:k])
        assert torch.equal(ts[:k], exact[1][:k]) and torch.equal(te[:k], exact[2][:k])
        assert (ri[k:] == -1).all() and (ts[k:] == 0).all() and (te[k:] == 0).all()


def test_alpha_threshold():
    gen = torch.Generator().manual_seed(2)
    grid = OccupancyGrid(AABB, resolution=8)
    rays_o, rays_d = random_rays(100, gen)

    def sigma_fn(ts, te, ri):
        pts = rays_o[ri.clamp_min(0)] + rays_d[ri.clamp_min(0)] * ((ts + te) / 2)[:, None]
        return 50 * torch.exp(-(pts ** 2).sum(-1) / 0.1)

    full = grid.march_rays(rays_o, rays_d, render_step_size=0.02)
    ri, ts, te = grid.march_rays(rays_o, rays_d, render_step_size=0.02, sigma_fn=sigma_fn, alpha_thre=0.01)
    alpha = 1 - torch.exp(-sigma_fn(full[1], full[2], full[0]) * (full[2] - full[1]))
    keep = alpha >= 0.01
    assert 0 < ri.numel() < full[0].numel()
    assert torch.equal(ri, full[0][keep]) and torch.equal(ts, full[1][keep])
    fri, fts, fte = grid.march_rays(rays_o, rays_d, render_step_size=0.02, sigma_fn=sigma_fn, alpha_thre=0.01,
                                  max_samples=full[0].numel() + 10)
    live = fte > fts
    assert torch.equal(fri[live], ri) and torch.equal(fts[live], ts)


def test_bad_rays_and_inputs():
    grid = OccupancyGrid(AABB, resolution=8)
    nan = float("nan")
    inf = float("inf")
    rays_o = torch.tensor([[nan, 0, 0], [0, 0, 0], [inf, 0, 0], [5, 5, 5], [0, 0, 0]])
    rays_d = torch.tensor([[1.0, 0, 0], [nan, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
    ri, ts, te = grid.march_rays(rays_o, rays_d, render_step_size=0.01)
    assert ri.numel() == 0
    ri, ts, te = grid.march_rays(torch.zeros(0, 3), torch.zeros(0, 3), render_step_size=0.01, max_samples=8)
    assert (ri == -1).all() and ri.shape == (8,)
    assert grid.march_rays(torch.zeros(0, 3), torch.zeros(0, 3))[0].shape == (0,)
    with pytest.raises(ValueError, match="render_step_size"):
        grid.march_rays(rays_o, rays_d, render_step_size=0.0)
    with pytest.raises(ValueError, match="rays_d"):
        grid.march_rays(rays_o, rays_d[:2])
    with pytest.raises(ValueError, match="rays_o"):
        grid.march_rays(rays_o.double(), rays_d)
    with pytest.raises(ValueError, match="max_samples"):
        grid.march_rays(rays_o, rays_d, max_samples=-1)
    with pytest.raises(ValueError, match="cone_angle"):
        grid.march_rays(rays_o, rays_d, cone_angle=-1.0)
    for bad in ([0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 1, 1], [0, 0, 0, nan, 1, 1], [0, 0, 0, 1, 1]):
        with pytest.raises(ValueError, match="aabb"):
            OccupancyGrid(bad)
    # The kernel guards on its own too.
    from fastdream import _backend
    with pytest.raises(RuntimeError, match="aabb"):
        _backend.load().march(rays_o, rays_d, None, grid.bitfield, [0, 0, 0, 0, 1, 1], 1, 8, 0.0, 1e10, 0.01,
                              0.0, -1)
    with pytest.raises(RuntimeError, match="bits"):
        _backend.load().march(rays_o, rays_d, None, grid.bitfield[:3], AABB, 1, 8, 0.0, 1e10, 0.01, 0.0, -1)


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(4))
def test_cuda_matches_cpu(seed, cuda_device):
    gen = torch.Generator().manual_seed(seed)
    grid = random_grid(gen, [16, 32, 128, 64][seed], 1 + seed % 3)
    rays_o, rays_d = random_rays(4000, gen)
    kw = dict(render_step_size=0.007, cone_angle=0.01 if seed == 3 else 0.0)
    cpu = grid.march_rays(rays_o, rays_d, **kw)
    grid_cuda = grid.to(cuda_device)
    gpu = grid_cuda.march_rays(rays_o.to(cuda_device), rays_d.to(cuda_device), **kw)
    assert_same_samples([t.cpu() for t in gpu], cpu)
    fixed = grid_cuda.march_rays(rays_o.to(cuda_device), rays_d.to(cuda_device), max_samples=cpu[0].numel() // 2,
                               **kw)
    assert torch.equal(fixed[0].cpu(), cpu[0][: cpu[0].numel() // 2])
