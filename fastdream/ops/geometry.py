"""Ray/box geometry ops."""
from __future__ import annotations

import torch

from fastdream import _backend
from fastdream.ops._checks import check_same_device, check_tensor

__all__ = ["ray_aabb_intersect"]


def ray_aabb_intersect(rays_o: torch.Tensor, rays_d: torch.Tensor, aabb: torch.Tensor):
    """Intersect rays with a box.

    rays_o, rays_d: [R, 3] float32; aabb: [6] float32 (xmin, ymin, zmin, xmax, ymax, zmax).
    Returns (t_near [R], t_far [R], hit [R] bool); t_near is clipped at 0 (origins inside start at 0),
    misses, non-finite rays and degenerate boxes give hit=False and t_near = t_far = inf.
    """
    check_tensor("rays_o", rays_o, shape=(None, 3), dtype=torch.float32)
    check_tensor("rays_d", rays_d, shape=(rays_o.shape[0], 3), dtype=torch.float32)
    check_tensor("aabb", aabb, shape=(6,), dtype=torch.float32)
    check_same_device(rays_o=rays_o, rays_d=rays_d, aabb=aabb)
    # Copies are cheap here and spare users a contiguity error.
    t_near, t_far, hit = _backend.load().ray_aabb_intersect(
        rays_o.contiguous(), rays_d.contiguous(), aabb.contiguous())
    return t_near, t_far, hit
