"""Triangle-mesh cleanup: degenerate and duplicate faces, components, orientation, decimation, topology checks.

Meshes are (vertices [V, 3] float, faces [F, 3] int64) pairs; nothing here depends on where they came from.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)


class Topology(NamedTuple):
    """Edge and vertex counts that say whether a mesh is a closed, consistently oriented 2-manifold."""
    faces: int
    boundary_edges: int  # used by one face: a hole
    nonmanifold_edges: int  # used by three or more faces
    misoriented_edges: int  # used twice in the same direction: neighbours wound against each other
    nonmanifold_vertices: int  # whose faces form more than one fan (two sheets touching at a point)
    components: int  # edge-connected

    @property
    def closed_manifold(self) -> bool:
        return self.faces > 0 and not (self.boundary_edges or self.nonmanifold_edges or self.misoriented_edges
                                       or self.nonmanifold_vertices)


def _half_edges(faces: np.ndarray) -> np.ndarray:
    """[3F, 2] directed edges (a, b) of every face, face-major: row 3*f + k is corner k -> k+1."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], -1).reshape(-1, 2)


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per row of non-negative integers [N, K] (equal rows, equal keys): sorting them is far cheaper
    than np.unique(axis=0)."""
    base = int(rows.max(initial=0)) + 1
    if base ** rows.shape[1] >= 2 ** 63:
        return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)
    key = np.zeros(len(rows), dtype=np.int64)
    for k in range(rows.shape[1]):
        key = key * base + rows[:, k]
    return key


class _Edges(NamedTuple):
    uses: np.ndarray  # [E] faces per undirected edge
    bad: np.ndarray  # [E] used other than twice in opposite directions
    edge_vertices: np.ndarray  # [E, 2]
    fans: np.ndarray  # [V] fans (corner groups joined across shared edges) around each vertex
    pairs: tuple[np.ndarray, np.ndarray]  # faces on either side of each edge used exactly twice


def _edges(faces: np.ndarray) -> _Edges:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    he = _half_edges(faces)
    und = np.sort(he, 1)
    _, first_use, inv, uses = np.unique(_row_keys(und), return_index=True, return_inverse=True,
                                        return_counts=True)
    forward = np.bincount(inv, weights=(he[:, 0] < he[:, 1]).astype(np.float64), minlength=len(uses))
    two = uses == 2
    # half-edges of the edges used exactly twice, in pairs: (first[i], second[i]) share an edge
    order = np.argsort(inv, kind="stable")
    order = order[two[inv[order]]]
    first, second = order[0::2], order[1::2]
    face_of = np.arange(len(he)) // 3
    # corner (face, vertex) ids are 3*face + k; corners of one vertex joined across a shared edge form one fan
    corner_of = lambda h, v: 3 * face_of[h] + np.argmax(faces[face_of[h]] == v[:, None], axis=1)  # noqa: E731
    rows = np.concatenate([corner_of(first, he[first, e]) for e in (0, 1)])
    cols = np.concatenate([corner_of(second, he[first, e]) for e in (0, 1)])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(len(he), len(he)))
    _, fan = connected_components(graph, directed=False)
    n_fan = int(fan.max()) + 1
    fans = np.bincount(np.unique(faces.reshape(-1) * n_fan + fan) // n_fan)
    bad = ~two | (forward != 1)
    return _Edges(uses, bad, und[first_use], fans, (face_of[first], face_of[second]))


def topology(faces: np.ndarray) -> Topology:
    """Count holes, non-manifold edges/vertices, inconsistent windings and components of a face array [F, 3]."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return Topology(0, 0, 0, 0, 0, 0)
    e = _edges(faces)
    face_graph = coo_matrix((np.ones(len(e.pairs[0]), np.int8), e.pairs), shape=(len(faces), len(faces)))
    n_comp, _ = connected_components(face_graph, directed=False)
    return Topology(len(faces), int((e.uses == 1).sum()), int((e.uses > 2).sum()),
                    int((e.bad & (e.uses == 2)).sum()), int((e.fans > 1).sum()), int(n_comp))


