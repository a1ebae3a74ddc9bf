"""The truth metrics (fastdream.eval.truth) against hand-computed values on exact meshes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastdream import procedural
from fastdream.eval import truth as tm

pytestmark = pytest.mark.usefixtures("one_thread")

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
DIAG = 2 * math.sqrt(3)
# An exact mesh reads the sampling floor: nearest-neighbour spacing of 30k points (~0.01 on a unit object) plus the
# marching-cubes chord error of a 96^3 lattice; both well under a tenth of the tightest bar (1 %).
EXACT_PCT = 0.25


def sphere_mesh(radius: float, center=(0.0, 0.0, 0.0), res: int = 96):
    """Marching-cubes sphere (outward faces, closed) of the given radius in the box."""
    from skimage.measure import marching_cubes

    sp = 2.0 / res
    axis = -1 + (np.arange(res) + 0.5) * sp
    x = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    values = np.linalg.norm(x - np.asarray(center), axis=-1) - radius
    v, f, _, _ = marching_cubes(values, 0.0, spacing=(sp,) * 3, gradient_direction="ascent")
    return v - 1 + 0.5 * sp, f[:, ::-1].astype(np.int64)


def sphere_sdf(radius: float):
    return lambda p: procedural.sdf_primitive("sphere", p, radius)


def box_mesh(half: float):
    import trimesh

    m = trimesh.creation.box(extents=[2 * half] * 3)
    return np.asarray(m.vertices), np.asarray(m.faces, dtype=np.int64)


def test_truth_surface_samples_lie_on_the_surface():
    rng = np.random.default_rng(1)
    cube = lambda p: procedural.sdf_primitive("cube", p, 0.45)  # noqa: E731
    pts = tm.sample_sdf_surface(cube, BOX, 5000, rng)
    assert np.abs(cube(torch.from_numpy(pts)).numpy()).max() < 1e-6
    # area-uniform: each face of the cube holds a sixth of the points (binomial s.d. ~0.5 %)
    face = np.abs(pts).argmax(1) * 2 + (pts[np.arange(len(pts)), np.abs(pts).argmax(1)] > 0)
    np.testing.assert_allclose(np.bincount(face, minlength=6) / len(pts), 1 / 6, atol=0.02)


def test_chamfer_exact_sphere_is_zero_and_a_larger_one_is_its_offset():
    rng = np.random.default_rng()
    truth = tm.sample_sdf_surface(sphere_sdf(0.5), BOX, tm.CHAMFER_SAMPLES, rng)
    v, f = sphere_mesh(0.5)
    mesh = tm.sample_mesh_surface(v, f, tm.CHAMFER_SAMPLES, rng)
    a, b = tm.chamfer_percent(mesh, truth, DIAG)
    assert a < EXACT_PCT and b < EXACT_PCT
    r = float(rng.uniform(0.55, 0.7))  # concentric: every point is r - 0.5 from the other surface, both ways
    v, f = sphere_mesh(r)
    a, b = tm.chamfer_percent(tm.sample_mesh_surface(v, f, tm.CHAMFER_SAMPLES, rng), truth, DIAG)
    expected = 100 * (r - 0.5) / DIAG
    assert a == pytest.approx(expected, abs=EXACT_PCT) and b == pytest.approx(expected, abs=EXACT_PCT)
    assert tm.chamfer_percent(np.zeros((0, 3)), truth, DIAG) == (math.inf, math.inf)


def test_volume_iou_of_spheres_and_boxes():
    rng = np.random.default_rng()
    r = float(rng.uniform(0.55, 0.75))
    v, f = sphere_mesh(r)
    # nested solids: IoU = smaller volume / larger volume; the 128^3 lattice is good to ~1 %
    assert tm.volume_iou(v, f, sphere_sdf(0.5), BOX) == pytest.approx((0.5 / r) ** 3, abs=0.01)
    assert tm.volume_iou(v, f, sphere_sdf(r), BOX) > 0.99
    a, b = sorted(rng.uniform(0.3, 0.8, size=2))
    v, f = box_mesh(float(b))  # 12 triangles, axis-aligned: the parity lines must not hit its edges twice
    cube = lambda p: procedural.sdf_primitive("cube", p, float(a))  # noqa: E731
    # axis-aligned faces quantise coherently, so count the lattice centres inside each box by hand
    centres = -1 + (np.arange(tm.VOLUME_RESOLUTION) + 0.5) * 2 / tm.VOLUME_RESOLUTION
    na, nb = (np.abs(centres) < a).sum(), (np.abs(centres) < b).sum()
    assert tm.volume_iou(v, f, cube, BOX) == pytest.approx((na / nb) ** 3, abs=1e-9)
    # disjoint: a sphere off to one side
    v, f = sphere_mesh(0.2, center=(0.6, 0.0, 0.0))
    assert tm.volume_iou(v, f, lambda p: procedural.sdf_primitive("sphere", p + 0.6, 0.2), BOX) == 0.0


def test_open_meshes_get_figures_and_fail_validity():
    v, f = sphere_mesh(0.5)
    holed = f[np.linalg.norm(v[f].mean(1) - [0.0, 0.0, 0.5], axis=1) > 0.08]  # a cap cut off the top
    assert len(holed) < len(f)
    # the vertical lines through the hole see one crossing; the two horizontal axes outvote them
    assert tm.volume_iou(v, holed, sphere_sdf(0.5), BOX) > 0.97
    valid = tm.mesh_validity(v, holed)
    assert not valid["watertight"] and valid["boundary_edges"] > 0 and valid["manifold"]
    one = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.3, 0.0]])
    assert tm.volume_iou(one, np.array([[0, 1, 2]]), sphere_sdf(0.5), BOX) == pytest.approx(0.0, abs=1e-3)
    assert tm.volume_iou(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), sphere_sdf(0.5), BOX) == 0.0
    empty = tm.mesh_validity(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    assert not empty["watertight"] and empty["components"] == 0


def test_off_surface_fraction_of_an_internal_shell_is_its_area_share():
    rng = np.random.default_rng()
    inner = float(rng.uniform(0.2, 0.35))
    v1, f1 = sphere_mesh(0.5)
    v2, f2 = sphere_mesh(inner)
    v, f = np.concatenate([v1, v2]), np.concatenate([f1, f2 + len(v1)])
    truth = tm.sample_sdf_surface(sphere_sdf(0.5), BOX, tm.CHAMFER_SAMPLES, rng)
    mesh = tm.sample_mesh_surface(v, f, tm.CHAMFER_SAMPLES, rng)
    share = inner ** 2 / (inner ** 2 + 0.25)  # sphere areas go as r^2; binomial s.d. of 30k samples ~0.3 %
    assert tm.off_surface_fraction(mesh, truth, 0.05) == pytest.approx(share, abs=0.015)
    assert tm.off_surface_fraction(tm.sample_mesh_surface(v1, f1, 5000, rng), truth, 0.05) == 0.0
    valid = tm.mesh_validity(v, f)
    assert valid["watertight"] and valid["components"] == 2  # closed, but two shells


@pytest.mark.parametrize("where", ["bottom", "top"])
def test_off_surface_by_height_puts_a_bulge_in_its_band(where):
    """A cube with a pyramid grown under (or over) one face: all of its off area is in that band, and the bands add
    up to the off-surface fraction."""
    import trimesh

    rng = np.random.default_rng()
    half, depth = 0.5, float(rng.uniform(0.12, 0.25))
    cube = trimesh.creation.box(extents=[2 * half] * 3)
    sign = -1.0 if where == "bottom" else 1.0
    apex = np.array([[0.0, 0.0, sign * (half + depth)]])
    corners = np.array([[x, y, sign * half] for x in (-half, half) for y in (-half, half)])
    pyramid = trimesh.Trimesh(np.concatenate([corners, apex]), [[0, 1, 4], [1, 3, 4], [3, 2, 4], [2, 0, 4]])
    v = np.concatenate([cube.vertices, pyramid.vertices])
    f = np.concatenate([cube.faces, pyramid.faces + len(cube.vertices)])
    truth = tm.sample_sdf_surface(lambda p: procedural.sdf_primitive("cube", p, half), BOX, tm.CHAMFER_SAMPLES, rng)
    mesh = tm.sample_mesh_surface(v, f, tm.CHAMFER_SAMPLES, rng)
    off = tm.nearest_distances(mesh, truth) > 0.05
    bands = tm.off_surface_by_height(mesh, off, truth)
    assert off.mean() > 0.05  # the pyramid's faces are mostly more than 0.05 from the cube
    assert bands[where] == pytest.approx(off.mean(), abs=1e-9)
    assert sum(bands.values()) == pytest.approx(off.mean(), abs=1e-9)
    assert bands["middle"] == 0.0
    exact = tm.sample_mesh_surface(cube.vertices, cube.faces, 5000, rng)
    assert tm.off_surface_by_height(exact, tm.nearest_distances(exact, truth) > 0.05, truth) == \
        {"bottom": 0.0, "middle": 0.0, "top": 0.0}


def tetra(offset=(0.0, 0.0, 0.0)):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64) + offset
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
    return v, f


def test_mesh_validity_counts():
    v, f = tetra()
    ok = tm.mesh_validity(v, f)
    assert ok == {"watertight": True, "manifold": True, "winding_consistent": True, "components": 1,
                  "degenerate_faces": 0, "duplicate_faces": 0, "boundary_edges": 0, "nonmanifold_edges": 0,
                  "nonmanifold_vertices": 0, "faces": 4, "vertices": 4}
    # a coincident face of opposite winding (the GLB defect) and an exact copy of its neighbour: 2
    # duplicates; their 5 edges now carry 3 faces (4 on the edge they share)
    dup = tm.mesh_validity(v, np.concatenate([f, f[:1, ::-1], f[1:2]]))
    assert dup["duplicate_faces"] == 2 and not dup["watertight"] and not dup["manifold"]
    assert dup["nonmanifold_edges"] == 5
    # degenerate: a repeated index, and three distinct collinear vertices
    v2 = np.concatenate([v, [[0.5, 0.0, 0.0]]])
    deg = tm.mesh_validity(v2, np.concatenate([f, [[0, 0, 1], [0, 4, 1]]]))
    assert deg["degenerate_faces"] == 2
    flipped = f.copy()
    flipped[0] = flipped[0, ::-1]
    wind = tm.mesh_validity(v, flipped)
    assert wind["watertight"] and not wind["winding_consistent"]
    # two closed tetrahedra touching at one vertex: every edge has two faces, yet the vertex has two fans
    vb, fb = tetra()
    vb = vb[[1, 0, 2, 3]] * -1 + [1.0, 0.0, 0.0]  # mirrored copy whose vertex 0 sits at (1, 0, 0)
    both_v = np.concatenate([v, vb[1:]])
    idx = np.array([1, 4, 5, 6])  # vb's vertex 0 is v's vertex 1
    both = tm.mesh_validity(both_v, np.concatenate([f, idx[fb[:, ::-1]]]))
    assert both["watertight"] and not both["manifold"] and both["nonmanifold_vertices"] == 1
    assert both["components"] == 1
    apart = tm.mesh_validity(np.concatenate([v, v + 3]), np.concatenate([f, f + 4]))
    assert apart["components"] == 2 and apart["manifold"]


def test_weld_merges_seam_copies():
    v, f = tetra()
    split_v = np.concatenate([v, v[:1]])  # vertex 0 duplicated along a "UV seam"
    split_f = f.copy()
    split_f[3] = [1, 2, 3]
    split_f[0] = [4, 2, 1]
    assert not tm.mesh_validity(split_v, split_f)["watertight"]
    wv, wf = tm.weld(split_v, split_f)
    assert len(wv) == 4 and tm.mesh_validity(wv, wf)["watertight"]


def test_silhouette_iou_hand_counts():
    truth = torch.zeros(2, 4, 4, dtype=torch.bool)
    truth[0, :2] = True  # 8 pixels
    truth[1, 0, 0] = True
    opacity = torch.zeros(2, 4, 4)
    opacity[0, :3] = 0.9  # 12 pixels, 8 shared -> 8/12
    opacity[1, 0, 0] = 0.4  # below 0.5: 0/1
    mean, per_view = tm.silhouette_iou(opacity, truth)
    assert per_view == pytest.approx([8 / 12, 0.0]) and mean == pytest.approx(1 / 3)
    assert tm.silhouette_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool)) == (1.0, [1.0])
    with pytest.raises(ValueError, match="shape"):
        tm.silhouette_iou(opacity[:1], truth)
