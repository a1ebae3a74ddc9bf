"""PyTorch twins of fastdream.ops.rendering (same conventions, plain torch).

These are the test oracle and the "torch" renderer backend; they favour clarity over speed and may sync with
the host.
"""
from __future__ import annotations

import torch

__all__ = ["render_weights", "composite", "shade"]


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
