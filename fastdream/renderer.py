"""Volume renderer: march the occupancy grid, query the field, shade, composite over a background.

backend="fastdream" runs our kernels (no host sync with max_samples); backend="torch" is the plain-PyTorch path
shaped like stable-dreamfusion's (dense lattice marching, torch compositing), kept as the oracle and fallback.
"""
from __future__ import annotations

import torch

from fastdream import ops
from fastdream.capacity import SampleCapacity
from fastdream.capacity import resolve as resolve_capacity
from fastdream.ops import reference as ref
from fastdream.ops._checks import check_same_device, check_tensor

__all__ = ["render_rays", "render_image", "BACKENDS"]

BACKENDS = ("fastdream", "torch", "nerfacc")


def _pad(ray_indices, t_starts, t_ends, capacity: int):
    """Truncate or pad exact-mode samples to the fixed-capacity layout (padding: ray -1, t = 0)."""
    n = ray_indices.shape[0]
    if n >= capacity:
        return ray_indices[:capacity], t_starts[:capacity], t_ends[:capacity]
    pad = capacity - n
    return (torch.cat([ray_indices, ray_indices.new_full((pad,), -1)]),
            torch.cat([t_starts, t_starts.new_zeros(pad)]), torch.cat([t_ends, t_ends.new_zeros(pad)]))


