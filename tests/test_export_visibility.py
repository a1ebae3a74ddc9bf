"""Export fills empty space no training camera could see: open shells lose their inner skin, visible space stays."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests._export_fields import AABB, density_of

from fastdream.export import extract_mesh
from fastdream.export.visibility import TrainingViews, blocked_towards, unseen_empty, view_directions

AXES = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]


def _blocked_reference_axis(solid: torch.Tensor, direction) -> torch.Tensor:
    """Exact for an axis direction: any solid voxel strictly between a voxel and the viewer."""
    axis = int(np.argmax(np.abs(direction)))
    s = solid.movedim(axis, 0)
    if direction[axis] < 0:
        s = s.flip(0)
    after = s.flip(0).int().cumsum(0).flip(0) - s.int()  # solids at indices > k
    out = after > 0
    if direction[axis] < 0:
        out = out.flip(0)
    return out.movedim(0, axis)


@pytest.mark.parametrize("direction", AXES)
def test_axis_directions_match_the_exact_reference(direction):
    gen = torch.Generator().manual_seed(1)
    solid = torch.rand(9, 11, 13, generator=gen) < 0.08
    assert torch.equal(blocked_towards(solid, direction), _blocked_reference_axis(solid, direction))


@pytest.mark.parametrize("seed", range(4))
def test_an_oblique_shadow_follows_the_line_within_a_voxel(seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    n = 24
    src = rng.integers(8, 16, size=3)
    solid = torch.zeros(n, n, n, dtype=torch.bool)
    solid[tuple(src)] = True
    shadow = blocked_towards(solid, d).numpy()
    pts = np.argwhere(shadow).astype(np.float64)
    assert len(pts) > 0
    rel = src - pts  # from each shadowed voxel to the solid one: must point towards the viewer, along d
    along = rel @ d
    across = np.linalg.norm(rel - along[:, None] * d[None], axis=1)
    assert np.all(along > 0)
    assert across.max() <= math.sqrt(2) + 1e-9
    # one shadowed voxel per slice along the dominant axis, down to the grid's edge
    axis = int(np.argmax(np.abs(d)))
    assert len(np.unique(pts[:, axis])) == len(pts)


def test_directions_cover_the_elevation_range():
    dirs = view_directions((-10.0, 45.0), n_elevation=4, n_azimuth=8)
    assert dirs.shape == (32, 3)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0)
    elev = np.degrees(np.arcsin(dirs[:, 2]))
    assert elev.min() == pytest.approx(-10.0) and elev.max() == pytest.approx(45.0)
    assert view_directions((90.0, 90.0), n_elevation=1).shape == (1, 3)
    with pytest.raises(ValueError, match="elevation_range"):
        view_directions((50.0, 10.0))


def _capped_tube(x, r_out=0.5, r_in=0.4, top=0.5, bottom=-0.5, cap=0.1, open_end="bottom"):
    """SDF of a thick-walled cylinder along z with one closed end (a cup upside down, or upright)."""
    rho = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
    outer = torch.maximum(rho - r_out, torch.maximum(x[:, 2] - top, bottom - x[:, 2]))
    if open_end == "bottom":
        hole = torch.maximum(rho - r_in, torch.maximum(x[:, 2] - (top - cap), bottom - 1.0 - x[:, 2]))
    else:
        hole = torch.maximum(rho - r_in, torch.maximum(x[:, 2] - (top + 1.0), (bottom + cap) - x[:, 2]))
    return torch.maximum(outer, -hole)


def _inner_vertices(mesh, radius=0.45, z_band=(-0.3, 0.3)):
    v = mesh.vertices
    rho = np.linalg.norm(v[:, :2], axis=1)
    return int(((rho < radius) & (v[:, 2] > z_band[0]) & (v[:, 2] < z_band[1])).sum())


def test_a_shell_open_towards_the_ground_loses_its_inner_skin():
    density = density_of(lambda x: _capped_tube(x, open_end="bottom"), beta=0.01)
    dirs = view_directions((-10.0, 45.0))
    kept = extract_mesh(density, AABB, resolution=96, device="cpu")
    filled = extract_mesh(density, AABB, resolution=96, device="cpu", views=dirs)
    assert _inner_vertices(kept) > 500  # the inner wall is there without the fill ...
    assert _inner_vertices(filled) == 0  # ... and gone with it
    assert len(filled.faces) < 0.85 * len(kept.faces)  # the rim seen from -10 degrees keeps a little skin


def test_space_the_cameras_see_is_not_filled():
    # the same cup upright: its inside is seen from above, so the inner wall must stay
    density = density_of(lambda x: _capped_tube(x, open_end="top"), beta=0.01)
    dirs = view_directions((-10.0, 45.0))
    kept = extract_mesh(density, AABB, resolution=96, device="cpu")
    filled = extract_mesh(density, AABB, resolution=96, device="cpu", views=dirs)
    assert _inner_vertices(filled, z_band=(0.0, 0.45)) > 0.8 * _inner_vertices(kept, z_band=(0.0, 0.45))


def test_a_convex_object_is_unchanged():
    solid = np.zeros((40, 40, 40), dtype=bool)
    idx = np.indices(solid.shape).transpose(1, 2, 3, 0) - 19.5
    solid[np.linalg.norm(idx, axis=-1) < 12] = True
    assert not unseen_empty(solid, view_directions((-10.0, 45.0))).any()


def test_bad_directions_are_refused():
    with pytest.raises(ValueError, match="direction"):
        blocked_towards(torch.zeros(2, 2, 2, dtype=torch.bool), (0.0, 0.0, 0.0))


def _seen_by_perspective_cameras(solid: np.ndarray, voxels: np.ndarray, eyes: np.ndarray, lo: float, step: float):
    """Brute force: for each voxel index, is the segment to some eye free of solid voxels (outside the grid is
    empty)? Points every 1/8 voxel along the segment, nearest-voxel lookup."""
    n = solid.shape[0]
    centres = lo + voxels * step
    seen = np.zeros(len(voxels), dtype=bool)
    for eye in eyes:
        t = np.linspace(0.0, 1.0, int(np.linalg.norm(eye - lo) / step * 8) + 2)[1:, None, None]
        pts = centres[None] + t * (eye - centres)[None]
        idx = np.rint((pts - lo) / step).astype(np.int64)
        inside = ((idx >= 0) & (idx < n)).all(-1)
        own = (idx == voxels[None]).all(-1)  # the voxel's own cell does not block it
        hit = np.zeros(inside.shape, dtype=bool)
        ii = idx[inside]
        hit[inside] = solid[ii[:, 0], ii[:, 1], ii[:, 2]]
        seen |= ~(hit & ~own).any(0)
    return seen


N, LO, STEP = 40, -1.0, 2.0 / 39
EYES = np.array([(d * math.cos(math.radians(e)) * math.cos(math.radians(a)),
                  d * math.cos(math.radians(e)) * math.sin(math.radians(a)), d * math.sin(math.radians(e)))
                 for d in (1.5, 2.0) for e in (-10.0, 0.0, 20.0, 45.0) for a in range(0, 360, 10)])


def _lattice():
    x = LO + np.indices((N, N, N)).transpose(1, 2, 3, 0) * STEP
    return np.linalg.norm(x[..., :2], axis=-1), x[..., 2], np.linalg.norm(x, axis=-1)


@pytest.mark.parametrize("shape", ["dome_rim_at_0", "tube_rim_at_-0.5"])
def test_training_views_fill_nothing_a_perspective_camera_sees(shape):
    """Cameras at radius 1.5-2, elevation -10..45 (EYES). A dome open at z = 0 is seen from inside by the low
    cameras (they sit below its rim), at angles far steeper than -10 degrees; a tube open at z = -0.5 is not (every
    camera is above its opening), so its inside can be filled."""
    rho, z, r = _lattice()
    if shape == "dome_rim_at_0":
        solid = (r < 0.6) & (r > 0.45) & (z > 0.0)
    else:
        solid = (rho < 0.5) & (np.abs(z) < 0.5) & ~((rho < 0.4) & (z < 0.4))
    radius = np.sqrt(((np.argwhere(solid) * STEP + LO) ** 2).sum(1).max()) + STEP
    filled = unseen_empty(solid, TrainingViews((-10.0, 45.0), 1.5).directions(radius))
    assert not _seen_by_perspective_cameras(solid, np.argwhere(filled), EYES, LO, STEP).any()
    if shape == "tube_rim_at_-0.5":  # the tube's inside top stays hidden even from the widened directions
        assert filled.sum() > 50
