"""SampleCapacity: the fixed-capacity budget follows the real sample demand, without a host sync on the GPU."""
from __future__ import annotations

import pytest
import torch

from fastdream.ops.capacity import SampleCapacity
from fastdream.render.rays import render_rays

from tests.helpers.render import blob_scene


def test_capacity_follows_the_largest_recent_demand():
    cap = SampleCapacity(100_000, headroom=1.5, granularity=1000, minimum=2000, window=3)
    assert cap.current() == 100_000
    for demand in (10_000, 4_000, 3_000):
        cap.observe(torch.tensor(demand), cap.current())
    assert cap.current() == 15_000  # 1.5 x 10k is still in the window of 3
    cap.observe(torch.tensor(2_500), cap.current())
    assert cap.current() == 6_000  # the 10k fell out of the window: 1.5 x 4k
    cap.observe(torch.tensor(100), cap.current())
    cap.observe(torch.tensor(100), cap.current())
    cap.observe(torch.tensor(100), cap.current())
    assert cap.current() == 2_000  # the minimum
    assert cap.truncated_steps == 0


def test_a_truncated_march_is_counted_and_grows_the_capacity():
    cap = SampleCapacity(1000, headroom=1.25, granularity=100, minimum=100)
    used = cap.current()
    cap.observe(torch.tensor(5_001), used)
    assert cap.truncated_steps == 1 and cap.last_demand == 5_001
    assert cap.current() == 6_300  # ceil(1.25 x 5001 / 100) x 100


def test_state_round_trip():
    a = SampleCapacity(1 << 20, granularity=64, minimum=64)
    for d in (5000, 7000, 6000):
        a.observe(torch.tensor(d), a.current())
    b = SampleCapacity(1 << 20, granularity=64, minimum=64)
    b.load_state_dict(a.state_dict())
    b.observe(torch.tensor(100), b.current())
    a.observe(torch.tensor(100), a.current())
    assert a.current() == b.current()


@pytest.mark.parametrize("kwargs, match", [
    (dict(initial=0), "initial capacity"),
    (dict(initial=10, headroom=0.5), "headroom"),
    (dict(initial=10, window=0), "window"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SampleCapacity(**kwargs)


@pytest.mark.parametrize("backend", ["fastdream", "torch"])
def test_renders_match_exact_once_the_capacity_has_adapted(backend):
    field, grid, rays_o, rays_d = blob_scene(512, torch.Generator().manual_seed(3))
    kw = dict(shading="lambertian", render_step_size=0.02, backend=backend)
    exact = render_rays(field, grid, rays_o, rays_d, **kw, return_samples=True)
    demand = exact["ray_indices"].numel()
    cap = SampleCapacity(1 << 17, headroom=1.25, granularity=256, minimum=256)
    for _ in range(2):  # the first call runs at the generous initial size and reports its demand
        out = render_rays(field, grid, rays_o, rays_d, **kw, max_samples=cap, return_samples=True)
    assert cap.last_demand == demand and cap.truncated_steps == 0
    assert out["ray_indices"].numel() == cap.current() == -(-int(1.25 * demand) // 256) * 256
    torch.testing.assert_close(out["color"], exact["color"], rtol=1e-5, atol=1e-5)


def test_a_budget_that_is_too_small_truncates_once_then_recovers():
    field, grid, rays_o, rays_d = blob_scene(512, torch.Generator().manual_seed(4))
    kw = dict(shading="albedo", render_step_size=0.02)
    exact = render_rays(field, grid, rays_o, rays_d, **kw)
    cap = SampleCapacity(256, granularity=256, minimum=256)
    first = render_rays(field, grid, rays_o, rays_d, **kw, max_samples=cap)
    second = render_rays(field, grid, rays_o, rays_d, **kw, max_samples=cap)
    assert cap.truncated_steps == 1
    assert not torch.allclose(first["color"], exact["color"], atol=1e-3)
    torch.testing.assert_close(second["color"], exact["color"], rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
def test_cuda_budget_adapts_without_a_host_sync(cuda_device):
    field, grid, rays_o, rays_d = blob_scene(4096, torch.Generator().manual_seed(5), cuda_device)
    kw = dict(shading="lambertian", render_step_size=0.01, stratified=True)
    exact = render_rays(field, grid, rays_o, rays_d, **{**kw, "stratified": False}, return_samples=True)
    demand = exact["ray_indices"].numel()
    cap = SampleCapacity(1 << 22)
    render_rays(field, grid, rays_o, rays_d, **kw, max_samples=cap)  # warm-up: pinned buffers, kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(4):
            out = render_rays(field, grid, rays_o, rays_d, **kw, max_samples=cap)
            out["color"].square().mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert cap.current() < 1 << 22  # it shrank towards the demand ...
    assert cap.current() >= demand * 0.9 and cap.truncated_steps == 0  # ... with stratified jitter's slack
