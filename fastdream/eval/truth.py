"""Absolute quality metrics of a triangle mesh against an exact procedural truth (a signed distance function).

All functions are pure: numpy meshes (vertices [V,3] float, faces [F,3] int, world units, z-up) and SDFs
(x [N,3] float tensor -> signed distance [N], negative inside). Distances are reported as a percentage of the field
box's diagonal, so figures compare across box sizes. Nothing here needs the mesh to be closed: an open or
self-intersecting mesh gets figures (and fails `mesh_validity`), it never crashes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["SdfFn", "CHAMFER_SAMPLES", "TRUTH_MC_RESOLUTION", "PROJECTION_STEPS", "VOLUME_RESOLUTION",
           "SILHOUETTE_THRESHOLD", "OFF_SURFACE_TOL", "box_diagonal", "sample_mesh_surface", "sample_sdf_surface",
           "project_to_surface", "nearest_distances", "chamfer_percent", "off_surface_fraction",
           "off_surface_by_height", "inside_mesh", "volume_iou", "silhouette_iou", "mesh_validity", "weld"]

SdfFn = Callable[[torch.Tensor], torch.Tensor]

CHAMFER_SAMPLES = 30_000  # area-uniform points per side: spacing ~0.01 on a unit-size object, so an exact mesh
# reads ~0.1 % of the diagonal; nearest-neighbour queries far from the surface cost ~N^2, so 100k took 30x longer
TRUTH_MC_RESOLUTION = 128  # lattice for the first guess of the truth surface; projection then makes it exact
PROJECTION_STEPS = 4  # Newton steps x -= f(x) grad f / |grad f|^2: exact SDFs converge in one, corners in a few
VOLUME_RESOLUTION = 128  # voxel centres per axis of the box for volume IoU
SILHOUETTE_THRESHOLD = 0.5  # rendered opacity above which a pixel is foreground (the median ray termination)
OFF_SURFACE_TOL = 0.05  # world units per unit box half-size: mesh area farther than this from the truth is "off"
HEIGHT_BAND = 0.2  # off_surface_by_height: the lowest and highest fifth of the truth's height are "bottom" / "top"
_CHUNK = 1 << 18  # SDF evaluations per call, bounds memory


def box_diagonal(aabb) -> float:
    """Length of the diagonal of aabb [6] (min xyz, max xyz), world units."""
    a = np.asarray(aabb, dtype=np.float64).reshape(6)
    return float(np.linalg.norm(a[3:] - a[:3]))


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)[faces]
    return 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)


def sample_mesh_surface(vertices, faces, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points [n,3] uniform by area on the mesh; empty [0,3] for a mesh without area."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    area = _face_areas(vertices, faces) if len(faces) else np.zeros(0)
    total = float(area.sum())
    if total <= 0 or n <= 0:
        return np.zeros((0, 3))
    tri = np.asarray(vertices, dtype=np.float64)[faces[rng.choice(len(faces), size=n, p=area / total)]]
    u, w = rng.random(n), rng.random(n)
    flip = u + w > 1  # fold the unit square onto the triangle: uniform barycentrics
    u[flip], w[flip] = 1 - u[flip], 1 - w[flip]
    return tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + w[:, None] * (tri[:, 2] - tri[:, 0])


def _eval_sdf(sdf: SdfFn, points: np.ndarray) -> np.ndarray:
    out = [sdf(torch.from_numpy(points[i:i + _CHUNK])).numpy() for i in range(0, len(points), _CHUNK)]
    return np.concatenate(out) if out else np.zeros(0)


def project_to_surface(sdf: SdfFn, points: np.ndarray, steps: int = PROJECTION_STEPS, eps: float = 1e-5):
    """Points [N,3] moved onto the SDF's zero level by Newton steps along its central-difference gradient."""
    p = np.array(points, dtype=np.float64)
    offsets = np.eye(3) * eps
    for _ in range(steps):
        d = _eval_sdf(sdf, p)
        grad = np.stack([_eval_sdf(sdf, p + o) - _eval_sdf(sdf, p - o) for o in offsets], -1) / (2 * eps)
        p -= (d / np.maximum((grad * grad).sum(-1), 1e-12))[:, None] * grad
    return p


