"""Occupancy grid with instant-ngp cascades: empty-space skipping for the ray marcher."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from fastdream.ops._checks import check_tensor
from fastdream.ops.sampling import march_rays

__all__ = ["OccupancyGrid", "morton3", "pack_bits"]

# After warm-up a cell that is not occupied refreshes with this probability: what n_cells/4 random draws with
# replacement (nerfacc's and instant-ngp's rule) give each cell, 1 - (1 - 1/n)^(n/4) ~ 1 - e^(-1/4).
_REFRESH_P = 1.0 - math.exp(-0.25)


def _spread(v: torch.Tensor) -> torch.Tensor:
    v = v & 0x3FF
    v = (v | (v << 16)) & 0x030000FF
    v = (v | (v << 8)) & 0x0300F00F
    v = (v | (v << 4)) & 0x030C30C3
    v = (v | (v << 2)) & 0x09249249
    return v


def morton3(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Morton index of integer cells (x in the lowest bit), as the marcher reads it."""
    return _spread(x) | (_spread(y) << 1) | (_spread(z) << 2)


def _pow2(res: int) -> int:
    p = 2
    while p < res:
        p *= 2
    return p


def pack_bits(occupied: torch.Tensor) -> torch.Tensor:
    """Pack a bool grid [L, R, R, R] (indexed [level, x, y, z]) into the marcher's Morton-order bitfield (uint8)."""
    levels, res = occupied.shape[0], occupied.shape[1]
    p = _pow2(res)
    ar = torch.arange(res, device=occupied.device)
    x, y, z = torch.meshgrid(ar, ar, ar, indexing="ij")
    code = morton3(x.reshape(-1), y.reshape(-1), z.reshape(-1))
    bits = torch.zeros(levels, p ** 3, dtype=torch.bool, device=occupied.device)
    bits[:, code] = occupied.reshape(levels, -1)
    shifts = torch.arange(8, device=occupied.device)
    return (bits.view(levels, -1, 8).long() << shifts).sum(-1).to(torch.uint8).reshape(-1)


