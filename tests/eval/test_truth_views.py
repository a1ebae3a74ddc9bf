"""render_run hands back the rendered opacity the silhouette IoU needs (run loader and renderer stood in for)."""
from __future__ import annotations

import pytest
import torch

from fastdream import procedural
from fastdream.cameras import get_rays
from fastdream.checkpoint import LoadedRun
from fastdream.config import make_config
from fastdream.eval import views
from fastdream.eval.views import ViewProtocol, render_run
from fastdream.render import rays
from fastdream.scene.background import Background
from fastdream.scene.scene import Scene

pytestmark = pytest.mark.usefixtures("one_thread")


def test_render_run_returns_opacity_of_the_protocol_views(monkeypatch, tmp_path):
    scene = procedural.Scene([procedural.Shape("cube", "red", size=0.4)])

    class FakeField(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("aabb", torch.tensor([-1.0, -1, -1, 1, 1, 1]))

    def render_rays(field, grid, rays_o, rays_d, *, shading, light_position, background, render_step_size, **kw):
        rgb, hit = procedural.render(scene, rays_o, rays_d, background=background)
        return {"color": rgb, "opacity": hit.float() * 0.9, "depth": torch.zeros(rays_o.shape[0])}

    config = make_config(prompt="a red cube", overrides=["camera.radius_range=[2.0, 2.0]"])
    run = LoadedRun(scene=Scene(FakeField(), torch.nn.Module(), Background("white")), config=config,
                    prompt="a red cube", step=1, run_dir=tmp_path / "r")
    monkeypatch.setattr(views, "load_run", lambda d, device: run)
    monkeypatch.setattr(rays, "render_rays", render_rays)
    out = render_run(tmp_path / "r", ViewProtocol(views=3, size=12, fovy=50.0, chunk=50))
    assert out.opacity.shape == (3, 12, 12)  # one copy for both shading modes
    rays_o, rays_d = get_rays(out.c2w, out.fovy, 12, 12)
    _, hit = procedural.render(scene, rays_o.reshape(-1, 3), rays_d.reshape(-1, 3))
    torch.testing.assert_close(out.opacity, hit.float().reshape(3, 12, 12) * 0.9)
    assert 0 < int(hit.sum()) < hit.numel()
