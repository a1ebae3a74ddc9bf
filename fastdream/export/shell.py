"""Inside or outside: the empty space a ball can reach from beyond the box is outside, everything else is solid.

A trained field's outer shell is rarely sealed: SDS leaves pinholes, and behind them foam and cavities that no
render shows. A plain flood fill from the border leaks through the smallest pinhole and keeps all of that as
surface. Here the outside is what a ball of `radius` voxels sweeps while it travels in from the box's border
without touching a solid voxel (a morphological opening of the empty space, restricted to the part connected to
the border), so openings narrower than the ball's diameter do not let the outside in. The price: creases and gaps
narrower than the ball are filled too.
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

# Openings narrower than this fraction of the box's largest side are sealed: the ball's diameter.
DEFAULT_SEAL = 0.03


def _shifted_or(out: np.ndarray, src: np.ndarray, offset) -> None:
    """out |= src shifted by offset (voxels, per axis); what is shifted in from beyond the edge is False."""
    dst = tuple(slice(max(o, 0), n + min(o, 0)) for o, n in zip(offset, src.shape))
    srcs = tuple(slice(max(-o, 0), n - max(o, 0)) for o, n in zip(offset, src.shape))
    out[dst] |= src[srcs]


def dilate_ball(mask: np.ndarray, radius: float) -> np.ndarray:
    """Bool mask grown by every voxel offset d with |d| <= radius (a digital Euclidean ball), as shifted ORs.

    The ball is decomposed into z-segments, one per (dx, dy) of its disk: about pi*radius^2 + 2*radius passes over
    the grid instead of one per ball voxel."""
    k = int(math.floor(radius))
    segments = [mask]  # segments[h]: mask grown along z by up to h voxels
    for h in range(1, k + 1):
        seg = segments[-1].copy()
        _shifted_or(seg, mask, (0, 0, h))
        _shifted_or(seg, mask, (0, 0, -h))
        segments.append(seg)
    out = segments[-1].copy()
    for dx in range(-k, k + 1):
        for dy in range(-k, k + 1):
            rest = radius * radius - dx * dx - dy * dy
            if (dx, dy) != (0, 0) and rest >= 0:
                _shifted_or(out, segments[int(math.floor(math.sqrt(rest) + 1e-9))], (dx, dy, 0))
    return out


def _crop_box(solid: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Bounding box of the solid voxels grown by margin (clipped to the grid)."""
    idx = [np.flatnonzero(solid.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    return tuple(slice(max(int(i[0]) - margin, 0), min(int(i[-1]) + margin + 1, n))
                 for i, n in zip(idx, solid.shape))


def outside_space(solid: np.ndarray, radius: float) -> np.ndarray:
    """Bool [X, Y, Z]: the non-solid voxels swept by a ball of `radius` voxels (>= 0) that enters from beyond the box.

    solid: bool [X, Y, Z]; the grid is treated as surrounded by empty space. The ball is digital: the voxel
    offsets d with |d| <= radius; it may stand wherever no solid voxel lies within it. radius < 1 is a plain
    6-connected flood fill of the empty voxels from the border. The result never contains a solid voxel.
    """
    from scipy import ndimage

    solid = np.asarray(solid, dtype=bool)
    if solid.ndim != 3:
        raise ValueError(f"solid must be a 3-D bool grid, got shape {list(solid.shape)}")
    if not (radius >= 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a finite number of voxels >= 0, got {radius}")
    outside = ~solid
    if not solid.any():
        return outside
    # Beyond the solid's bounding box (grown by the ball and one more voxel) every voxel is reached: work inside it,
    # padded so that the ball can always stand on its border layer.
    margin = int(math.floor(radius)) + 1
    box = _crop_box(solid, margin)
    sub = np.pad(solid[box], margin, constant_values=False)
    core = ~dilate_ball(sub, radius)  # where the ball's centre may stand
    labels, _ = ndimage.label(core)  # 6-connected: no squeezing through diagonal gaps
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    reached = np.isin(labels, border[border > 0])
    del labels, core
    swept = dilate_ball(reached, radius)  # free of solid voxels: every ball it is made of stood on free space
    outside[box] = swept[(slice(margin, -margin),) * 3] & ~solid[box]
    return outside


def closed_field(grid: np.ndarray, level: float, radius: float,
                 solid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(field, outside): the density grid with every voxel the outside cannot reach raised above level.

    solid: bool [X, Y, Z], default grid > level (pass more to count other space as solid too). Marching cubes on
    `field` at `level` then meets only the boundary between the outside (outside_space with `radius` voxels) and
    the rest, so every surface it gives is closed with nothing inside it. Where that boundary is the trained
    surface (a voxel above the level next to an outside one) both values are the density's own, so the surface
    sits where the density level puts it; across a sealed opening the raised value 2*level puts it half-way
    between the voxel centres when the outside is clear.
    """
    if solid is None:
        solid = grid > level
    outside = outside_space(solid, radius)
    raise_ = ~outside & ~(grid > level)
    field = np.array(grid, dtype=np.float32, copy=True)
    field[raise_] = level + max(abs(level), 1e-6)
    log.debug("shell: %d voxels above the level, %d raised, %d outside (ball radius %.2f voxels)",
              int((grid > level).sum()), int(raise_.sum()), int(outside.sum()), radius)
    return field, outside
