"""PyTorch twin of fastdream.ops.encoding (the multiresolution hash-grid encoding), and its level table."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["hash_encode", "hash_grid_levels", "HashGridLevels"]

_PRIMES = (1, 2654435761, 805459861)  # tiny-cuda-nn's coherent prime hash
_MASK32 = 0xFFFFFFFF
MAX_LEVELS = 32


@dataclass(frozen=True)
class HashGridLevels:
    """Per-level layout of a hash grid, computed exactly as tiny-cuda-nn does (float32 scale math).

    offsets/sizes are in table entries; a level's parameters start at offsets[l] * n_features.
    """

    n_features: int
    scales: tuple[float, ...]      # float32 values: exp2(l * log2(per_level_scale)) * base_resolution - 1
    resolutions: tuple[int, ...]   # ceil(scale) + 1
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]         # min(round_up(res^3, 8), 2^log2_hashmap_size)
    hashed: tuple[bool, ...]       # res^3 > size
    n_params: int

    @property
    def n_levels(self) -> int:
        return len(self.sizes)

    def meta_tensor(self) -> torch.Tensor:
        """[L, 4] int64 (offset, size, res, hashed): the kernel's level table (always on the CPU)."""
        rows = [[o, s, r, int(h)] for o, s, r, h in zip(self.offsets, self.sizes, self.resolutions, self.hashed)]
        return torch.tensor(rows, dtype=torch.int64)

    def scale_tensor(self) -> torch.Tensor:
        return torch.tensor(self.scales, dtype=torch.float32)


def hash_grid_levels(n_levels: int, n_features_per_level: int, log2_hashmap_size: int, base_resolution: int,
                     per_level_scale: float) -> HashGridLevels:
    """The level table of a 3-D hash grid; raises ValueError naming a bad argument."""
    for name, v, lo, hi in (("n_levels", n_levels, 1, MAX_LEVELS), ("log2_hashmap_size", log2_hashmap_size, 1, 30),
                            ("base_resolution", base_resolution, 1, 1 << 20)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    if n_features_per_level not in (1, 2, 4, 8) or isinstance(n_features_per_level, bool):
        raise ValueError(f"n_features_per_level must be 1, 2, 4 or 8, got {n_features_per_level!r}")
    if not isinstance(per_level_scale, (int, float, np.floating)) or not np.isfinite(per_level_scale) \
            or not 1.0 <= per_level_scale <= 16.0:
        raise ValueError(f"per_level_scale must be a finite number in [1, 16], got {per_level_scale!r}")
    f32 = np.float32
    log2_scale = np.log2(f32(per_level_scale))
    scales, res, offsets, sizes, hashed = [], [], [], [], []
    offset = 0
    for level in range(n_levels):
        scale = f32(np.exp2(f32(level) * log2_scale) * f32(base_resolution)) - f32(1.0)
        scale = f32(scale)
        if not scale < 1e9:
            raise ValueError(f"level {level} has scale {float(scale):.3g}: lower n_levels or per_level_scale")
        r = int(np.ceil(scale)) + 1
        dense = r ** 3
        size = min(-(-dense // 8) * 8, 1 << log2_hashmap_size)
        scales.append(float(scale))
        res.append(r)
        offsets.append(offset)
        sizes.append(size)
        hashed.append(dense > size)
        offset += size
    return HashGridLevels(n_features_per_level, tuple(scales), tuple(res), tuple(offsets), tuple(sizes),
                          tuple(hashed), offset * n_features_per_level)


def hash_encode(x: torch.Tensor, params: torch.Tensor, levels: HashGridLevels) -> torch.Tensor:
    """Reference encoding: x [N, 3] (clamped to [0, 1], NaN read as 0) -> [N, L*F], level-major.

    Differentiable w.r.t. params and x by autograd; the x-gradient is zero where the clamp is active.
    """
    F = levels.n_features
    xs = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
    table = params.view(-1, F)
    outs = []
    for level in range(levels.n_levels):
        scale = levels.scales[level]
        pos = xs * torch.tensor(scale, dtype=x.dtype, device=x.device) + 0.5
        grid = torch.floor(pos)
        frac = pos - grid
        corner = grid.to(torch.int64)
        res, size = levels.resolutions[level], levels.sizes[level]
        acc = 0
        for c in range(8):
            bits = [(c >> d) & 1 for d in range(3)]
            p = [corner[:, d] + bits[d] for d in range(3)]
            w = 1
            for d in range(3):
                w = w * (frac[:, d] if bits[d] else 1 - frac[:, d])
            if levels.hashed[level]:
                idx = (p[0] * _PRIMES[0]) & _MASK32
                idx = idx ^ ((p[1] * _PRIMES[1]) & _MASK32)
                idx = idx ^ ((p[2] * _PRIMES[2]) & _MASK32)
            else:
                idx = (p[0] + p[1] * res + p[2] * ((res * res) & _MASK32)) & _MASK32
            idx = idx % size + levels.offsets[level]
            acc = acc + w[:, None] * table[idx]
        outs.append(acc)
    return torch.cat(outs, dim=1)