def _grid_centres(aabb, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo [3], spacing [3]) of a resolution^3 lattice of cell centres over aabb."""
    a = np.asarray(aabb, dtype=np.float64).reshape(6)
    return a[:3], (a[3:] - a[:3]) / resolution


def sample_sdf_surface(sdf: SdfFn, aabb, n: int, rng: np.random.Generator,
                       resolution: int = TRUTH_MC_RESOLUTION) -> np.ndarray:
    """n points [n,3] on the zero level of sdf inside aabb, near-uniform by area: marching cubes, then projection."""
    from skimage.measure import marching_cubes

    lo, sp = _grid_centres(aabb, resolution)
    axes = [lo[i] + (np.arange(resolution) + 0.5) * sp[i] for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    values = _eval_sdf(sdf, pts).reshape(resolution, resolution, resolution)
    if values.min() >= 0 or values.max() <= 0:
        raise ValueError("the truth SDF has no surface inside the box")
    verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=tuple(sp))
    return project_to_surface(sdf, sample_mesh_surface(verts + lo + 0.5 * sp, faces, n, rng))


def nearest_distances(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance [N] from each point of src [N,3] to its nearest point of dst [M,3] (inf when dst is empty)."""
    from scipy.spatial import cKDTree

    if len(dst) == 0:
        return np.full(len(src), np.inf)
    return cKDTree(dst).query(src, k=1)[0]


def chamfer_percent(mesh_points: np.ndarray, truth_points: np.ndarray, diagonal: float) -> tuple[float, float]:
    """(mesh->truth, truth->mesh) mean nearest-point distance in % of `diagonal`; inf for a mesh without points."""
    if len(mesh_points) == 0:
        return float("inf"), float("inf")
    to_truth = nearest_distances(mesh_points, truth_points).mean()
    to_mesh = nearest_distances(truth_points, mesh_points).mean()
    return float(100.0 * to_truth / diagonal), float(100.0 * to_mesh / diagonal)


def off_surface_fraction(mesh_points: np.ndarray, truth_points: np.ndarray, tol: float) -> float:
    """Fraction of the mesh's area (area-uniform samples) farther than tol (world units) from the truth surface."""
    if len(mesh_points) == 0:
        return 1.0
    return float((nearest_distances(mesh_points, truth_points) > tol).mean())


def off_surface_by_height(mesh_points: np.ndarray, off: np.ndarray, truth_points: np.ndarray,
                          band: float = HEIGHT_BAND) -> dict[str, float]:
    """Where the off-surface area lies: {"bottom", "middle", "top"} fractions of the whole mesh's area whose samples are
    off (boolean `off` per mesh point) and lie in the lowest / middle / highest part of the truth's height (the
    outer `band` of it, and anything beyond). The bottom is what the training cameras (elevation >= -10) never see."""
    if len(mesh_points) == 0:
        return {"bottom": 0.0, "middle": 0.0, "top": 0.0}
    lo, hi = float(truth_points[:, 2].min()), float(truth_points[:, 2].max())
    z = (mesh_points[:, 2] - lo) / max(hi - lo, 1e-9)
    bottom, top = z < band, z > 1.0 - band
    return {"bottom": float((off & bottom).mean()), "middle": float((off & ~bottom & ~top).mean()),
            "top": float((off & top).mean())}


