"""Reference ray marcher over an unpacked occupancy grid: the PyTorch twin of fastdream.ops.march_rays."""
from __future__ import annotations

import math

import torch

from fastdream.ops.reference.geometry import ray_aabb_intersect

__all__ = ["march_rays", "grid_lookup"]


def _grid_frame(aabb, levels: int):
    a = torch.tensor([float(v) for v in aabb], dtype=torch.float32)
    center = (a[:3] + a[3:]) * 0.5
    half = (a[3:] - a[:3]) * 0.5
    ext = half * float(2 ** (levels - 1))
    return center, half, torch.cat([center - ext, center + ext])


def grid_lookup(occupied: torch.Tensor, aabb, points: torch.Tensor) -> torch.Tensor:
    """Whether each point [M,3] lies in an occupied cell of the finest level containing it (False outside)."""
    levels, res = occupied.shape[0], occupied.shape[1]
    center, half, _ = _grid_frame(aabb, levels)
    center, half = center.to(points.device), half.to(points.device)
    u = (points - center) / half
    m = u.abs().amax(-1)
    level = torch.zeros_like(m, dtype=torch.long)
    for lv in range(levels):
        level += (m > float(2 ** lv)).long()
    inside = level < levels
    level = level.clamp(max=levels - 1)
    scale = torch.pow(2.0, level.float())[:, None]
    idx = torch.floor((u / scale * 0.5 + 0.5) * res).long().clamp(0, res - 1)
    occ = occupied[level, idx[:, 0], idx[:, 1], idx[:, 2]]
    return occ & inside & ~torch.isnan(m)


def march_rays(occupied: torch.Tensor, aabb, rays_o, rays_d, near_plane: float = 0.0, far_plane: float = 1e10,
                  render_step_size: float = 1e-3, cone_angle: float = 0.0, jitter: torch.Tensor | None = None):
    """Reference marcher: every lattice sample of every ray, kept where its midpoint's cell is occupied.

    Same conventions as fastdream.ops.march_rays (exact mode); `jitter` [R] in [0,1) replaces stratified sampling.
    Returns (ray_indices [N] int64, t_starts [N], t_ends [N]).
    """
    levels = occupied.shape[0]
    step = float(render_step_size)
    n = rays_o.shape[0]
    dev = rays_o.device
    _, _, outer = _grid_frame(aabb, levels)
    t_near, t_far, hit = ray_aabb_intersect(rays_o, rays_d, outer.to(dev))
    lo = torch.clamp(t_near, min=near_plane)
    hi = torch.clamp(t_far, max=far_plane)
    valid = hit & (lo < hi) & (rays_d != 0).any(-1)
    lo = torch.where(valid, lo, torch.zeros_like(lo))
    hi = torch.where(valid, hi, torch.zeros_like(hi))
    t0 = lo + (jitter * step if jitter is not None else 0.0)
    if cone_angle == 0:
        span = float((hi - t0).max()) if n > 0 else 0.0
        width = max(int(math.ceil(max(span, 0.0) / step)) + 2, 1)
        k = torch.arange(width, device=dev, dtype=torch.float32)
        ts = t0[:, None] + k[None, :] * step
        te = torch.minimum(ts + step, hi[:, None])
    else:
        cols_s, cols_e = [], []
        t = t0.clone()
        alive = valid & (t < hi)
        while bool(alive.any()):
            dt = torch.clamp(t * cone_angle, min=step)
            te_full = t + dt
            cols_s.append(t.clone())
            cols_e.append(torch.minimum(te_full, hi))
            alive = alive & (te_full > t)
            t = torch.where(alive, te_full, t)
            alive = alive & (t < hi)
        ts = torch.stack(cols_s, 1) if cols_s else rays_o.new_zeros(n, 0)
        te = torch.stack(cols_e, 1) if cols_e else rays_o.new_zeros(n, 0)
        # Columns repeat a finished ray's last t: keep only first occurrences.
        first = torch.ones_like(ts, dtype=torch.bool)
        if ts.shape[1] > 1:
            first[:, 1:] = ts[:, 1:] > ts[:, :-1]
        te = torch.where(first, te, ts)
    exists = (ts < hi[:, None]) & valid[:, None]
    if cone_angle != 0:
        exists = exists & (te > ts)
    mid = (ts + te) * 0.5
    pts = rays_o[:, None, :] + mid[..., None] * rays_d[:, None, :]
    occ = grid_lookup(occupied, aabb, pts.reshape(-1, 3)).reshape(ts.shape)
    keep = exists & occ
    ray_ids = torch.arange(n, device=dev)[:, None].expand_as(ts)
    return ray_ids[keep], ts[keep], te[keep]
