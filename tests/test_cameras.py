"""Camera poses, rays and the random sampler."""
from __future__ import annotations

import math

import pytest
import torch

from fastdream.cameras import CameraConfig, CameraSampler, get_rays, look_at, pose_spherical


@pytest.mark.parametrize("seed", range(5))
def test_pose_is_rigid_and_looks_at_origin(seed):
    gen = torch.Generator().manual_seed(seed)
    r = 1 + 2 * torch.rand(16, generator=gen)
    el = -80 + 160 * torch.rand(16, generator=gen)
    az = -180 + 360 * torch.rand(16, generator=gen)
    c2w = pose_spherical(r, el, az)
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(16), atol=1e-5, rtol=0)
    eye = c2w[:, :3, 3]
    torch.testing.assert_close(eye.norm(dim=-1), r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.rad2deg(torch.asin(eye[:, 2] / r)), el, atol=1e-3, rtol=0)
    # the central ray of an odd-sized image points at the origin
    rays_o, rays_d = get_rays(c2w, 50.0, 5, 5)
    torch.testing.assert_close(rays_d[:, 2, 2], torch.nn.functional.normalize(-eye, dim=-1), atol=1e-5, rtol=0)


def test_azimuth_zero_is_plus_x_and_image_up_is_world_up():
    c2w = pose_spherical(2.0, 0.0, 0.0)
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([2.0, 0.0, 0.0]))
    rays_o, rays_d = get_rays(c2w, 60.0, 4, 4)
    assert rays_d[0, :, 2].min() > 0 > rays_d[-1, :, 2].max()  # top row looks up
    assert rays_d[:, 0, 1].max() < 0 < rays_d[:, -1, 1].min()  # left column looks towards -y (right = +y)
    torch.testing.assert_close(rays_d.norm(dim=-1), torch.ones(4, 4))


def test_fov_spans_the_image():
    rays_o, rays_d = get_rays(pose_spherical(1.0, 0.0, 0.0), 90.0, 200, 200)
    top, bottom = rays_d[0, 100], rays_d[-1, 100]
    angle = math.degrees(math.acos(float((top * bottom).sum())))
    assert abs(angle - 90.0 * 199 / 200) < 0.5  # pixel centres sit half a pixel inside the edges


def test_overhead_view_is_well_defined():
    c2w = look_at([0.0, 0.0, 2.0])
    assert torch.isfinite(c2w).all()
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6, rtol=0)


def test_sampler_respects_ranges_and_seed():
    cfg = CameraConfig(radius_range=(1.2, 1.4), elevation_range=(0, 30), fovy_range=(45, 50))
    sampler = CameraSampler(cfg)
    a = sampler.sample(500, torch.Generator().manual_seed(3))
    b = sampler.sample(500, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.c2w, b.c2w)
    assert a.radius.min() >= 1.2 and a.radius.max() <= 1.4
    assert a.elevation_deg.min() >= 0 and a.elevation_deg.max() <= 30
    assert a.fovy_deg.min() >= 45 and a.fovy_deg.max() <= 50
    light_dist = a.light_position.norm(dim=-1)
    assert light_dist.min() >= 0.8 - 1e-5 and light_dist.max() <= 1.5 + 1e-5
    # the light sits on the camera's side more often than not
    assert ((a.light_position * a.c2w[:, :3, 3]).sum(-1) > 0).float().mean() > 0.6


@pytest.mark.parametrize("field_name, value, match", [
    ("radius_range", (2.0, 1.0), "radius_range"),
    ("radius_range", (0.0, 1.0), "radius_range"),
    ("elevation_range", (-95.0, 10.0), "elevation_range"),
    ("fovy_range", (10.0, 200.0), "fovy_range"),
])
def test_bad_config_names_the_field(field_name, value, match):
    with pytest.raises(ValueError, match=match):
        CameraSampler(CameraConfig(**{field_name: value}))


def test_bad_image_size():
    with pytest.raises(ValueError, match="height and width"):
        get_rays(pose_spherical(1.0, 0.0, 0.0), 60.0, 0, 4)
