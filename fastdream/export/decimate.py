"""Quadric decimation (fast-simplification) that keeps a closed, manifold mesh closed and manifold.

fast-simplification collapses edges without checking that the surface stays a manifold: where a part is thin or a
handle is small it folds the surface onto itself (coincident faces of opposite winding, edges with four faces,
pinched vertices). Folds made of coincident pairs are removed by cleanup.clean; where defects remain, the input
faces around them are protected (taken out, and the decimation told to keep the border that leaves) and the rest
is decimated again; then the protected faces are put back, so those places keep their original triangles.
"""
from __future__ import annotations

import logging

import numpy as np

from fastdream.export.cleanup import (clean, compact, defect_vertices, keep_large_components, topology, weld)

log = logging.getLogger(__name__)


def _simplify(vertices: np.ndarray, faces: np.ndarray, target: int, preserve_border: bool = False):
    import fast_simplification

    v, f = fast_simplification.simplify(vertices.astype(np.float64), faces.astype(np.int64),
                                        target_count=max(4, int(target)), preserve_border=preserve_border)
    return v.astype(np.float32), np.asarray(f, dtype=np.int64)


def _finish(vertices: np.ndarray, faces: np.ndarray, min_ratio: float):
    vertices, faces = clean(vertices, faces)
    if len(faces):
        vertices, faces = keep_large_components(vertices, faces, min_ratio)
    return vertices, faces


def _protected(vertices, faces, protect: np.ndarray, target: int, min_ratio: float):
    """Decimate faces[~protect] with their border kept, then add faces[protect] back unchanged."""
    patch = faces[protect]
    rest_v, rest_f = compact(vertices, faces[~protect])
    if len(rest_f) == 0:
        return compact(vertices, faces)
    dv, df = _simplify(rest_v, rest_f, target - len(patch), preserve_border=True)
    # border vertices are never moved, so the patch meets the decimated part at exactly equal positions
    v, f = weld(np.concatenate([dv, vertices]), np.concatenate([df, patch + len(dv)]))
    return _finish(*compact(v, f), min_ratio)


def _near_faces(vertices, faces, points: np.ndarray, radius: float) -> np.ndarray:
    """Bool [F]: faces with a vertex within radius of any of points, grown by one ring of neighbours."""
    from scipy.spatial import cKDTree

    near = np.zeros(len(vertices), dtype=bool)
    for hits in cKDTree(vertices).query_ball_point(points, radius):
        near[hits] = True
    mask = near[faces].any(1)
    ring = np.zeros(len(vertices), dtype=bool)
    ring[faces[mask].reshape(-1)] = True
    return ring[faces].any(1)


def _decimate_closed(vertices, faces, target: int, min_ratio: float, rounds: int):
    """Decimate to about `target` faces and repair defects by protecting input faces (see decimate); None when
    defects remain after `rounds` repairs."""
    v, f = _finish(*_simplify(vertices, faces, target), min_ratio)
    protect = np.zeros(len(faces), dtype=bool)
    for attempt in range(rounds + 1):
        bad = defect_vertices(f)
        if bad.size == 0 and len(f):
            if attempt:
                log.debug("decimation: %d input faces kept as they were to stay manifold", int(protect.sum()))
            return v, f
        if attempt == rounds:
            return None
        edge = float(np.linalg.norm(v[f[:, 0]] - v[f[:, 1]], axis=1).mean()) if len(f) else 0.0
        protect |= _near_faces(vertices, faces, v[bad], 1.5 * 2 ** attempt * edge)
        log.debug("decimation left %d defective vertices; protecting %d input faces", bad.size, int(protect.sum()))
        v, f = _protected(vertices, faces, protect, target, min_ratio)
    return None


def decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int, *, min_component_ratio: float = 0.02,
             keep_closed: bool = True, rounds: int = 4, relax: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to about max_faces faces; a closed 2-manifold stays one (see the module docstring).

    After each try the defects left are found (cleanup.defect_vertices) and the input faces near them (within 1.5
    mean decimated edge lengths, doubling each round, and one ring more) are protected in the next try, up to
    `rounds` times. If defects still remain, the budget is raised 4x (up to `relax` times: a noisy surface keeps
    more faces rather than all of them), and only then is the input returned, with a warning, rather than a broken
    mesh. Protected faces count towards max_faces, but where they are many the result can exceed it. With
    keep_closed=False, or for an input that is not a closed manifold, the mesh is decimated once and cleaned,
    unchecked.
    """
    if len(faces) <= max_faces:
        return vertices, faces
    if not keep_closed or not topology(faces).closed_manifold:
        return _finish(*_simplify(vertices, faces, max_faces), min_component_ratio)
    for target in (max_faces * 4 ** k for k in range(relax + 1)):
        if target >= len(faces):
            break
        result = _decimate_closed(vertices, faces, target, min_component_ratio, rounds)
        if result is not None:
            if target > max_faces:
                log.warning("decimation to %d faces could not keep the mesh closed and manifold; kept %d faces",
                            max_faces, len(result[1]))
            return result
    log.warning("decimation to %d faces could not keep the mesh closed and manifold; keeping all %d faces",
                max_faces, len(faces))
    return vertices, faces