def defect_vertices(faces: np.ndarray) -> np.ndarray:
    """Indices of the vertices on a hole, a non-manifold or misoriented edge, or pinched (more than one fan)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    e = _edges(faces)
    return np.union1d(e.edge_vertices[e.bad].reshape(-1), np.flatnonzero(e.fans > 1))


def remove_degenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces [F', 3] without repeated vertex indices or (numerically) zero area."""
    f = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    v = vertices[f].astype(np.float64)
    area2 = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    scale = max(float(np.ptp(vertices, axis=0).max()), 1e-12) if len(vertices) else 1.0
    return f[area2 > 1e-14 * scale * scale]


def remove_duplicate_faces(faces: np.ndarray) -> np.ndarray:
    """Faces [F', 3] with each vertex triple once; a triple present in both windings (a zero-thickness sheet, whose
    normals cancel) is dropped as many times as it is present each way, so only the surplus winding stays."""
    if len(faces) == 0:
        return faces
    key = np.sort(faces, 1)
    # a cyclic rotation of the sorted triple keeps the winding, a swap flips it
    even = ((faces == key).all(1) | (faces == np.roll(key, 1, 1)).all(1) | (faces == np.roll(key, 2, 1)).all(1))
    _, first, inv = np.unique(_row_keys(key), return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    net = np.bincount(inv, weights=np.where(even, 1.0, -1.0))
    keep = net != 0
    out = key[first[keep]].copy()
    flip = net[keep] < 0
    out[flip] = out[flip][:, ::-1]
    if len(out) < len(faces):
        log.debug("removed %d duplicate or opposite-coincident faces", len(faces) - len(out))
    return out


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unreferenced vertices; faces re-indexed, [F, 3] int64."""
    used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
    return vertices[used], inverse.reshape(-1, 3).astype(np.int64)


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at exactly the same position (e.g. the seam copies of a UV atlas); faces re-indexed."""
    v = np.ascontiguousarray(vertices)
    order = np.lexsort(v.T[::-1])
    s = v[order]
    new = np.concatenate([[True], (s[1:] != s[:-1]).any(1)])
    index = np.empty(len(v), dtype=np.int64)
    index[order] = np.cumsum(new) - 1
    return s[new], index[faces].astype(np.int64)


def face_components(n_vertices: int, faces: np.ndarray) -> tuple[int, np.ndarray]:
    """(count, label per face) of the vertex-connected components of a mesh."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_vertices, n_vertices))
    count, labels = connected_components(graph, directed=False)
    return count, labels[faces[:, 0]]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of every face [F] float64."""
    v = vertices[faces].astype(np.float64)
    return 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)


def keep_large_components(vertices: np.ndarray, faces: np.ndarray, min_ratio: float = 0.02):
    """Drop connected components whose surface area is below min_ratio x the largest one's (floaters); compacted.

    min_ratio 1.0 keeps the largest component only."""
    count, face_label = face_components(len(vertices), faces)
    if count <= 1:
        return compact(vertices, faces)
    comp_area = np.bincount(face_label, weights=face_areas(vertices, faces), minlength=count)
    keep_comp = comp_area >= min_ratio * comp_area.max()
    if min_ratio >= 1.0:
        keep_comp = np.arange(count) == int(np.argmax(comp_area))
    log.debug("components: %d, kept %d", count, int(keep_comp.sum()))
    return compact(vertices, faces[keep_comp[face_label]])


def orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces wound so the enclosed (signed) volume is positive: normals point out of a closed mesh."""
    v = vertices[faces].astype(np.float64)
    if np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() < 0:
        return faces[:, ::-1].copy()
    return faces


def clean(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Degenerate, duplicate and opposite-coincident faces removed, unused vertices dropped."""
    faces = remove_duplicate_faces(remove_degenerate(vertices, np.asarray(faces, dtype=np.int64)))
    return compact(vertices, faces)

