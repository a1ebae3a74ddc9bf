"""Empty space that no training camera could see, so that export can fill it.

SDS shapes only what the cameras see. Training cameras stay above the ground plane (elevation >= -10 degrees by
default), so a trained field is often a shell whose opening faces down; marching cubes then exports the shell's
inner surface as well, a second, inward-facing skin that no render shows (the closed shell of isosurface.py seals
cavities and openings narrower than its ball; these are wider). Filling the empty voxels that are hidden from
every training view direction removes that skin without changing what a training view shows.

Views are taken as parallel projections along a grid of directions; a voxel is seen from a direction when the
straight line from it towards the viewer crosses no solid voxel. Lines are traced slice by slice along the
direction's dominant axis with rounded offsets, so they are exact for axis directions and within one voxel of the
true line otherwise. Training cameras are perspective cameras close to the object: from a point r away from the
centre, a camera at distance R and elevation e is seen at elevations up to asin(r / R) away from e, so
`TrainingViews` widens the elevation range by that much for the object's bounding radius, samples it every 5
degrees and 24 azimuths, and the seen set is grown by one voxel before anything is filled (conservative: gaps
between sampled directions can leave a little skin, they should not fill what a camera sees).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["TrainingViews", "view_directions", "blocked_towards", "unseen_empty"]


def view_directions(elevation_range: Sequence[float], *, n_elevation: int = 5, n_azimuth: int = 16) -> np.ndarray:
    """Unit vectors [K, 3] from the object towards the viewer (z up) for elevations spanning elevation_range
    (degrees, both ends included) and n_azimuth azimuths around the full circle."""
    lo, hi = (float(v) for v in elevation_range)
    if not (-90.0 <= lo <= hi <= 90.0):
        raise ValueError(f"elevation_range must satisfy -90 <= low <= high <= 90, got {tuple(elevation_range)}")
    if n_elevation < 1 or n_azimuth < 1:
        raise ValueError("n_elevation and n_azimuth must be >= 1")
    elevations = np.linspace(lo, hi, n_elevation) if n_elevation > 1 else np.array([(lo + hi) / 2])
    out = []
    for el in np.radians(elevations):
        for az in np.linspace(0.0, 2 * math.pi, n_azimuth, endpoint=False):
            out.append((math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)))
            if abs(math.cos(el)) < 1e-9:
                break  # straight up or down: one direction is enough
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class TrainingViews:
    """Where the training cameras were: elevations (degrees) and the nearest camera distance (world units)."""

    elevation_range: tuple[float, float]
    min_distance: float

    def directions(self, object_radius: float, *, step_deg: float = 5.0, n_azimuth: int = 24) -> np.ndarray:
        """Parallel view directions ([K, 3]) covering every line from a point within object_radius of the centre
        to a camera of these views."""
        lo, hi = (float(v) for v in self.elevation_range)
        ratio = float(object_radius) / float(self.min_distance) if self.min_distance > 0 else math.inf
        widen = 90.0 if ratio >= 1.0 else math.degrees(math.asin(ratio))
        lo, hi = max(-90.0, lo - widen), min(90.0, hi + widen)
        n_elevation = max(2, int(math.ceil((hi - lo) / step_deg)) + 1)
        return view_directions((lo, hi), n_elevation=n_elevation, n_azimuth=n_azimuth)


def blocked_towards(solid: torch.Tensor, direction: Sequence[float]) -> torch.Tensor:
    """bool [X, Y, Z]: the line from each voxel towards a viewer at infinity along `direction` (index units)
    crosses a solid voxel (the voxel itself not counted)."""
    d = np.asarray(direction, dtype=np.float64)
    if d.shape != (3,) or not np.all(np.isfinite(d)) or not np.any(d):
        raise ValueError(f"direction must be a finite non-zero 3-vector, got {direction}")
    axis = int(np.argmax(np.abs(d)))
    others = [a for a in range(3) if a != axis]
    slopes = [d[o] / abs(d[axis]) for o in others]
    # slices along the dominant axis, ordered so that the viewer is beyond the last one
    s = solid.movedim(axis, 0)
    if d[axis] < 0:
        s = s.flip(0)
    n = s.shape[0]
    out = torch.empty_like(s)
    behind = torch.zeros_like(s[0])  # for the current slice: what lies between it and the viewer
    prev = (0, 0)
    for k in range(n - 1, -1, -1):
        out[k] = behind
        step = n - k
        off = (int(round(step * slopes[0])), int(round(step * slopes[1])))
        shift = (off[0] - prev[0], off[1] - prev[1])
        prev = off
        # one slice further from the viewer: the line to the viewer passes `shift` cells over in this slice
        behind = _shift(behind | s[k], shift)
    if d[axis] < 0:
        out = out.flip(0)
    return out.movedim(0, axis)


def _shift(plane: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """out[i, j] = plane[i + di, j + dj], False where that falls outside."""
    di, dj = shift
    if di == 0 and dj == 0:
        return plane
    out = torch.zeros_like(plane)
    h, w = plane.shape
    src_i = slice(max(di, 0), h + min(di, 0))
    dst_i = slice(max(-di, 0), h + min(-di, 0))
    src_j = slice(max(dj, 0), w + min(dj, 0))
    dst_j = slice(max(-dj, 0), w + min(-dj, 0))
    if src_i.start < src_i.stop and src_j.start < src_j.stop:
        out[dst_i, dst_j] = plane[src_i, src_j]
    return out


def unseen_empty(solid: np.ndarray, directions: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """bool [X, Y, Z]: empty voxels of `solid` that are not seen from any of `directions` ([K, 3], world units,
    towards the viewer); spacing is the world size of a voxel along x, y, z."""
    solid_t = torch.from_numpy(np.ascontiguousarray(solid, dtype=bool))
    spacing = np.asarray(spacing, dtype=np.float64)
    seen = torch.zeros_like(solid_t)
    for d in np.asarray(directions, dtype=np.float64).reshape(-1, 3):
        seen |= ~blocked_towards(solid_t, d / spacing)
    seen &= ~solid_t
    # grow the seen empty space by one voxel: lines are only traced to within a voxel
    seen = torch.nn.functional.max_pool3d(seen[None, None].float(), 3, stride=1, padding=1)[0, 0].bool()
    return (~solid_t & ~seen).numpy()
