"""Protocol views through the real cameras, with the run loader and renderer replaced by an analytic scene."""
from __future__ import annotations

import pytest
import torch

from fastdream import procedural
from fastdream.checkpoint import LoadedRun
from fastdream.config import make_config
from fastdream.eval import views
from fastdream.eval.views import ViewProtocol, render_run
from fastdream.render import rays
from fastdream.scene.background import Background
from fastdream.scene.scene import Scene

RED, BLUE = procedural.COLORS["red"], procedural.COLORS["blue"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny ops: threads only add barrier waits


@pytest.fixture
def analytic_run(monkeypatch):
    """`load_run` returns a stand-in run; `render_rays` sphere-traces a red sphere with a blue one on +x."""
    scene = procedural.Scene([procedural.Shape("sphere", "red", size=0.4),
                              procedural.Shape("sphere", "blue", center=(0.55, 0.0, 0.0), size=0.12)])
    calls = []

    class FakeGrid(torch.nn.Module):
        pass

    class FakeField(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("aabb", torch.tensor([-1.0, -1, -1, 1, 1, 1]))
            self.w = torch.nn.Parameter(torch.ones(1))

    def load_run(run_dir, device="cpu"):
        config = make_config(prompt="  a red  ball ", overrides=["camera.radius_range=[2.0, 3.0]",
                                                                 "camera.fovy_range=[30.0, 50.0]", "train.seed=7"])
        scene = Scene(FakeField(), FakeGrid(), Background("white"), render_step_size=0.03)
        return LoadedRun(scene=scene, config=config, step=10, prompt="  a red  ball ", run_dir=run_dir)

    def render_rays(field, grid, rays_o, rays_d, *, shading, light_position, background, render_step_size, **kw):
        assert isinstance(grid, FakeGrid) and isinstance(field, FakeField)
        calls.append(dict(shading=shading, light=light_position.clone(), bg=background.clone(),
                          step=render_step_size, origin=rays_o[0].clone(), n=rays_o.shape[0],
                          grad=torch.is_grad_enabled()))
        rgb, mask = procedural.render(scene, rays_o, rays_d, light_position=light_position,
                                      shading="albedo" if shading == "albedo" else "textureless",
                                      background=background)
        return {"color": rgb, "opacity": mask.float(), "depth": torch.zeros(rays_o.shape[0])}

    monkeypatch.setattr(views, "load_run", load_run)
    monkeypatch.setattr(rays, "render_rays", render_rays)  # what Scene.render_camera's render_image calls
    return calls


def test_protocol_views_colour_and_textureless(analytic_run, tmp_path):
    calls = analytic_run
    protocol = ViewProtocol(views=4, elevation=0.0, size=24, chunk=200)
    run = render_run(tmp_path / "ball-s7", protocol)
    assert run.prompt == "  a red  ball " and run.seed == 7  # the run's own seed
    assert set(run.images) == {"color", "textureless"}
    color, tl = run.images["color"], run.images["textureless"]
    assert color.shape == tl.shape == (4, 24, 24, 3)
    # white background in the corners of every view
    torch.testing.assert_close(color[:, 0, 0], torch.ones(4, 3))
    torch.testing.assert_close(tl[:, -1, -1], torch.ones(4, 3))
    # azimuth 0 sits on +x: the blue sphere is in front; azimuth 180 looks from -x: red in front
    centre = color[:, 11:13, 11:13].mean(dim=(1, 2))
    torch.testing.assert_close(centre[0], torch.tensor(BLUE, dtype=torch.float32), atol=1e-4, rtol=0)
    torch.testing.assert_close(centre[2], torch.tensor(RED, dtype=torch.float32), atol=1e-4, rtol=0)
    # textureless is grey shading, darker towards the silhouette
    assert torch.equal(tl[..., 0], tl[..., 1]) and torch.equal(tl[..., 1], tl[..., 2])
    assert float(tl.min()) < 0.8
    # radius and fovy come from the run's config (middle of its ranges); light at the camera; chunks cover the image
    origins = torch.stack([c["origin"] for c in calls])
    torch.testing.assert_close(origins.norm(dim=1), torch.full((len(calls),), 2.5))
    assert all(torch.equal(c["light"], c["origin"]) for c in calls)
    assert all(torch.equal(c["bg"], torch.ones(3)) for c in calls)
    assert sum(c["n"] for c in calls) == 2 * 4 * 24 * 24 and max(c["n"] for c in calls) <= 200
    assert {c["shading"] for c in calls} == {"albedo", "textureless"}
    assert not any(c["grad"] for c in calls)
    assert calls[0]["step"] == 0.03  # the scene's step size


def test_protocol_overrides_radius_and_modes(analytic_run, tmp_path):
    run = render_run(tmp_path / "x", ViewProtocol(views=2, size=16, radius=4.0, fovy=20.0, modes=("color",)))
    assert set(run.images) == {"color"} and run.seed == 7
    assert {round(float(c["origin"].norm()), 5) for c in analytic_run} == {4.0}


def test_protocol_views_with_the_real_field_and_renderer(monkeypatch, tmp_path):
    """render_run over fastdream's Field, OccupancyGrid and render_rays (only the run loading is stood in for):
    a red ball of density on white, shaded grey when textureless."""
    from fastdream import Field, OccupancyGrid

    field = Field(n_levels=2, log2_hashmap_size=8, base_resolution=4, finest_resolution=16, hidden_dim=8,
                  n_hidden_layers=1, blob_density=20.0, blob_radius=0.5)
    with torch.no_grad():  # density = the blob only (a ball of radius ~0.6), albedo = constant red
        last = field.mlp[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([-10.0, 3.0, -3.0, -3.0]))
    grid = OccupancyGrid(field.aabb, resolution=16)
    config = make_config(prompt="a red ball", overrides=["render.render_step_size=0.02", "train.seed=5"])
    scene = Scene(field, grid, Background("white"), render_step_size=0.02)
    monkeypatch.setattr(views, "load_run", lambda run_dir, device="cpu": LoadedRun(
        scene=scene, config=config, prompt="a red ball", step=1, run_dir=run_dir))
    run = render_run(tmp_path / "ball", ViewProtocol(views=2, elevation=30.0, size=16, radius=4.0, fovy=40.0))
    assert run.seed == 5 and run.prompt == "a red ball"
    color, tl = run.images["color"], run.images["textureless"]
    assert color.shape == tl.shape == (2, 16, 16, 3)
    assert bool(torch.isfinite(color).all()) and bool(torch.isfinite(tl).all())
    torch.testing.assert_close(color[:, 0, 0], torch.ones(2, 3), atol=1e-3, rtol=0)  # background
    red = torch.sigmoid(torch.tensor([3.0, -3.0, -3.0]))
    torch.testing.assert_close(color[:, 7:9, 7:9].mean(dim=(1, 2)), red.expand(2, 3), atol=2e-2, rtol=0)
    torch.testing.assert_close(tl[..., 0], tl[..., 1])
    torch.testing.assert_close(tl[..., 1], tl[..., 2])
    # lit from the camera: the centre faces the light, the rim does not
    assert float(tl[:, 7:9, 7:9].mean()) > 0.8 and float(tl.min()) < 0.6
