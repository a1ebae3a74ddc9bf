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
