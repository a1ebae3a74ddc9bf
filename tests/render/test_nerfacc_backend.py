"""The nerfacc renderer backend (fastdream.render.nerfacc_backend): clear errors without nerfacc or a GPU, and the same
image as our renderer on the same field, grid and step size (on a GPU with nerfacc installed)."""
from __future__ import annotations

import pytest
import torch

from fastdream.errors import UserError
from fastdream.render.nerfacc_backend import nerfacc_available
from fastdream.render.rays import render_rays


class _Grid:
    """Never reached: the backend refuses before it marches."""


def test_without_nerfacc_or_gpu_the_error_says_what_to_do():
    rays_o = torch.zeros(4, 3)
    rays_d = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3).contiguous()
    with pytest.raises(UserError) as info:
        render_rays(None, _Grid(), rays_o, rays_d, render_step_size=0.01, backend="nerfacc")
    msg = str(info.value)
    if nerfacc_available():
        assert "CUDA" in msg
    else:
        assert "nerfacc" in msg and "pip install" in msg


def test_unknown_shading_is_rejected():
    with pytest.raises(ValueError, match="shading"):
        render_rays(None, None, torch.zeros(1, 3), torch.ones(1, 3), shading="phong", backend="nerfacc")


@pytest.mark.cuda
@pytest.mark.parametrize("shading", ["albedo", "lambertian"])
def test_nerfacc_backend_matches_ours_on_the_same_grid(cuda_device, shading):
    pytest.importorskip("nerfacc")
    from fastdream import Field, OccupancyGrid, cameras

    field = Field().to(cuda_device)
    grid = OccupancyGrid(field.aabb.detach().clone(), resolution=64, levels=1).to(cuda_device)
    with torch.no_grad():
        grid.update(0, field.density, n=1)
    c2w = cameras.pose_spherical(2.0, 20.0, 30.0)
    rays_o, rays_d = cameras.get_rays(c2w, 40.0, 32, 32)
    rays_o = rays_o.reshape(-1, 3).float().contiguous().to(cuda_device)
    rays_d = rays_d.reshape(-1, 3).float().contiguous().to(cuda_device)
    light = torch.tensor([2.0, 1.0, 1.0], device=cuda_device)
    bg = torch.rand(3, device=cuda_device)
    kw = dict(shading=shading, light_position=light, background=bg, render_step_size=0.01)
    ours = render_rays(field, grid, rays_o, rays_d, backend="fastdream", **kw)
    peer = render_rays(field, grid, rays_o, rays_d, backend="nerfacc", return_samples=True, **kw)
    assert peer["color"].shape == (rays_o.shape[0], 3) and peer["opacity"].shape == (rays_o.shape[0],)
    # Sample placement conventions at the box entry differ by at most one step: compare loosely.
    torch.testing.assert_close(peer["opacity"], ours["opacity"], atol=3e-2, rtol=0)
    torch.testing.assert_close(peer["color"], ours["color"], atol=3e-2, rtol=0)
    peer["color"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in field.parameters())


@pytest.mark.cuda
def test_nerfacc_backend_supplies_the_default_light_like_every_backend(cuda_device):
    """A shaded render without light_position uses the head light on every backend (it used to raise here)."""
    pytest.importorskip("nerfacc")
    from fastdream import Field, OccupancyGrid, cameras

    field = Field().to(cuda_device)
    grid = OccupancyGrid(field.aabb.detach().clone(), resolution=32).to(cuda_device)
    rays_o, rays_d = cameras.get_rays(cameras.pose_spherical(2.0, 20.0, 30.0), 40.0, 16, 16)
    rays_o, rays_d = (r.reshape(-1, 3).contiguous().to(cuda_device) for r in (rays_o, rays_d))
    outs = [render_rays(field, grid, rays_o, rays_d, shading="lambertian", backend=b, render_step_size=0.01)
            for b in ("fastdream", "nerfacc")]
    torch.testing.assert_close(outs[1]["color"], outs[0]["color"], atol=3e-2, rtol=0)