def _axis_crossings(vertices: np.ndarray, faces: np.ndarray, axis: int, lo, sp, res: int) -> np.ndarray:
    """Inside [res^3] (index order x, y, z) by the parity of mesh crossings of lines along `axis` below each cell."""
    a, b = [i for i in range(3) if i != axis]
    # A fixed irrational sub-cell shift keeps the lines off mesh edges and vertices, which lie on lattice planes.
    ca = lo[a] + (np.arange(res) + 0.5 + 1e-3 * np.sqrt(2)) * sp[a]
    cb = lo[b] + (np.arange(res) + 0.5 + 1e-3 * np.sqrt(3)) * sp[b]
    hist = np.zeros(res * res * (res + 1), dtype=np.int64)
    for s in range(0, len(faces), 1 << 16):
        t = vertices[faces[s:s + (1 << 16)]]  # [T,3,3]
        i0 = np.clip(np.ceil((t[:, :, a].min(1) - ca[0]) / sp[a]), 0, res).astype(np.int64)
        i1 = np.clip(np.floor((t[:, :, a].max(1) - ca[0]) / sp[a]), -1, res - 1).astype(np.int64)
        j0 = np.clip(np.ceil((t[:, :, b].min(1) - cb[0]) / sp[b]), 0, res).astype(np.int64)
        j1 = np.clip(np.floor((t[:, :, b].max(1) - cb[0]) / sp[b]), -1, res - 1).astype(np.int64)
        ni, nj = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
        count = ni * nj
        tri = np.repeat(np.arange(len(t)), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ii, jj = i0[tri] + k // nj[tri], j0[tri] + k % nj[tri]
        p = t[tri]
        qa, qb = ca[ii] - p[:, 0, a], cb[jj] - p[:, 0, b]
        e1a, e1b = p[:, 1, a] - p[:, 0, a], p[:, 1, b] - p[:, 0, b]
        e2a, e2b = p[:, 2, a] - p[:, 0, a], p[:, 2, b] - p[:, 0, b]
        det = e1a * e2b - e1b * e2a
        flat = det == 0  # seen edge-on: the line grazes it, no crossing
        det = np.where(flat, 1.0, det)
        w1 = (qa * e2b - qb * e2a) / det
        w2 = (e1a * qb - e1b * qa) / det
        hit = ~flat & (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)
        z = (p[:, 0, axis] + w1 * (p[:, 1, axis] - p[:, 0, axis]) + w2 * (p[:, 2, axis] - p[:, 0, axis]))[hit]
        first_above = np.clip(np.ceil((z - lo[axis]) / sp[axis] - 0.5), 0, res).astype(np.int64)
        hist += np.bincount((ii[hit] * res + jj[hit]) * (res + 1) + first_above, minlength=hist.size)
    inside = (np.cumsum(hist.reshape(res, res, res + 1), axis=2)[:, :, :res] % 2) == 1  # [a, b, axis]
    return np.moveaxis(inside, (0, 1, 2), (a, b, axis))


def inside_mesh(vertices, faces, aabb, resolution: int = VOLUME_RESOLUTION) -> np.ndarray:
    """Which cell centres of a resolution^3 lattice over aabb lie inside the mesh: bool [R,R,R] (x, y, z order).

    Ray parity along each of the three axes, then a majority vote: exact for a closed mesh, and a hole only flips
    the lines through it along one axis, which the other two outvote.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    lo, sp = _grid_centres(aabb, resolution)
    votes = sum(_axis_crossings(v, f, axis, lo, sp, resolution).astype(np.int8) for axis in range(3))
    return votes >= 2


def volume_iou(vertices, faces, sdf: SdfFn, aabb, resolution: int = VOLUME_RESOLUTION) -> float:
    """Intersection over union of the mesh's solid and the SDF's solid (sdf < 0), on lattice cell centres."""
    lo, sp = _grid_centres(aabb, resolution)
    axes = [lo[i] + (np.arange(resolution) + 0.5) * sp[i] for i in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    truth = _eval_sdf(sdf, pts).reshape(resolution, resolution, resolution) < 0
    mesh = inside_mesh(vertices, faces, aabb, resolution)
    union = int((truth | mesh).sum())
    return float((truth & mesh).sum() / union) if union else 1.0


def silhouette_iou(opacity, truth_masks, threshold: float = SILHOUETTE_THRESHOLD) -> tuple[float, list[float]]:
    """(mean, per view) IoU of opacity [V,H,W] > threshold against truth_masks [V,H,W] bool; empty union = 1."""
    pred = torch.as_tensor(opacity).float() > threshold
    truth = torch.as_tensor(truth_masks).bool()
    if pred.shape != truth.shape:
        raise ValueError(f"opacity {tuple(pred.shape)} and truth masks {tuple(truth.shape)} differ in shape")
    inter = (pred & truth).flatten(1).sum(1).double()
    union = (pred | truth).flatten(1).sum(1).double()
    per_view = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).tolist()
    return float(sum(per_view) / len(per_view)), per_view


def weld(vertices, faces, decimals: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at the same position (rounded to `decimals`): files split vertices along UV seams."""
    v = np.asarray(vertices, dtype=np.float64)
    _, first, inverse = np.unique(np.round(v, decimals), axis=0, return_index=True, return_inverse=True)
    return v[first], inverse.reshape(-1)[np.asarray(faces, dtype=np.int64)]


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 key per row of non-negative ints [N,K] (1D unique is ~10x faster than unique over rows)."""
    base = int(rows.max()) + 1 if rows.size else 1
    if base ** rows.shape[1] >= 2 ** 63:
        return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)
    key = np.zeros(len(rows), dtype=np.int64)
    for col in rows.T:
        key = key * base + col
    return key


def _edges(faces: np.ndarray):
    """Undirected edges of faces [F,3]: (keys [3F,2] sorted pairs, group id [3F], faces per group [E], corner id of
    the smaller and larger vertex [3F]); occurrence 3f+j is the edge from corner j to corner j+1 of face f."""
    nxt = np.roll(np.arange(3), -1)
    ea, eb = faces.reshape(-1), faces[:, nxt].reshape(-1)
    ca = np.arange(faces.size)
    cb = (ca // 3) * 3 + nxt[ca % 3]
    small = ea < eb
    keys = _row_keys(np.stack([np.where(small, ea, eb), np.where(small, eb, ea)], 1))
    _, group, count = np.unique(keys, return_inverse=True, return_counts=True)
    return group.reshape(-1), count, np.where(small, ca, cb), np.where(small, cb, ca)


def _vertex_fans(faces: np.ndarray, group, count, c_small, c_large, n_vertices: int) -> np.ndarray:
    """Fans [V] per vertex: groups of its incident faces connected through shared edges at that vertex."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    order = np.argsort(group, kind="stable")
    first = order[np.searchsorted(group[order], np.flatnonzero(count == 2))]
    second = order[np.searchsorted(group[order], np.flatnonzero(count == 2)) + 1]
    rows = np.concatenate([c_small[first], c_large[first]])
    cols = np.concatenate([c_small[second], c_large[second]])
    n = faces.size
    _, labels = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    pairs = np.unique(faces.reshape(-1).astype(np.int64) * n + labels)  # distinct (vertex, fan) pairs
    return np.bincount(pairs // n, minlength=n_vertices)


def mesh_validity(vertices, faces) -> dict:
    """Topology of the mesh as indexed: watertight (every edge in exactly two faces), manifold (edges in at most two
    faces and one face fan per vertex), winding_consistent (each shared edge runs opposite ways in its two faces),
    components (connected by shared vertices), degenerate_faces (repeated index or zero area), duplicate_faces
    (extra copies of a vertex triple, either winding), plus counts. Weld files first (see `weld`)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    scale = float(np.ptp(v, axis=0).max()) if len(v) else 1.0
    degenerate = repeated | (_face_areas(v, f) <= 1e-12 * scale * scale)
    duplicates = len(f) - len(np.unique(_row_keys(np.sort(f, axis=1)))) if len(f) else 0
    good = f[~repeated]  # a face with a repeated index has no proper edges: keep it out of the edge counts
    out = {"watertight": False, "manifold": False, "winding_consistent": False, "components": 0,
           "degenerate_faces": int(degenerate.sum()), "duplicate_faces": int(duplicates), "boundary_edges": 0,
           "nonmanifold_edges": 0, "nonmanifold_vertices": 0, "faces": int(len(f)),
           "vertices": int(len(np.unique(f))) if len(f) else 0}
    if len(good) == 0:
        return out
    group, count, c_small, c_large = _edges(good)
    directed = _row_keys(np.stack([good.reshape(-1), good[:, [1, 2, 0]].reshape(-1)], 1))
    _, directed_count = np.unique(directed, return_counts=True)
    fans = _vertex_fans(good, group, count, c_small, c_large, len(v))
    boundary, over = int((count == 1).sum()), int((count > 2).sum())
    out.update(watertight=boundary == 0 and over == 0, manifold=over == 0 and bool((fans <= 1).all()),
               winding_consistent=over == 0 and bool((directed_count == 1).all()),
               components=_components(good, len(v)), boundary_edges=boundary, nonmanifold_edges=over,
               nonmanifold_vertices=int((fans > 1).sum()))
    return out


def _components(faces: np.ndarray, n_vertices: int) -> int:
    """Connected pieces of the faces (through shared vertices); unused vertices do not count."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return 0
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    return int(len(np.unique(labels[faces[:, 0]])))
