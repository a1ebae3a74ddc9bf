"""The nerfacc 0.5.3 backend (`render.backend=nerfacc`): the peer's sampler and compositing, our field and shading.

nerfacc's OccGridEstimator is fed fastdream's OccupancyGrid (the same binary grid, copied each call, no host sync).
Its sampler is CUDA-only and synchronises with the host (part of what a comparison measures); it has no
fixed-capacity mode, so max_samples is ignored, and it draws its own stratified jitter. Install it with
`pip install .[bench]` (nerfacc==0.5.3).
"""
from __future__ import annotations

import weakref

import torch

from fastdream import ops
from fastdream.errors import UserError

__all__ = ["NerfaccBackend", "nerfacc_available"]

_ESTIMATORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def nerfacc_available() -> bool:
    try:
        import nerfacc  # noqa: F401
    except ImportError:
        return False
    return True


def _import_nerfacc():
    try:
        import nerfacc
    except ImportError as exc:
        raise UserError("renderer backend 'nerfacc' needs nerfacc 0.5.3: `pip install .[bench]` or "
                        f"`pip install nerfacc==0.5.3` ({exc})") from None
    return nerfacc


def _estimator(grid, device: torch.device):
    """nerfacc's OccGridEstimator holding the same binary grid as `grid` (cached per grid, refreshed each call)."""
    from nerfacc.estimators.occ_grid import OccGridEstimator

    occ = grid.occupied
    levels, res = int(occ.shape[0]), int(occ.shape[1])
    est = _ESTIMATORS.get(grid)
    if est is None or est.binaries.shape != occ.shape or est.binaries.device != occ.device:
        est = OccGridEstimator(roi_aabb=grid.level_aabb(0), resolution=res, levels=levels).to(device)
        _ESTIMATORS[grid] = est
    est.binaries.copy_(occ.to(device=device, dtype=torch.bool))
    return est


class NerfaccBackend:
    """nerfacc's marcher and compositor (CUDA only)."""

    name = "nerfacc"

    def march(self, grid, rays_o, rays_d, *, near_plane, far_plane, render_step_size, stratified, max_samples,
              generator):
        del max_samples, generator
        _import_nerfacc()
        if rays_o.device.type != "cuda":
            raise UserError("renderer backend 'nerfacc' runs on CUDA only; use backend 'fastdream' on the CPU")
        return _estimator(grid, rays_o.device).sampling(
            rays_o.contiguous(), rays_d.contiguous(), render_step_size=render_step_size, near_plane=near_plane,
            far_plane=far_plane, stratified=stratified)

    def shade(self, albedo, normals, positions, light, ambient_ratio, shading):
        return ops.shade(albedo, normals, positions, light, ambient_ratio, shading)

    def composite(self, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, need_weights):
        nerfacc = _import_nerfacc()
        weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, sigmas, ray_indices=ray_indices,
                                                           n_rays=n_rays)
        t_mid = (t_starts + t_ends) * 0.5
        color = nerfacc.accumulate_along_rays(weights, values=rgbs, ray_indices=ray_indices, n_rays=n_rays)
        opacity = nerfacc.accumulate_along_rays(weights, values=None, ray_indices=ray_indices, n_rays=n_rays)
        depth = nerfacc.accumulate_along_rays(weights, values=t_mid[:, None], ray_indices=ray_indices,
                                              n_rays=n_rays)
        return color, opacity.reshape(n_rays), depth.reshape(n_rays), weights if need_weights else None
