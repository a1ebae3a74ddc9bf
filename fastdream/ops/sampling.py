"""Ray marching through an occupancy bitfield: packed samples (ray_indices, t_starts, t_ends), exact or fixed-size.

The reference twin is fastdream.ops.reference.march_rays (it reads the unpacked bool grid instead of the bits).
"""
from __future__ import annotations

import math

import torch

from fastdream import _backend
from fastdream.ops._checks import check_same_device, check_tensor
from fastdream.ops.capacity import resolve as resolve_capacity

__all__ = ["march_rays"]


def _check_march_args(rays_o, rays_d, bits, render_step_size, cone_angle, near_plane, far_plane) -> None:
    check_tensor("rays_o", rays_o, shape=(None, 3), dtype=torch.float32)
    check_tensor("rays_d", rays_d, shape=(rays_o.shape[0], 3), dtype=torch.float32)
    check_same_device(rays_o=rays_o, rays_d=rays_d, grid=bits)
    step = float(render_step_size)
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"render_step_size must be finite and > 0, got {render_step_size}")
    if not math.isfinite(float(cone_angle)) or cone_angle < 0:
        raise ValueError(f"cone_angle must be finite and >= 0, got {cone_angle}")
    if math.isnan(float(near_plane)) or math.isnan(float(far_plane)):
        raise ValueError("near_plane and far_plane must not be NaN")


def march_rays(rays_o: torch.Tensor, rays_d: torch.Tensor, bits: torch.Tensor, aabb: list[float], levels: int,
               resolution: int, *, near_plane: float = 0.0, far_plane: float = 1e10, render_step_size: float = 1e-3,
               cone_angle: float = 0.0, jitter: torch.Tensor | None = None, max_samples=None):
    """March rays [R,3] float32 through occupied cells: (ray_indices [N] int64, t_starts [N], t_ends [N]).

    bits: the Morton-order bitfield of fastdream.scene.occupancy.pack_bits over `aabb` (6 floats) with `levels`
    cascades of `resolution`^3 cells. Samples are sorted by ray, then t, inside [near_plane, far_plane]; a sample
    exists where the cell holding its midpoint is occupied; they sit on t0 + k * render_step_size (t0 = box entry
    + jitter [R] in [0,1) steps) or, with cone_angle > 0, step max(step, t * cone_angle).

    max_samples=K (int or fastdream.ops.capacity.SampleCapacity): fixed capacity, no host sync; N = K, padding has
    ray index -1 and t_starts == t_ends == 0, and samples beyond K are dropped (far end first). Without it N is
    exact, which costs one host sync.
    """
    _check_march_args(rays_o, rays_d, bits, render_step_size, cone_angle, near_plane, far_plane)
    capacity, tracker = resolve_capacity(max_samples)
    if capacity is not None and (not isinstance(capacity, int) or capacity < 0):
        raise ValueError(f"max_samples must be None, an int >= 0 or a SampleCapacity, got {max_samples!r}")
    ray_indices, t_starts, t_ends, counts = _backend.load().march(
        rays_o.contiguous(), rays_d.contiguous(), jitter, bits, [float(v) for v in aabb], int(levels),
        int(resolution), float(near_plane), float(far_plane), float(render_step_size), float(cone_angle),
        -1 if capacity is None else capacity)
    if tracker is not None:
        tracker.observe(counts.sum(), capacity)
    return ray_indices, t_starts, t_ends
