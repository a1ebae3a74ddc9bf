"""bench/prior_bottom_score.py's stretched primitive: its bottom moves by exactly delta, the rest stays, and a lower
bottom covers more of every view."""
from __future__ import annotations

import pytest
import torch

from fastdream.cameras import CameraConfig, CameraSampler
from fastdream.procedural import sdf_primitive


@pytest.mark.parametrize("kind", ["cylinder", "cube", "cone"])
@pytest.mark.parametrize("delta", [-0.1, 0.07])
def test_stretched_bottom_moves_by_delta(kind, delta):
    from bench.prior_bottom_score import REF_SIZE, StretchedPrimitive

    scene = StretchedPrimitive(kind, delta)
    axis = torch.tensor([[0.0, 0.0, -(REF_SIZE + delta)], [0.0, 0.0, REF_SIZE]])
    assert scene.sdf(axis).abs().max() < 1e-6  # the new bottom and the unchanged top are on the surface
    upper = torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    upper[:, 2] = upper[:, 2].abs()  # z >= 0: the upper half is the primitive's own
    safety = min(1.0, (REF_SIZE + delta) / REF_SIZE)
    torch.testing.assert_close(scene.sdf(upper), safety * sdf_primitive(kind, upper, REF_SIZE))


def test_delta_zero_is_the_primitive_and_bad_delta_is_refused():
    from bench.prior_bottom_score import REF_SIZE, StretchedPrimitive

    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(StretchedPrimitive("cylinder", 0.0).sdf(x), sdf_primitive("cylinder", x, REF_SIZE))
    with pytest.raises(ValueError, match="delta"):
        StretchedPrimitive("cylinder", -REF_SIZE)


def test_lower_bottom_covers_more_of_each_view():
    from bench.prior_bottom_score import render_stretched

    cams = CameraSampler(CameraConfig()).sample(4, torch.Generator().manual_seed(2))
    alpha0, _ = render_stretched("cylinder", 0.0, cams, 16)
    alpha1, shade1 = render_stretched("cylinder", 0.15, cams, 16)
    assert (alpha1.sum((1, 2, 3)) > alpha0.sum((1, 2, 3))).all()
    assert (shade1 <= alpha1 + 1e-6).all()  # premultiplied shade never exceeds coverage


def _ball_field(x):
    """A stand-in field: density 1 inside the unit ball, albedo = position, normals = the radial direction."""
    return (x.norm(dim=-1) < 1).to(x.dtype), x.clone()


def _ball_field_n(x):
    sigma, albedo = _ball_field(x)
    return sigma, albedo, torch.nn.functional.normalize(x, dim=-1)


def test_warp_squeezes_cuts_and_turns_normals():
    from bench.prior_bottom_score import warped

    fwd, fwd_n = warped(_ball_field, _ball_field_n, z_scale=0.5, z_cut=-0.3)
    x = torch.tensor([[0.0, 0.0, 0.45], [0.0, 0.0, 0.55], [0.0, 0.0, -0.2], [0.0, 0.0, -0.4], [0.6, 0.0, 0.3]])
    sigma, albedo = fwd(x)
    # squeezed by 2 in z: the ball's top is at 0.5; below the cut nothing is left
    assert sigma.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    torch.testing.assert_close(albedo[:, 2], x[:, 2] * 2)  # the field is read where the squeeze came from
    _, _, normals = fwd_n(x)
    # an ellipsoid with half-axes (1, 1, 0.5): the normal at (0.6, 0, 0.3) leans towards z by a factor 4 = 1/0.5²
    expected = torch.nn.functional.normalize(torch.tensor([0.6, 0.0, 0.3 * 4]), dim=0)
    torch.testing.assert_close(normals[4], expected)
    same, _ = warped(_ball_field, _ball_field_n)[0](x)
    torch.testing.assert_close(same, _ball_field(x)[0])
