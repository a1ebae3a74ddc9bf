"""PyTorch twins of fastdream.ops.rendering and of the occupancy-grid marcher (same conventions, plain torch).

These are the test oracle and the "torch" renderer backend; they favour clarity over speed and may sync with
the host.
"""
from __future__ import annotations

import math

import torch

from fastdream.ops.reference.geometry import ray_aabb_intersect

__all__ = ["render_weights", "composite", "shade", "grid_sampling", "grid_lookup"]


def _dense_positions(ray_indices: torch.Tensor, n_rays: int):
    """Per sample: (bucket ray id with padding -> n_rays, position within its ray, max samples per ray)."""
    valid = (ray_indices >= 0) & (ray_indices < n_rays)
    ri = torch.where(valid, ray_indices, torch.full_like(ray_indices, n_rays))
    counts = torch.bincount(ri, minlength=n_rays + 1)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(ri.shape[0], device=ri.device) - first[ri]
    width = int(counts[:n_rays].max()) if n_rays > 0 and ri.numel() > 0 else 0
    return valid, ri, pos, max(width, int(counts[n_rays]) if ri.numel() else 0)


def _weights(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre):
    valid, ri, pos, width = _dense_positions(ray_indices, n_rays)
    s = sigmas * (t_ends - t_starts) * valid.to(sigmas.dtype)
    dense = s.new_zeros(n_rays + 1, max(width, 1)).index_put((ri, pos), s)
    excl = torch.cumsum(dense, 1) - dense
    trans = torch.exp(-excl[ri, pos])
    alpha = 1.0 - torch.exp(-s)
    keep = (trans >= transmittance_thre).detach() & valid
    return trans * alpha * keep.to(sigmas.dtype), ri


def render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays: int, transmittance_thre: float = 0.0):
    """Reference of fastdream.ops.render_weights."""
    return _weights(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre)[0]


def composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays: int, transmittance_thre: float = 0.0):
    """Reference of fastdream.ops.composite."""
    w, ri = _weights(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre)
    mids = 0.5 * (t_starts + t_ends)
    colors = rgbs.new_zeros(n_rays + 1, 3).index_add(0, ri, w[:, None] * rgbs)[:n_rays]
    opac = w.new_zeros(n_rays + 1).index_add(0, ri, w)[:n_rays]
    depth = w.new_zeros(n_rays + 1).index_add(0, ri, w * mids)[:n_rays]
    return colors, opac, depth


def shade(albedo, normals, positions, light_position, ambient_ratio: float = 0.1, mode: str = "albedo"):
    """Reference of fastdream.ops.shade."""
    if mode == "albedo":
        return albedo
    light = torch.as_tensor(light_position, dtype=albedo.dtype, device=albedo.device).reshape(3)
    v = light - positions
    l = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ndl = (normals * l).sum(-1, keepdim=True).clamp_min(0.0)
    f = ambient_ratio + (1.0 - ambient_ratio) * ndl
    if mode == "textureless":
        return f.expand(-1, 3).contiguous()
    if mode == "lambertian":
        return albedo * f
    raise ValueError(f"unknown mode {mode!r}")


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


def grid_sampling(occupied: torch.Tensor, aabb, rays_o, rays_d, near_plane: float = 0.0, far_plane: float = 1e10,
                  render_step_size: float = 1e-3, cone_angle: float = 0.0, jitter: torch.Tensor | None = None):
    """Reference marcher: every lattice sample of every ray, kept where its midpoint's cell is occupied.

    Same conventions as OccupancyGrid.sampling (exact mode); `jitter` [R] in [0,1) replaces stratified sampling.
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
