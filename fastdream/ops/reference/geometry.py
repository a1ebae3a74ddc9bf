"""PyTorch twin of fastdream.ops.geometry."""
from __future__ import annotations

import torch

__all__ = ["ray_aabb_intersect"]


def ray_aabb_intersect(rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor):
    """Reference slab test with the same conventions as fastdream.ops.ray_aabb_intersect."""
    lo, hi = aabb[:3], aabb[3:]
    finite = torch.isfinite(rays_o).all(-1) & torch.isfinite(rays_d).all(-1)
    box_ok = bool((lo <= hi).all())
    with torch.no_grad():
        zero = rays_d == 0
        safe_d = torch.where(zero, torch.ones_like(rays_d), rays_d)
        inv = 1.0 / safe_d  # the kernel multiplies by the reciprocal too; same rounding
        t0 = (lo - rays_o) * inv
        t1 = (hi - rays_o) * inv
        tmin_axis = torch.minimum(t0, t1)
        tmax_axis = torch.maximum(t0, t1)
        inside_slab = (rays_o >= lo) & (rays_o <= hi)
        # Parallel to a slab: no constraint when inside it, a miss when outside.
        tmin_axis = torch.where(zero, torch.full_like(tmin_axis, -float("inf")), tmin_axis)
        tmax_axis = torch.where(zero, torch.full_like(tmax_axis, float("inf")), tmax_axis)
        parallel_miss = (zero & ~inside_slab).any(-1)
        t_near = tmin_axis.amax(-1).clamp_min(0.0)
        t_far = tmax_axis.amin(-1)
        hit = finite & ~parallel_miss & (t_near <= t_far) & box_ok
        inf = torch.full_like(t_near, float("inf"))
        return torch.where(hit, t_near, inf), torch.where(hit, t_far, inf), hit
