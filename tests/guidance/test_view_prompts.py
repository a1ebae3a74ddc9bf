"""View-dependent prompts and the camera sampling ranges the trainer relies on."""
import torch

from fastdream.cameras import CameraConfig, CameraSampler
from fastdream.guidance.view_prompts import VIEWS, view_indices, view_prompts


def test_view_prompts_order_and_text():
    ps = view_prompts("a hamburger")
    assert ps == [f"a hamburger, {v} view" for v in VIEWS]
    assert VIEWS == ("front", "side", "back", "overhead")


def test_view_rules_on_a_sweep():
    az = torch.arange(-540.0, 540.0, 1.0)
    el = torch.zeros_like(az)
    idx = view_indices(el, az, overhead_elevation=60.0, front_range=45.0)
    wrapped = (az + 180) % 360 - 180
    expect = torch.where(wrapped.abs() < 45, 0, torch.where(wrapped.abs() > 135, 2, 1))
    assert torch.equal(idx, expect)
    # boundaries: exactly 45 is side, exactly 135 is side, 180 and -180 are back, 0 is front
    pts = view_indices(torch.zeros(5), torch.tensor([0.0, 45.0, 135.0, 180.0, -180.0]))
    assert pts.tolist() == [0, 1, 1, 2, 2]


def test_overhead_wins_above_threshold_only():
    az = torch.tensor([0.0, 90.0, 180.0, 0.0])
    el = torch.tensor([61.0, 75.0, 89.0, 60.0])
    assert view_indices(el, az, overhead_elevation=60.0).tolist() == [3, 3, 3, 0]
    assert view_indices(el, az, overhead_elevation=80.0).tolist() == [0, 1, 3, 0]


def test_camera_sampler_respects_ranges():
    cfg = CameraConfig(radius_range=(1.2, 1.8), elevation_range=(0.0, 30.0), azimuth_range=(-90.0, 90.0),
                       fovy_range=(30.0, 50.0))
    g = torch.Generator().manual_seed(3)
    cams = CameraSampler(cfg).sample(2000, g)
    for name, (lo, hi) in (("radius", cfg.radius_range), ("elevation_deg", cfg.elevation_range),
                           ("azimuth_deg", cfg.azimuth_range), ("fovy_deg", cfg.fovy_range)):
        v = getattr(cams, name)
        assert v.min() >= lo and v.max() <= hi, name
        assert v.max() - v.min() > 0.9 * (hi - lo), name  # covers the range
    assert torch.allclose(cams.c2w[:, :3, 3].norm(dim=-1), cams.radius, atol=1e-5)
    # the same seed gives the same cameras (resume relies on it)
    again = CameraSampler(cfg).sample(2000, torch.Generator().manual_seed(3))
    assert torch.equal(again.c2w, cams.c2w) and torch.equal(again.light_position, cams.light_position)
