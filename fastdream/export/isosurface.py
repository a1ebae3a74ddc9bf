"""Density field -> triangle mesh: grid evaluation, opacity-matched threshold, marching cubes, cleanup, decimation.

Axis convention: meshes returned here are in fastdream world coordinates (z-up, world units), exactly the space
the field is queried in. The writers convert to y-up where a format asks for it.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from fastdream.errors import UserError
from fastdream.export import cleanup
from fastdream.export.cleanup import keep_large_components  # noqa: F401  (public here before)
from fastdream.export.decimate import decimate
from fastdream.export.shell import DEFAULT_SEAL, closed_field

log = logging.getLogger(__name__)

DensityFn = Callable[[torch.Tensor], torch.Tensor]

# Rendered opacity 0.5 <=> optical depth ln 2: the median termination point of a ray.
_HALF_OPACITY_DEPTH = math.log(2.0)


class NoSurfaceError(UserError):
    """The field has no surface to extract (empty or everywhere transparent at the chosen threshold)."""


class Mesh(NamedTuple):
    vertices: np.ndarray  # [V, 3] float32, world units, z-up
    faces: np.ndarray  # [F, 3] int64, counter-clockwise seen from outside (outward normals)
    threshold: float  # density level the surface was extracted at


def _aabb_array(aabb) -> np.ndarray:
    a = np.asarray(aabb.detach().cpu() if isinstance(aabb, torch.Tensor) else aabb, dtype=np.float64).reshape(-1)
    if a.shape != (6,) or not np.all(np.isfinite(a)):
        raise ValueError(f"aabb must be 6 finite numbers (xmin, ymin, zmin, xmax, ymax, zmax), got {a.tolist()}")
    if np.any(a[3:] <= a[:3]):
        raise ValueError(f"aabb must have max > min on every axis, got {a.tolist()}")
    return a


def _infer_device(fn) -> torch.device:
    module = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    if isinstance(module, torch.nn.Module):
        for t in list(module.parameters()) + list(module.buffers()):
            return t.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dilated_occupancy(occupied, device) -> torch.Tensor | None:
    """occupied (bool [r, r, r]) grown by one cell, on `device`; None stays None."""
    if occupied is None:
        return None
    occ = torch.as_tensor(occupied).to(device)
    if occ.dim() != 3 or occ.dtype != torch.bool or len(set(occ.shape)) != 1:
        raise ValueError(f"occupied must be a bool [r, r, r] grid, got {list(occ.shape)} {occ.dtype}")
    return torch.nn.functional.max_pool3d(occ[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0


@torch.no_grad()
def evaluate_grid(density_fn: DensityFn, aabb, resolution: int, *, chunk: int = 1 << 18,
                  device: torch.device | str | None = None, progress: bool = False,
                  occupied: torch.Tensor | None = None) -> np.ndarray:
    """Density at the resolution^3 lattice spanning aabb (corners included): [N, N, N] float32, index order x, y, z.

    occupied: optional bool [r, r, r] occupancy over the same aabb (an OccupancyGrid's level 0, index order x, y,
    z). Points away from occupied cells (dilated by one cell) are not evaluated and get density 0: the renderer
    skips those cells too, so the mesh still matches the render, and a field that fills a fraction of its box
    costs that fraction.
    """
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution}")
    resolution = int(resolution)
    a = _aabb_array(aabb)
    device = torch.device(device) if device is not None else _infer_device(density_fn)
    axes = [torch.linspace(a[i], a[i + 3], resolution, dtype=torch.float32, device=device) for i in range(3)]
    yz = torch.stack(torch.meshgrid(axes[1], axes[2], indexing="ij"), -1).reshape(-1, 2)  # [N*N, 2]
    out = np.zeros((resolution, resolution * resolution), dtype=np.float32)
    occ = _dilated_occupancy(occupied, device)
    lo = torch.tensor(a[:3], dtype=torch.float32, device=device)
    ext = torch.tensor(a[3:] - a[:3], dtype=torch.float32, device=device)
    slabs = max(1, chunk // yz.shape[0])
    from tqdm.auto import tqdm

    bar = tqdm(total=resolution, desc="density grid", unit="slab", disable=not progress, leave=False)
    for i0 in range(0, resolution, slabs):
        xs = axes[0][i0:i0 + slabs]
        pts = torch.cat([xs.repeat_interleave(yz.shape[0])[:, None], yz.repeat(xs.shape[0], 1)], 1)
        keep = None
        if occ is not None:
            idx = ((pts - lo) / ext * occ.shape[0]).floor().long().clamp_(0, occ.shape[0] - 1)
            keep = occ[idx[:, 0], idx[:, 1], idx[:, 2]]
            pts = pts[keep]
            if pts.shape[0] == 0:
                bar.update(xs.shape[0])
                continue
        sigma = density_fn(pts)
        if not isinstance(sigma, torch.Tensor):
            sigma = torch.as_tensor(np.asarray(sigma))
        sigma = sigma.reshape(-1)
        if sigma.shape[0] != pts.shape[0]:
            raise ValueError(f"density_fn must return one value per point: got {sigma.shape[0]} for {pts.shape[0]}")
        if keep is None:
            out[i0:i0 + xs.shape[0]] = sigma.float().reshape(xs.shape[0], -1).cpu().numpy()
        else:
            block = torch.zeros(keep.shape[0], device=sigma.device)
            block[keep.to(sigma.device)] = sigma.float()
            out[i0:i0 + xs.shape[0]] = block.reshape(xs.shape[0], -1).cpu().numpy()
        bar.update(xs.shape[0])
    bar.close()
    grid = out.reshape(resolution, resolution, resolution)
    bad = ~np.isfinite(grid)
    if bad.any():
        log.warning("density has %d non-finite values; treating NaN as 0 and inf as very dense", int(bad.sum()))
        np.nan_to_num(grid, copy=False, nan=0.0, posinf=np.finfo(np.float32).max / 4, neginf=0.0)
    return grid


def _axis_rays(grid: np.ndarray, axis: int, max_rays_per_axis: int) -> np.ndarray:
    g = np.moveaxis(grid, axis, -1)
    stride = max(1, int(math.ceil(max(g.shape[0], g.shape[1]) / max_rays_per_axis)))
    return np.ascontiguousarray(g[::stride, ::stride], dtype=np.float64).reshape(-1, grid.shape[axis])


def silhouette_threshold(grid: np.ndarray, spacing, *, max_rays_per_axis: int = 256) -> float:
    """Density level whose mesh silhouettes best match the rendered opacity-0.5 masks along the three axes.

    A ray along an axis renders opaque (opacity >= 0.5) when its optical depth (trapezoid integral of the density)
    reaches ln 2; the mesh at level L covers it when the density on the ray exceeds L. L is chosen to minimise the
    number of rays (over all three axes) where the two disagree. Optical depth is independent of the renderer's
    step size to first order, so the level holds for any render_step_size. Raises NoSurfaceError when no ray renders
    opaque.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    peaks, opaque = [], []
    for axis in range(3):
        rays = _axis_rays(grid, axis, max_rays_per_axis)
        tau = float(spacing[axis]) * (rays.sum(1) - 0.5 * (rays[:, 0] + rays[:, -1]))
        peaks.append(rays.max(1))
        opaque.append(tau >= _HALF_OPACITY_DEPTH)
    peak = np.concatenate(peaks)
    hit = np.concatenate(opaque)
    if not hit.any():
        raise NoSurfaceError("the field renders as empty: no ray through the box reaches opacity 0.5, so there is "
                             "no surface to extract (train longer, or pass an explicit threshold)")
    order = np.argsort(peak, kind="stable")
    peak, hit = peak[order], hit[order]
    # level just above peak[k]: rays 0..k uncovered, k+1.. covered; errors = opaque among 0..k + clear among k+1..
    opaque_below = np.cumsum(hit)
    clear_above = (~hit).sum() - np.cumsum(~hit)
    errors = np.concatenate([[(~hit).sum()], opaque_below + clear_above])  # index 0: level below every peak
    best = np.flatnonzero(errors == errors.min())
    k = int(best[len(best) // 2])  # middle of the optimal run of cut positions
    lo = peak[k - 1] if k > 0 else min(0.0, float(peak[0]) - 1.0)
    hi = peak[k] if k < len(peak) else float(peak[-1]) * 2.0 + 1.0
    # Midway: where the interval is wide (a field sharper than a voxel), marching cubes then puts the surface
    # halfway between the samples on either side, the unbiased choice.
    return float(0.5 * (lo + hi))


def depth_threshold(grid: np.ndarray, spacing, *, max_rays_per_axis: int = 128) -> float:
    """Median density at the points where axis-aligned rays reach opacity 0.5 (their median termination depth).

    Matches the rendered depth of surfaces facing the camera; for soft fields it yields a thinner mesh than the
    rendered silhouette (grazing rays accumulate opacity sooner). Raises NoSurfaceError when no ray renders opaque.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    levels = []
    for axis in range(3):
        g = _axis_rays(grid, axis, max_rays_per_axis)
        g = g[g.max(1) > 0]
        if g.shape[0] == 0:
            continue
        h = float(spacing[axis])
        for rays in (g, g[:, ::-1]):
            s0, s1 = rays[:, :-1], rays[:, 1:]
            seg = 0.5 * h * (s0 + s1)  # trapezoid optical depth of each segment
            tau = np.concatenate([np.zeros((rays.shape[0], 1)), np.cumsum(seg, 1)], 1)
            hit = tau[:, -1] >= _HALF_OPACITY_DEPTH
            if not hit.any():
                continue
            tau, s0, s1 = tau[hit], s0[hit], s1[hit]
            k = np.argmax(tau[:, 1:] >= _HALF_OPACITY_DEPTH, axis=1)  # segment where ln 2 is crossed
            r = np.arange(k.shape[0])
            a0, a1 = s0[r, k], s1[r, k]
            need = (_HALF_OPACITY_DEPTH - tau[r, k]) / h  # remaining integral in units of h
            # solve a0*t + (a1-a0)*t^2/2 = need for t in [0, 1]
            da = a1 - a0
            disc = np.maximum(a0 * a0 + 2.0 * da * need, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(np.abs(da) > 1e-12 * np.maximum(np.abs(a0), 1e-30),
                             (-a0 + np.sqrt(disc)) / np.where(da == 0, 1.0, da), need / np.maximum(a0, 1e-30))
            t = np.clip(np.nan_to_num(t, nan=1.0), 0.0, 1.0)
            levels.append(a0 + da * t)
    if not levels:
        raise NoSurfaceError("the field renders as empty: no ray through the box reaches opacity 0.5, so there is "
                             "no surface to extract (train longer, or pass an explicit threshold)")
    return float(np.median(np.concatenate(levels)))


def choose_level(grid: np.ndarray, spacing, threshold: float | str | None) -> float:
    """The density level of the surface: 'silhouette' (None), 'depth' or a finite number (see extract_mesh)."""
    if threshold is None or threshold == "silhouette":
        level = silhouette_threshold(grid, spacing)
        log.info("density threshold %.4g (silhouettes match rendered opacity 0.5)", level)
    elif threshold == "depth":
        level = depth_threshold(grid, spacing)
        log.info("density threshold %.4g (median rendered depth)", level)
    elif isinstance(threshold, str):
        raise ValueError(f"threshold must be None, 'silhouette', 'depth' or a number, got {threshold!r}")
    else:
        level = float(threshold)
        if not math.isfinite(level):
            raise ValueError(f"threshold must be finite, got {threshold}")
    gmin, gmax = float(grid.min()), float(grid.max())
    if not (gmax > level):
        raise NoSurfaceError(f"no surface: the density never exceeds the threshold {level:.4g} "
                             f"(density range [{gmin:.4g}, {gmax:.4g}]); train longer or lower the threshold")
    return level


def _unseen(solid: np.ndarray, views, a: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Empty voxels no training view could see (see fastdream.export.visibility)."""
    from fastdream.export.visibility import TrainingViews, unseen_empty

    directions = views
    if isinstance(views, TrainingViews):
        points = np.argwhere(solid) * spacing + a[:3] - (a[:3] + a[3:]) / 2  # from the box centre
        radius = float(np.sqrt((points ** 2).sum(1).max())) + float(spacing.max()) if len(points) else 0.0
        directions = views.directions(radius)
    return unseen_empty(solid, directions, spacing)


def _filled_field(grid: np.ndarray, level: float, solid: np.ndarray, fill_cavities: bool) -> np.ndarray:
    """The pre-shell behaviour: fill what a plain flood fill from outside misses (and solid), keep all else."""
    from scipy import ndimage

    fill = solid & ~(grid > level)
    if fill_cavities:
        fill |= ndimage.binary_fill_holes(solid) & ~solid
    if not fill.any():
        return grid
    grid = grid.copy()
    grid[fill] = float(grid.max())  # above the level, so no surface bounds the filled space
    return grid


def march(field: np.ndarray, level: float, origin, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of field [X, Y, Z] at level, padded so every surface closes: (vertices [V, 3] float32 world
    units, faces [F, 3] int64, outward for a field that rises inwards), with no degenerate or duplicate faces."""
    from skimage.measure import marching_cubes

    spacing = np.asarray(spacing, dtype=np.float64)
    delta = 1e-3 * max(abs(level), 1e-6)
    # Values at (or a float32 ulp from) the level put vertices on grid points, where those of neighbouring edges
    # coincide and their triangles have zero area: keep every value a little off the level, on its own side.
    near = np.abs(field - level) < delta
    if near.any():
        field = field.copy()
        field[near] = np.where(field[near] > level, level + delta, level - delta)
    padded = np.pad(field, 1, mode="constant", constant_values=min(0.0, float(field.min()), level - 1.0))
    verts, faces, _, _ = marching_cubes(padded, level, spacing=tuple(float(s) for s in spacing),
                                        allow_degenerate=True)
    verts = (verts + (np.asarray(origin, dtype=np.float64) - spacing)).astype(np.float32)
    # any vertices that still coincide are merged; the triangles between them fold away
    verts, faces = cleanup.weld(verts, faces.astype(np.int64))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    verts, faces = cleanup.compact(verts, cleanup.remove_duplicate_faces(faces))
    return verts, cleanup.orient_outward(verts, faces)


def _field_to_mesh(grid: np.ndarray, level: float, a: np.ndarray, spacing: np.ndarray, solid: np.ndarray,
                   shell: bool, seal: float, fill_cavities: bool) -> tuple[np.ndarray, np.ndarray]:
    if shell:
        if not (seal >= 0 and math.isfinite(seal)):
            raise ValueError(f"seal must be a finite fraction of the box >= 0, got {seal}")
        radius = 0.5 * seal * float((a[3:] - a[:3]).max()) / float(spacing.mean())
        field, _ = closed_field(grid, level, radius, solid)
    else:
        field = _filled_field(grid, level, solid, fill_cavities)
    verts, faces = march(field, level, a[:3], spacing)
    if len(faces) == 0:
        raise NoSurfaceError(f"no surface: marching cubes found no triangles at threshold {level:.4g}")
    if shell:
        topo = cleanup.topology(faces)
        if not topo.closed_manifold:  # marching cubes of a closed field: not expected, but say so if it happens
            log.warning("the extracted shell is not a closed manifold: %s", topo)
    return verts, faces


def extract_mesh(density_fn: DensityFn, aabb, resolution: int = 256, threshold: float | str | None = None, *,
                 max_faces: int | None = None, min_component_ratio: float | None = None,
                 device: torch.device | str | None = None, chunk: int = 1 << 18, progress: bool = False,
                 grid: np.ndarray | None = None, occupied: torch.Tensor | None = None, shell: bool = True,
                 seal: float = DEFAULT_SEAL, fill_cavities: bool = True, views=None) -> Mesh:
    """Triangle mesh of a density field's outer surface, in world units (z-up), outward-facing, cleaned.

    density_fn: x [N, 3] float32 -> sigma [N] (per world unit), evaluated on a resolution^3 lattice spanning aabb
    ([6]: min xyz, max xyz), chunked, on the field's device (or CUDA when available), only near `occupied` cells
    when given (see evaluate_grid); or pass the lattice as grid. Space beyond the box counts as empty, so a shape
    touching the box is closed there.

    threshold=None (or "silhouette") picks the level whose mesh silhouettes match the rendered opacity-0.5 masks
    (see `silhouette_threshold`; tests/test_export_mesh.py measures it against the peers' fixed level); "depth"
    picks the median density where rays reach opacity 0.5 (see `depth_threshold`); a float is used as given.

    shell=True (the default): one closed, consistently outward-wound 2-manifold per kept component and nothing
    inside it. Space above the level is solid; the outside is the empty space a ball reaches from beyond the box
    (fastdream.export.shell), so openings in a trained shell narrower than the ball's diameter, seal (a fraction
    of the box's largest side), are sealed, and everything the outside does not reach (cavities, foam, the inside
    of a leaky shell) is solid. SDS only constrains what cameras see, so trained fields are often hollow or spongy
    inside. Only the largest component is kept unless min_component_ratio (area relative to the largest) says
    otherwise. shell=False keeps every surface at the level (inner shells too) except cavities that a plain
    flood fill from outside misses (fill_cavities); those meshes need not be closed or manifold.
    views (a fastdream.export.visibility.TrainingViews, or a [K, 3] array of parallel view directions): empty space
    that no training camera could see counts as solid first (see visibility.py).

    With max_faces the mesh is decimated (quadric, see fastdream.export.decimate: a closed mesh stays closed).
    Raises NoSurfaceError when nothing is left.
    """
    a = _aabb_array(aabb)
    if grid is None:
        grid = evaluate_grid(density_fn, a, resolution, chunk=chunk, device=device, progress=progress,
                             occupied=occupied)
    spacing = (a[3:] - a[:3]) / (grid.shape[0] - 1)
    level = choose_level(grid, spacing, threshold)
    solid = grid > level
    if views is not None:
        solid |= _unseen(solid, views, a, spacing)
    verts, faces = _field_to_mesh(grid, level, a, spacing, solid, shell, seal, fill_cavities)
    ratio = min_component_ratio if min_component_ratio is not None else (1.0 if shell else 0.02)
    verts, faces = cleanup.keep_large_components(verts, faces, ratio)
    if max_faces is not None:
        if int(max_faces) < 4:
            raise ValueError(f"max_faces must be >= 4, got {max_faces}")
        verts, faces = decimate(verts, faces, int(max_faces), min_component_ratio=ratio, keep_closed=shell)
    if len(faces) == 0:
        raise NoSurfaceError("no surface left after cleanup")
    return Mesh(verts, faces, level)
