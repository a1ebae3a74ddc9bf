"""Analytic shapes: the SDFs are exact distances and the sphere tracer hits where they say."""
from __future__ import annotations

import pytest
import torch

from fastdream.cameras import get_rays, pose_spherical
from fastdream.procedural import COLORS, PRIMITIVES, Scene, Shape, render, sdf_primitive


@pytest.mark.parametrize("kind", PRIMITIVES)
def test_sdf_is_a_distance(kind):
    x = (torch.rand(4000, 3, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    d = sdf_primitive(kind, x, 0.5)
    (g,) = torch.autograd.grad(d.sum(), x)
    torch.testing.assert_close(g.norm(dim=-1), torch.ones(4000, dtype=torch.float64), atol=1e-6, rtol=0)
    # moving by |d| along -grad lands on the surface (exact SDF)
    with torch.no_grad():
        on = x - d[:, None] * g
        assert sdf_primitive(kind, on, 0.5).abs().max() < 2e-3


def test_scene_albedo_is_nearest_shape_colour():
    scene = Scene([Shape("sphere", "red", (-0.5, 0, 0), 0.3), Shape("cube", "blue", (0.5, 0, 0), 0.3)])
    pts = torch.tensor([[-0.5, 0.0, 0.31], [0.5, 0.0, 0.31]])
    torch.testing.assert_close(scene.albedo(pts), torch.tensor([COLORS["red"], COLORS["blue"]]))


def test_render_sphere_silhouette_matches_analytic():
    scene = Scene([Shape("sphere", "green", size=0.5)])
    rays_o, rays_d = get_rays(pose_spherical(2.0, 10.0, 40.0), 40.0, 48, 48)
    rgb, mask = render(scene, rays_o.reshape(-1, 3), rays_d.reshape(-1, 3))
    # analytic: the ray hits iff its distance to the centre is below the radius
    o, d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
    closest = (o - (o * d).sum(-1, keepdim=True) * d).norm(dim=-1)
    clear = (closest - 0.5).abs() > 0.01
    assert torch.equal(mask[clear], (closest < 0.5)[clear])
    torch.testing.assert_close(rgb[mask], torch.tensor(COLORS["green"]).expand(int(mask.sum()), 3))
    assert (rgb[~mask] == 1.0).all()


def test_bad_shape_arguments():
    with pytest.raises(ValueError, match="unknown primitive"):
        Shape("dodecahedron")
    with pytest.raises(ValueError, match="unknown colour"):
        Shape("sphere", "mauve")
    with pytest.raises(ValueError, match="shading"):
        render(Scene([Shape("sphere")]), torch.zeros(1, 3), torch.ones(1, 3), shading="phong")
