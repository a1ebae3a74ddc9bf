"""Renderer backend over nerfacc 0.5.3 (`renderer.backend=nerfacc`): the peer's sampler and compositing, our field.

Same signature and outputs as fastdream.renderer.render_rays, so that users can compare the two on their own
prompts. nerfacc's OccGridEstimator is fed fastdream's OccupancyGrid (the same binary grid, copied each call, no
host sync); its sampling and `render_weight_from_density` / `accumulate_along_rays` replace our kernels; shading is
fastdream.ops.shade, as in our renderer. nerfacc's sampler is CUDA-only and synchronises with the host (that is
part of what the comparison measures). Install it with `pip install .[bench]` (nerfacc==0.5.3).
"""
from __future__ import annotations

import weakref

import torch

from fastdream.errors import UserError
from fastdream.renderer import finish_render

__all__ = ["render_rays_nerfacc", "nerfacc_available"]

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
        aabb = grid.aabb.detach().float().reshape(-1)[:6].cpu()  # once per grid: a host copy is fine here
        est = OccGridEstimator(roi_aabb=aabb.tolist(), resolution=res, levels=levels).to(device)
        _ESTIMATORS[grid] = est
    est.binaries.copy_(occ.to(device=device, dtype=torch.bool))
    return est


def render_rays_nerfacc(field, grid, rays_o: torch.Tensor, rays_d: torch.Tensor, *, shading: str = "albedo",
                        light_position: torch.Tensor | None = None, ambient_ratio: float = 0.1,
                        background: torch.Tensor | None = None, render_step_size: float = 1e-2,
                        near_plane: float = 0.0, far_plane: float = 1e10, stratified: bool = False,
                        max_samples: int | None = None, return_samples: bool = False,
                        backend: str = "nerfacc", generator: torch.Generator | None = None) -> dict:
    """Render rays_o/rays_d [R,3] with nerfacc's marcher and compositor; outputs as render_rays: "color" [R,3],
    "opacity" [R], "depth" [R] (+ "weights", "ray_indices", "normals" with return_samples). max_samples is
    and generator are ignored: nerfacc has no fixed-capacity mode and draws its own stratified jitter."""
    del max_samples, backend, generator
    if shading not in ("albedo", "lambertian", "textureless"):
        raise ValueError(f"shading must be albedo, lambertian or textureless, got {shading!r}")
    nerfacc = _import_nerfacc()
    from fastdream import ops

    if rays_o.device.type != "cuda":
        raise UserError("renderer backend 'nerfacc' runs on CUDA only; use backend 'fastdream' on the CPU")
    n_rays = rays_o.shape[0]
    est = _estimator(grid, rays_o.device)
    ray_indices, t_starts, t_ends = est.sampling(rays_o.contiguous(), rays_d.contiguous(),
                                                 render_step_size=render_step_size, near_plane=near_plane,
                                                 far_plane=far_plane, stratified=stratified)
    t_mid = (t_starts + t_ends) * 0.5
    positions = rays_o[ray_indices] + t_mid[:, None] * rays_d[ray_indices]
    normals = None
    if shading == "albedo":
        sigmas, albedo = field(positions)
        rgbs = albedo
    else:
        sigmas, albedo, normals = field.forward_with_normals(positions)
        if light_position is None:
            raise ValueError(f"shading={shading!r} needs light_position [3]")
        light = torch.as_tensor(light_position, dtype=positions.dtype, device=positions.device).reshape(3)
        rgbs = ops.shade(albedo, normals, positions, light, float(ambient_ratio), shading)
    weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, sigmas.reshape(-1),
                                                       ray_indices=ray_indices, n_rays=n_rays)
    color = nerfacc.accumulate_along_rays(weights, values=rgbs, ray_indices=ray_indices, n_rays=n_rays)
    opacity = nerfacc.accumulate_along_rays(weights, values=None, ray_indices=ray_indices, n_rays=n_rays)
    depth = nerfacc.accumulate_along_rays(weights, values=t_mid[:, None], ray_indices=ray_indices, n_rays=n_rays)
    opacity, depth = opacity.reshape(n_rays), depth.reshape(n_rays)
    samples = dict(weights=weights, ray_indices=ray_indices, t_starts=t_starts, t_ends=t_ends, positions=positions,
                   normals=normals) if return_samples else None
    return finish_render(color, opacity, depth, background, samples)
