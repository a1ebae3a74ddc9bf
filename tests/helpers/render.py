"""Random packed samples, a fake field and a small scene for the rendering tests."""
from __future__ import annotations

import torch
from torch import nn

from fastdream import OccupancyGrid


def random_packed(n_rays: int, gen: torch.Generator, max_per_ray: int = 24, n_pad: int = 0,
                  dtype=torch.float32):
    """Sorted packed samples with some empty rays and optional padding (-1) at the end."""
    counts = torch.randint(0, max_per_ray + 1, (n_rays,), generator=gen)
    counts[torch.rand(n_rays, generator=gen) < 0.2] = 0
    ray_indices = torch.repeat_interleave(torch.arange(n_rays), counts)
    n = int(counts.sum())
    dt = torch.rand(n, generator=gen, dtype=torch.float64) * 0.1 + 1e-3
    gaps = torch.rand(n, generator=gen, dtype=torch.float64) * 0.05
    # Per-ray cumulative t: global cumsum minus each ray's start.
    inc = dt + gaps
    cs = torch.cumsum(inc, 0)
    first = torch.cumsum(counts, 0) - counts
    base = torch.zeros(n, dtype=torch.float64)
    if n:
        starts_cs = torch.cat([torch.zeros(1, dtype=torch.float64), cs])[first]
        base = starts_cs[ray_indices]
    t_ends = (cs - base + 0.5 + gaps).to(dtype)
    t_starts = (cs - base + 0.5 + gaps - dt).to(dtype)
    sigmas = (torch.rand(n, generator=gen, dtype=torch.float64) ** 2 * 30).to(dtype)
    rgbs = torch.rand(n, 3, generator=gen, dtype=torch.float64).to(dtype)
    if n_pad:
        ray_indices = torch.cat([ray_indices, torch.full((n_pad,), -1, dtype=torch.long)])
        t_starts = torch.cat([t_starts, torch.zeros(n_pad, dtype=dtype)])
        t_ends = torch.cat([t_ends, torch.zeros(n_pad, dtype=dtype)])
        sigmas = torch.cat([sigmas, torch.rand(n_pad, generator=gen, dtype=torch.float64).to(dtype) * 10])
        rgbs = torch.cat([rgbs, torch.rand(n_pad, 3, generator=gen, dtype=torch.float64).to(dtype)])
    return sigmas, rgbs, t_starts, t_ends, ray_indices


class BlobField(nn.Module):
    """A Gaussian density blob with analytic albedo and normals (a stand-in for fastdream.Field)."""

    def __init__(self, aabb=(-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), radius: float = 0.35, peak: float = 40.0):
        super().__init__()
        self.register_buffer("aabb", torch.tensor(aabb, dtype=torch.float32))
        self.radius = radius
        self.log_peak = nn.Parameter(torch.tensor(float(peak)).log())
        self.tint = nn.Parameter(torch.tensor([0.9, 0.6, 0.3]))

    def _inside(self, x):
        return ((x >= self.aabb[:3]) & (x <= self.aabb[3:])).all(-1)

    def density(self, x):
        r2 = (x * x).sum(-1)
        sigma = self.log_peak.exp() * torch.exp(-r2 / (2 * self.radius ** 2))
        return torch.where(self._inside(x), sigma, torch.zeros_like(sigma))

    def forward(self, x):
        albedo = (self.tint * (0.5 + 0.5 * torch.tanh(x))).clamp(0, 1)
        return self.density(x), albedo

    def normals(self, x):
        return torch.nn.functional.normalize(x + 1e-9, dim=-1)

    def forward_with_normals(self, x):
        sigma, albedo = self.forward(x)
        return sigma, albedo, self.normals(x)


def camera_rays(n: int, gen: torch.Generator):
    """n rays from a sphere of radius 2.5 towards random targets in [-1.5, 1.5]^3 (some miss the blob)."""
    eye = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * 2.5
    target = (torch.rand(n, 3, generator=gen) - 0.5) * 3.0
    return eye, torch.nn.functional.normalize(target - eye, dim=-1)


def blob_grid(field: nn.Module, resolution: int) -> OccupancyGrid:
    """An occupancy grid over field's box, updated once (cells with density > 0.5), on field's device."""
    grid = OccupancyGrid(field.aabb, resolution=resolution).to(field.aabb.device)
    grid.update(0, field.density, occ_thre=0.5)
    return grid


def blob_scene(n_rays: int, gen: torch.Generator, device="cpu", resolution: int = 32):
    """(BlobField, its blob_grid, rays_o, rays_d) with n_rays camera_rays, all on device."""
    field = BlobField().to(device)
    grid = blob_grid(field, resolution)
    rays_o, rays_d = (t.to(device) for t in camera_rays(n_rays, gen))
    return field, grid, rays_o, rays_d
