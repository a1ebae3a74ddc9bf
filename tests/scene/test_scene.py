"""Scene: built from a config, saved and loaded as one, and render_camera as the one way to render a view."""
from __future__ import annotations

import pytest
import torch

from fastdream import cameras
from fastdream.config import make_config
from fastdream.errors import UserError
from fastdream.render.rays import render_image, render_rays
from fastdream.scene.background import Background
from fastdream.scene.field import Field
from fastdream.scene.occupancy import OccupancyGrid
from fastdream.scene.scene import Scene
from tests.helpers.render import BlobField, blob_grid, camera_rays


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def _tiny_config(**overrides):
    over = ["field.options.n_levels=4", "field.options.log2_hashmap_size=10", "field.options.hidden_dim=16",
            "field.options.n_hidden_layers=1", "render.grid_resolution=16", *[f"{k}={v}" for k, v in overrides.items()]]
    return make_config(prompt="a ball", overrides=over)


def test_from_config_builds_the_described_parts():
    cfg = _tiny_config(**{"field.aabb_radius": 0.75, "background.kind": "mlp", "render.render_step_size": 0.05,
                          "render.backend": "torch"})
    scene = Scene.from_config(cfg)
    assert isinstance(scene.field, Field) and isinstance(scene.grid, OccupancyGrid)
    assert isinstance(scene.background, Background) and scene.background.kind == "mlp"
    assert scene.field.aabb.tolist() == [-0.75, -0.75, -0.75, 0.75, 0.75, 0.75]
    assert scene.grid.resolution == 16 and scene.field.encoding.n_levels == 4
    assert scene.render_step_size == 0.05 and scene.backend == "torch"


def test_state_dict_round_trips_every_part(gen):
    cfg = _tiny_config(**{"background.kind": "mlp"})
    a, b = Scene.from_config(cfg), Scene.from_config(cfg)
    with torch.no_grad():
        for p in [*a.field.parameters(), *a.background.parameters()]:
            p.add_(torch.randn(p.shape, generator=gen))
        a.grid.set_occupied(torch.rand(a.grid.occupied.shape, generator=gen) > 0.5)
    state = a.state_dict()
    assert set(state) == {"field", "grid", "background"}
    b.load_state_dict(state)
    for name in ("field", "grid", "background"):
        for (ka, va), (kb, vb) in zip(a.state_dict()[name].items(), b.state_dict()[name].items()):
            assert ka == kb and torch.equal(va, vb), (name, ka)


def test_bad_field_options_are_one_line_user_errors():
    cfg = _tiny_config()
    cfg.field.options.density_activation = "relu"
    with pytest.raises(UserError, match="density_activation"):
        cfg.validate()


@pytest.mark.parametrize("shading", ["albedo", "lambertian"])
def test_render_camera_matches_a_direct_render_with_a_head_light(shading):
    field = BlobField()
    scene = Scene(field, blob_grid(field, 32), Background("white"), render_step_size=0.02)
    c2w = cameras.pose_spherical(2.5, 20.0, 40.0)
    out = scene.render_camera(c2w, 40.0, 24, 20, shading=shading)
    ref = render_image(field, scene.grid, c2w, 40.0, 24, 20, shading=shading, light_position=c2w[:3, 3],
                       background=torch.ones(3), render_step_size=0.02)
    assert out["color"].shape == (24, 20, 3) and out["opacity"].shape == (24, 20)
    torch.testing.assert_close(out["color"], ref["color"].clamp(0, 1), atol=1e-5, rtol=0)
    assert 0.05 < float(out["opacity"].mean()) < 0.95  # the blob is in view, with background around it


def test_render_camera_restores_training_mode_and_keeps_no_graph():
    field = BlobField()
    scene = Scene(field, blob_grid(field, 16), Background("random"), render_step_size=0.05).train()
    out = scene.render_camera(cameras.pose_spherical(2.5, 10.0, 0.0), 40.0, 8, 8)
    assert field.training and not out["color"].requires_grad


@pytest.mark.parametrize("backend", ["fastdream", "torch"])
def test_every_backend_supplies_the_same_default_head_light(backend, gen):
    field = BlobField()
    grid = blob_grid(field, 32)
    rays_o, rays_d = camera_rays(256, gen)
    kw = dict(shading="lambertian", render_step_size=0.02, backend=backend)
    implicit = render_rays(field, grid, rays_o, rays_d, **kw)
    explicit = render_rays(field, grid, rays_o, rays_d, light_position=rays_o.mean(0), **kw)
    torch.testing.assert_close(implicit["color"], explicit["color"])


def test_unknown_backend_names_the_registry():
    field = BlobField()
    with pytest.raises(ValueError, match="fastdream, torch, nerfacc"):
        render_rays(field, blob_grid(field, 8), torch.zeros(1, 3), torch.ones(1, 3), backend="optix")