class OccupancyGrid(nn.Module):
    """A bool occupancy grid over `aabb` ([6] xmin, ymin, zmin, xmax, ymax, zmax) with `levels` cascades.

    Level i covers the aabb scaled by 2^i around its centre. A new grid is fully occupied (marching samples
    everything) until the first `update`. State lives in buffers (`occs`, `occupied`, `bitfield`), so `.to()`,
    `state_dict()` and `load_state_dict()` carry it.
    """

    def __init__(self, aabb, resolution: int = 128, levels: int = 1):
        super().__init__()
        aabb_t = torch.as_tensor(aabb, dtype=torch.float32).detach().cpu().reshape(-1)
        if aabb_t.numel() != 6:
            raise ValueError(f"aabb must have 6 values (xmin, ymin, zmin, xmax, ymax, zmax), got {aabb_t.numel()}")
        if not bool(torch.isfinite(aabb_t).all()) or not bool((aabb_t[:3] < aabb_t[3:]).all()):
            raise ValueError(f"aabb must be finite with min < max on every axis, got {aabb_t.tolist()}")
        if not isinstance(resolution, int) or not 1 <= resolution <= 1024:
            raise ValueError(f"resolution must be an int in [1, 1024], got {resolution!r}")
        if not isinstance(levels, int) or not 1 <= levels <= 16:
            raise ValueError(f"levels must be an int in [1, 16], got {levels!r}")
        self.resolution = resolution
        self.levels = levels
        self._aabb_list = [float(v) for v in aabb_t.tolist()]
        self.register_buffer("aabb", aabb_t.clone())
        self.register_buffer("occs", torch.zeros(levels, resolution ** 3))
        self.register_buffer("occupied", torch.ones(levels, resolution, resolution, resolution, dtype=torch.bool))
        self.register_buffer("bitfield", pack_bits(self.occupied))
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refresh_aabb())

    def _refresh_aabb(self) -> None:
        self._aabb_list = [float(v) for v in self.aabb.tolist()]

    # ---- grid geometry -------------------------------------------------------------------------------------
    def level_aabb(self, level: int) -> list[float]:
        """The box [6] that level `level` covers (python floats)."""
        a = self._aabb_list
        s = 2.0 ** level
        c = [(a[i] + a[i + 3]) * 0.5 for i in range(3)]
        h = [(a[i + 3] - a[i]) * 0.5 * s for i in range(3)]
        return [c[0] - h[0], c[1] - h[1], c[2] - h[2], c[0] + h[0], c[1] + h[1], c[2] + h[2]]

    def set_occupied(self, occupied: torch.Tensor) -> None:
        """Replace the occupancy ([levels, res, res, res] bool) and repack the marcher's bitfield."""
        check_tensor("occupied", occupied, shape=tuple(self.occupied.shape), dtype=torch.bool)
        self.occupied.copy_(occupied)
        self.bitfield.copy_(pack_bits(self.occupied))

    # ---- update --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor], occ_thre: float = 0.01,
               ema_decay: float = 0.95, warmup_steps: int = 256, n: int = 16, chunk: int = 1 << 20) -> bool:
        """Every `n` steps re-evaluate `density_fn(points [M,3]) -> [M] or [M,1]` and refresh the grid.

        Warm-up (step < warmup_steps) refreshes every cell; later the occupied cells plus a random share of the
        others (each with probability 1 - e^-1/4, as often as n_cells/4 draws with replacement pick a cell), each
        at a jittered point inside the cell. occ = max(occ * ema_decay, density) on refreshed cells; a cell is
        occupied when occ > min(occ_thre, mean occ). Returns whether it updated. No host sync: the density of every
        cell is evaluated (fixed shapes) and a mask picks the cells that refresh.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if step % n != 0:
            return False
        res, dev = self.resolution, self.occs.device
        idx = torch.arange(res ** 3, device=dev)
        cells = torch.stack([idx // (res * res), (idx // res) % res, idx % res], -1).float()
        for level in range(self.levels):
            lo, hi = self._level_box(level)
            pts = lo + (cells + torch.rand_like(cells)) / res * (hi - lo)
            dens = torch.cat([density_fn(pts[i:i + chunk]).reshape(-1).float() for i in range(0, len(pts), chunk)])
            if dens.shape[0] != pts.shape[0]:
                raise ValueError(f"density_fn must return [M] or [M,1] for M points, got {dens.shape[0]} values")
            occ = self.occs[level]
            new = torch.maximum(occ * ema_decay, torch.nan_to_num(dens, nan=0.0, posinf=1e10))
            if step >= warmup_steps:
                refresh = self.occupied[level].reshape(-1) | (torch.rand(occ.shape, device=dev) < _REFRESH_P)
                new = torch.where(refresh, new, occ)
            occ.copy_(new)
        thre = torch.clamp(self.occs.mean(), max=occ_thre)
        self.occupied.copy_((self.occs > thre).reshape(self.occupied.shape))
        self.bitfield.copy_(pack_bits(self.occupied))
        return True

    def _level_box(self, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo [3], hi [3]) of level `level`, computed on the grid's device from the aabb buffer (no copy)."""
        centre = (self.aabb[:3] + self.aabb[3:]) * 0.5
        half = (self.aabb[3:] - self.aabb[:3]) * (0.5 * 2.0 ** level)
        return centre - half, centre + half

    # ---- marching ------------------------------------------------------------------------------------------
    def march_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, near_plane: float = 0.0,
                   far_plane: float = 1e10, render_step_size: float = 1e-3, stratified: bool = False,
                   cone_angle: float = 0.0, alpha_thre: float = 0.0, sigma_fn: Callable | None = None,
                   max_samples=None, generator: torch.Generator | None = None):
        """fastdream.ops.march_rays through this grid: (ray_indices [N] int64, t_starts [N], t_ends [N]).

        stratified jitters each ray's first sample by U[0,1) steps (from `generator`). With sigma_fn(t_starts,
        t_ends, ray_indices) -> [N] and alpha_thre > 0, samples with alpha < alpha_thre are dropped (with
        max_samples they stay in place with t_ends == t_starts: zero length, no contribution).
        """
        jitter = None
        if stratified:
            jitter = torch.rand(rays_o.shape[0], device=rays_o.device, generator=generator)
        ray_indices, t_starts, t_ends = march_rays(
            rays_o, rays_d, self.bitfield, self._aabb_list, self.levels, self.resolution, near_plane=near_plane,
            far_plane=far_plane, render_step_size=render_step_size, cone_angle=cone_angle, jitter=jitter,
            max_samples=max_samples)
        if sigma_fn is not None and alpha_thre > 0:
            with torch.no_grad():
                sig = sigma_fn(t_starts, t_ends, ray_indices).reshape(-1)
                alpha = 1.0 - torch.exp(-sig * (t_ends - t_starts))
                keep = alpha >= alpha_thre
            if max_samples is None:
                ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]
            else:
                t_ends = torch.where(keep, t_ends, t_starts)
        return ray_indices, t_starts, t_ends
