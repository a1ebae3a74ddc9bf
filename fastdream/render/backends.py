"""The render backend protocol and the built-in fastdream (our kernels) and torch (PyTorch reference) backends.

A backend decides how samples are found along the rays, shaded and composited; render_rays does everything else
(checks, the default light, field queries, the background) once, so every backend behaves the same.
"""
from __future__ import annotations

from typing import Protocol

import torch

from fastdream import ops
from fastdream.ops import reference as ref
from fastdream.ops.capacity import resolve as resolve_capacity

__all__ = ["RenderBackend", "FastdreamBackend", "TorchBackend"]


class RenderBackend(Protocol):
    """What render_rays needs from a backend; `name` is its key in fastdream.render.registry.BACKENDS."""

    name: str

    def march(self, grid, rays_o: torch.Tensor, rays_d: torch.Tensor, *, near_plane: float, far_plane: float,
              render_step_size: float, stratified: bool, max_samples, generator: torch.Generator | None):
        """Packed samples (ray_indices [N] int64, t_starts [N], t_ends [N]) of the rays [R,3] through `grid`."""

    def shade(self, albedo: torch.Tensor, normals, positions: torch.Tensor, light, ambient_ratio: float,
              shading: str) -> torch.Tensor:
        """Shaded colours [N,3]."""

    def composite(self, sigmas: torch.Tensor, rgbs: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                  ray_indices: torch.Tensor, n_rays: int, need_weights: bool):
        """(color [R,3], opacity [R], depth [R], weights [N] or None)."""


def pad_samples(ray_indices, t_starts, t_ends, capacity: int):
    """Truncate or pad exact-mode samples to the fixed-capacity layout (padding: ray -1, t = 0)."""
    n = ray_indices.shape[0]
    if n >= capacity:
        return ray_indices[:capacity], t_starts[:capacity], t_ends[:capacity]
    pad = capacity - n
    return (torch.cat([ray_indices, ray_indices.new_full((pad,), -1)]),
            torch.cat([t_starts, t_starts.new_zeros(pad)]), torch.cat([t_ends, t_ends.new_zeros(pad)]))


class FastdreamBackend:
    """Our compiled kernels: the marcher with its fixed-capacity no-sync mode, fused shading and compositing."""

    name = "fastdream"

    def march(self, grid, rays_o, rays_d, *, near_plane, far_plane, render_step_size, stratified, max_samples,
              generator):
        return grid.march_rays(rays_o, rays_d, near_plane=near_plane, far_plane=far_plane,
                               render_step_size=render_step_size, stratified=stratified, max_samples=max_samples,
                               generator=generator)

    def shade(self, albedo, normals, positions, light, ambient_ratio, shading):
        return ops.shade(albedo, normals, positions, light, ambient_ratio, shading)

    def composite(self, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, need_weights):
        color, opacity, depth = ops.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
        weights = ops.render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays) if need_weights else None
        return color, opacity, depth, weights


class TorchBackend:
    """Plain PyTorch, shaped like stable-dreamfusion's renderer (dense lattice marching): the oracle and fallback."""

    name = "torch"

    def march(self, grid, rays_o, rays_d, *, near_plane, far_plane, render_step_size, stratified, max_samples,
              generator):
        jitter = None
        if stratified:
            jitter = torch.rand(rays_o.shape[0], device=rays_o.device, generator=generator)
        samples = ref.march_rays(grid.occupied, grid.level_aabb(0), rays_o, rays_d, near_plane, far_plane,
                                 render_step_size, jitter=jitter)
        if max_samples is None:
            return samples
        capacity, tracker = resolve_capacity(max_samples)
        if tracker is not None:
            tracker.observe(int(samples[0].shape[0]), capacity)
        return pad_samples(*samples, capacity)

    def shade(self, albedo, normals, positions, light, ambient_ratio, shading):
        return ref.shade(albedo, normals, positions, light, ambient_ratio, shading)

    def composite(self, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, need_weights):
        color, opacity, depth = ref.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
        weights = ref.render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays) if need_weights else None
        return color, opacity, depth, weights