def render_rays(field, grid, rays_o: torch.Tensor, rays_d: torch.Tensor, *, shading: str = "albedo",
                light_position=None, ambient_ratio: float = 0.1, background=None, render_step_size: float = 1e-2,
                near_plane: float = 0.0, far_plane: float = 1e10, stratified: bool = False,
                max_samples: int | SampleCapacity | None = None, return_samples: bool = False,
                backend: str = "fastdream",
                generator: torch.Generator | None = None) -> dict:
    """Render rays [R,3] (float32) through `field` with `grid` (an OccupancyGrid).

    Returns {"color" [R,3], "opacity" [R], "depth" [R]} (depth = sum w t, not normalised); with return_samples
    also "weights" [N], "ray_indices" [N] (-1 = padding), "t_starts", "t_ends", "positions" [N,3] and "normals"
    [N,3] when shading computed them. background ([3] or [R,3]) is composited as color + (1 - opacity) * bg.
    light_position [3] defaults to the mean ray origin (a head light). max_samples=K gives the fixed-capacity
    no-sync path; a fastdream.capacity.SampleCapacity there sizes K from the demand of earlier calls.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "nerfacc":  # the peer, for side-by-side comparisons on the user's own prompts
        from fastdream.renderer_nerfacc import render_rays_nerfacc

        return render_rays_nerfacc(field, grid, rays_o, rays_d, shading=shading, light_position=light_position,
                                   ambient_ratio=ambient_ratio, background=background,
                                   render_step_size=render_step_size, near_plane=near_plane, far_plane=far_plane,
                                   stratified=stratified, return_samples=return_samples)
    if shading not in ops.SHADING_MODES:
        raise ValueError(f"shading must be one of {sorted(ops.SHADING_MODES)}, got {shading!r}")
    check_tensor("rays_o", rays_o, shape=(None, 3), dtype=torch.float32)
    check_tensor("rays_d", rays_d, shape=(rays_o.shape[0], 3), dtype=torch.float32)
    check_same_device(rays_o=rays_o, rays_d=rays_d)
    n_rays = rays_o.shape[0]
    needs_normals = shading != "albedo"
    if needs_normals:
        if light_position is None:
            light = rays_o.detach().mean(0) if n_rays > 0 else rays_o.new_zeros(3)
        else:
            light = torch.as_tensor(light_position, dtype=torch.float32, device=rays_o.device).reshape(-1)
            check_tensor("light_position", light, shape=(3,))
    else:
        light = None

    if backend == "fastdream":
        ray_indices, t_starts, t_ends = grid.sampling(
            rays_o, rays_d, near_plane=near_plane, far_plane=far_plane, render_step_size=render_step_size,
            stratified=stratified, max_samples=max_samples, generator=generator)
    else:
        jitter = None
        if stratified:
            jitter = torch.rand(n_rays, device=rays_o.device, generator=generator)
        ray_indices, t_starts, t_ends = ref.grid_sampling(
            grid.occupied, grid._aabb_list, rays_o, rays_d, near_plane, far_plane, render_step_size,
            jitter=jitter)
        if max_samples is not None:
            capacity, tracker = resolve_capacity(max_samples)
            if tracker is not None:
                tracker.observe(int(ray_indices.shape[0]), capacity)
            ray_indices, t_starts, t_ends = _pad(ray_indices, t_starts, t_ends, capacity)

    mids = 0.5 * (t_starts + t_ends)
    if n_rays > 0:
        safe = ray_indices.clamp_min(0)  # padding (-1) reads ray 0; its weight is zero anyway
        positions = rays_o[safe] + rays_d[safe] * mids[:, None]
    else:  # only padding: any finite position will do
        positions = mids[:, None].expand(-1, 3).contiguous()
    normals = None
    if needs_normals:
        sigmas, albedo, normals = field.forward_with_normals(positions)
    else:
        sigmas, albedo = field(positions)
    sigmas = sigmas.reshape(-1)

    if backend == "fastdream":
        rgbs = ops.shade(albedo, normals, positions, light, ambient_ratio, shading)
        color, opacity, depth = ops.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
        weights = ops.render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays) if return_samples else None
    else:
        rgbs = ref.shade(albedo, normals, positions, light, ambient_ratio, shading)
        color, opacity, depth = ref.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
        weights = ref.render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays) if return_samples else None

    samples = dict(weights=weights, ray_indices=ray_indices, t_starts=t_starts, t_ends=t_ends, positions=positions,
                   normals=normals) if return_samples else None
    return finish_render(color, opacity, depth, background, samples)


def finish_render(color: torch.Tensor, opacity: torch.Tensor, depth: torch.Tensor, background,
                  samples: dict | None = None) -> dict:
    """Composite over background ([3] or [R,3]) and assemble render_rays' output dict (shared by every backend).

    samples: the per-sample tensors to return (return_samples=True); a None "normals" entry is left out.
    """
    n_rays = color.shape[0]
    if background is not None:
        bg = torch.as_tensor(background, dtype=color.dtype, device=color.device)
        if bg.shape not in ((3,), (n_rays, 3)):
            raise ValueError(f"background must have shape [3] or [{n_rays}, 3], got {list(bg.shape)}")
        color = color + (1.0 - opacity)[:, None] * bg
    out = {"color": color, "opacity": opacity, "depth": depth}
    if samples is not None:
        out.update({k: v for k, v in samples.items() if v is not None or k != "normals"})
    return out


def render_image(field, grid, c2w: torch.Tensor, fovy_deg: float, height: int, width: int,
                 chunk: int = 1 << 16, **kw) -> dict:
    """Render one camera (c2w [4,4], OpenGL) to {"color" [H,W,3], "opacity" [H,W], "depth" [H,W]}.

    Keyword arguments go to render_rays; rays are rendered in chunks of `chunk`.
    """
    from fastdream.cameras import get_rays

    rays_o, rays_d = get_rays(c2w, fovy_deg, height, width)
    rays_o = rays_o.reshape(-1, 3).contiguous()
    rays_d = rays_d.reshape(-1, 3).contiguous()
    kw.pop("return_samples", None)
    bg = kw.pop("background", None)
    parts = []
    for i in range(0, rays_o.shape[0], chunk):
        sub_bg = bg
        if isinstance(bg, torch.Tensor) and bg.dim() == 2:
            sub_bg = bg[i:i + chunk]
        parts.append(render_rays(field, grid, rays_o[i:i + chunk], rays_d[i:i + chunk], background=sub_bg, **kw))
    return {k: torch.cat([p[k] for p in parts]).reshape(height, width, *parts[0][k].shape[1:])
            for k in ("color", "opacity", "depth")}
