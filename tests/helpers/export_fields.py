"""Analytic fields for the export tests: exact SDFs, soft densities and albedo coloured by position."""
from __future__ import annotations

import math

import numpy as np
import torch

AABB = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
DIAG = 2.0 * math.sqrt(3.0)
SPHERE_C = torch.tensor([0.05, -0.03, 0.02])
SPHERE_R = 0.6
TORUS_R, TORUS_r = 0.55, 0.22


def sphere_sdf(x: torch.Tensor) -> torch.Tensor:
    return (x - SPHERE_C.to(x)).norm(dim=-1) - SPHERE_R


def torus_sdf(x: torch.Tensor) -> torch.Tensor:
    q = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2) - TORUS_R
    return torch.sqrt(q * q + x[:, 2] ** 2) - TORUS_r


def density_of(sdf, scale: float = 200.0, beta: float = 0.001):
    return lambda x: scale * torch.sigmoid(-sdf(x) / beta)


def position_albedo(x: torch.Tensor) -> torch.Tensor:
    """Colour by position: (x, y, z) in [-1, 1] -> rgb in [0, 1]."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def sample_on_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator):
    """n area-uniform points on a triangle mesh: (points [n, 3], face [n], barycentrics [n, 3])."""
    tri = vertices[faces].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    return np.einsum("nj,njd->nd", bary, tri[face]), face, bary


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (OBJ convention: v = 0 at the bottom row) -> [n, C] float in [0, 1]."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = texture.astype(np.float64) / 255.0
    return ((t[y0, x0] * (1 - fx) + t[y0, x1] * fx) * (1 - fy) + (t[y1, x0] * (1 - fx) + t[y1, x1] * fx) * fy)
