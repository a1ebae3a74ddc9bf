"""Mesh cleanup: topology counts, duplicate and folded faces, decimation that keeps a closed mesh closed, normals."""
from __future__ import annotations

import numpy as np
import pytest

from fastdream.export import cleanup, vertex_normals
from fastdream.export.cleanup import Topology, remove_duplicate_faces, topology
from fastdream.export.decimate import decimate

TETRA_V = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # outward


def _icosphere(subdivisions: int = 3):
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(s.vertices, np.float32), np.asarray(s.faces, np.int64)


def test_topology_of_closed_and_broken_meshes():
    assert topology(TETRA_F) == Topology(4, 0, 0, 0, 0, 1) and topology(TETRA_F).closed_manifold
    assert topology(TETRA_F[:3]).boundary_edges == 3  # a hole
    flipped = TETRA_F.copy()
    flipped[3] = flipped[3, ::-1]
    assert topology(flipped).misoriented_edges == 3
    # two tetrahedra sharing one edge (0-1): that edge has four faces
    fin = np.concatenate([TETRA_F, np.array([[0, 1, 4], [1, 5, 4], [0, 4, 5], [0, 5, 1]])])
    assert topology(fin).nonmanifold_edges == 1
    # two tetrahedra touching at vertex 0 only: closed edges, but a pinched vertex
    bowtie = np.concatenate([TETRA_F, np.array([[0, 5, 4], [0, 4, 6], [0, 6, 5], [4, 5, 6]])])
    t = topology(bowtie)
    assert t.nonmanifold_vertices == 1 and t.boundary_edges == 0 and not t.closed_manifold
    assert topology(np.concatenate([TETRA_F, TETRA_F + 4])).components == 2


def test_duplicate_and_opposite_coincident_faces_are_removed():
    f = np.array([[0, 1, 2], [1, 2, 0], [0, 2, 1], [1, 2, 3], [1, 3, 2], [4, 5, 6], [5, 6, 4]])
    out = remove_duplicate_faces(f)
    keys = {tuple(np.roll(r, -int(np.argmin(r)))) for r in out}
    # (0,1,2) twice one way and once the other: one survives, that way; (1,2,3) both ways: a zero-thickness sheet,
    # gone; (4,5,6) twice the same way: once
    assert keys == {(0, 1, 2), (4, 5, 6)} and len(out) == 2


def test_decimation_keeps_a_closed_mesh_closed():
    v, f = _icosphere(4)
    dv, df = decimate(v, f, 500)
    assert len(df) <= 500 and topology(df).closed_manifold and topology(df).components == 1
    assert np.abs(np.linalg.norm(dv, axis=1) - 1).max() < 0.05


def test_decimation_that_cannot_stay_closed_returns_the_input(monkeypatch, caplog):
    v, f = _icosphere(3)
    import fast_simplification

    def tearing(points, triangles, target_count, **_):  # a decimator that leaves a hole every time
        return points, triangles[:-1]

    monkeypatch.setattr(fast_simplification, "simplify", tearing)
    dv, df = decimate(v, f, len(f) - 1)
    assert len(df) == len(f) and topology(df).closed_manifold
    assert "could not keep the mesh closed" in caplog.text


def test_defects_left_by_decimation_are_repaired_by_protecting_their_input_faces(monkeypatch):
    """A decimator that tears a hole unless told to keep borders (the way folds appear only where collapses are
    free): the retry protects the input faces around the hole and keeps the budget."""
    import fast_simplification

    real = fast_simplification.simplify
    v, f = _icosphere(4)

    def tearing_once(points, triangles, target_count, preserve_border=False):
        out_v, out_f = real(points, triangles, target_count=target_count, preserve_border=preserve_border)
        return (out_v, out_f) if preserve_border else (out_v, out_f[1:])

    monkeypatch.setattr(fast_simplification, "simplify", tearing_once)
    dv, df = decimate(v, f, 1000)
    assert topology(df).closed_manifold and topology(df).components == 1
    assert len(df) <= 1100
    assert np.abs(np.linalg.norm(dv, axis=1) - 1).max() < 0.05


def test_vertex_normals_are_unit_even_where_faces_cancel():
    v = np.concatenate([TETRA_V, [[5, 5, 5]]]).astype(np.float32)
    f = np.concatenate([TETRA_F, [[0, 1, 2], [0, 2, 1]]])  # a coincident opposite pair on top of face 0
    n = vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vertex_normals(v, np.array([[0, 1, 2], [0, 2, 1]]))[0:3, 2] ** 2, 1.0, atol=1e-6)
    # a sphere: the area-weighted normal is the radial direction
    sv, sf = _icosphere(2)
    cos = (vertex_normals(sv, sf) * sv).sum(1) / np.linalg.norm(sv, axis=1)
    assert cos.min() > 0.999


def test_weld_merges_equal_positions_only():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1e-7, 0]], np.float32)
    wv, wf = cleanup.weld(v, np.array([[0, 1, 3], [2, 1, 3]]))
    assert len(wv) == 3 and wf[0, 0] == wf[1, 0]


@pytest.mark.parametrize("bad", [np.zeros((0, 3), np.int64)])
def test_empty_input(bad):
    assert topology(bad).faces == 0 and not topology(bad).closed_manifold


def test_decimation_raises_its_budget_before_giving_up(monkeypatch, caplog):
    """A decimator that tears a hole at tight budgets (below 4x the asked count): the result keeps 4x the faces,
    closed, instead of every input face."""
    import fast_simplification

    real = fast_simplification.simplify
    v, f = _icosphere(4)
    asked = 300

    def tearing_when_tight(points, triangles, target_count, preserve_border=False):
        out_v, out_f = real(points, triangles, target_count=target_count, preserve_border=preserve_border)
        return (out_v, out_f) if target_count >= 4 * asked else (out_v, out_f[1:])

    monkeypatch.setattr(fast_simplification, "simplify", tearing_when_tight)
    dv, df = decimate(v, f, asked)
    assert asked < len(df) <= 4 * asked + 16 < len(f)
    assert topology(df).closed_manifold and "kept" in caplog.text
