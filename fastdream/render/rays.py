"""Volume rendering of a ray batch or one camera: march the occupancy grid, query the field, shade, composite over
a background, through the backend named by `backend` (fastdream.render.registry)."""
from __future__ import annotations

import torch

from fastdream import ops
from fastdream.cameras import get_rays
from fastdream.ops._checks import check_same_device, check_tensor
from fastdream.render.registry import get_backend

__all__ = ["render_rays", "render_image", "finish_render", "default_light"]


def default_light(rays_o: torch.Tensor, light_position=None) -> torch.Tensor:
    """The light [3] for shaded renders: light_position, or the mean ray origin (a head light)."""
    if light_position is None:
        return rays_o.detach().mean(0) if rays_o.shape[0] > 0 else rays_o.new_zeros(3)
    light = torch.as_tensor(light_position, dtype=torch.float32, device=rays_o.device).reshape(-1)
    check_tensor("light_position", light, shape=(3,))
    return light


def _sample_positions(rays_o, rays_d, ray_indices, t_starts, t_ends) -> torch.Tensor:
    mids = 0.5 * (t_starts + t_ends)
    if rays_o.shape[0] == 0:  # only padding: any finite position will do
        return mids[:, None].expand(-1, 3).contiguous()
    safe = ray_indices.clamp_min(0)  # padding (-1) reads ray 0; its weight is zero anyway
    return rays_o[safe] + rays_d[safe] * mids[:, None]


def render_rays(field, grid, rays_o: torch.Tensor, rays_d: torch.Tensor, *, shading: str = "albedo",
                light_position=None, ambient_ratio: float = 0.1, background=None, render_step_size: float = 1e-2,
                near_plane: float = 0.0, far_plane: float = 1e10, stratified: bool = False, max_samples=None,
                return_samples: bool = False, backend: str = "fastdream",
                generator: torch.Generator | None = None) -> dict:
    """Render rays [R,3] (float32) through `field` with `grid` (an OccupancyGrid).

    Returns {"color" [R,3], "opacity" [R], "depth" [R]} (depth = sum w t, not normalised); with return_samples
    also "weights" [N], "ray_indices" [N] (-1 = padding), "t_starts", "t_ends", "positions" [N,3] and "normals"
    [N,3] when shading computed them. background ([3] or [R,3]) is composited as color + (1 - opacity) * bg.
    light_position [3] defaults to the mean ray origin (a head light). max_samples=K (or a SampleCapacity) gives
    the fixed-capacity no-sync path where the backend has one.
    """
    impl = get_backend(backend)
    if shading not in ops.SHADING_MODES:
        raise ValueError(f"shading must be one of {', '.join(ops.SHADING_MODES)}, got {shading!r}")
    check_tensor("rays_o", rays_o, shape=(None, 3), dtype=torch.float32)
    check_tensor("rays_d", rays_d, shape=(rays_o.shape[0], 3), dtype=torch.float32)
    check_same_device(rays_o=rays_o, rays_d=rays_d)
    shaded = shading != "albedo"
    light = default_light(rays_o, light_position) if shaded else None
    ray_indices, t_starts, t_ends = impl.march(
        grid, rays_o, rays_d, near_plane=near_plane, far_plane=far_plane, render_step_size=render_step_size,
        stratified=stratified, max_samples=max_samples, generator=generator)
    positions = _sample_positions(rays_o, rays_d, ray_indices, t_starts, t_ends)
    normals = None
    if shaded:
        sigmas, albedo, normals = field.forward_with_normals(positions)
    else:
        sigmas, albedo = field(positions)
    sigmas = sigmas.reshape(-1)
    rgbs = impl.shade(albedo, normals, positions, light, float(ambient_ratio), shading)
    color, opacity, depth, weights = impl.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, rays_o.shape[0],
                                                    return_samples)
    samples = dict(weights=weights, ray_indices=ray_indices, t_starts=t_starts, t_ends=t_ends, positions=positions,
                   normals=normals) if return_samples else None
    return finish_render(color, opacity, depth, background, samples)


def finish_render(color: torch.Tensor, opacity: torch.Tensor, depth: torch.Tensor, background,
                  samples: dict | None = None) -> dict:
    """Composite over background ([3] or [R,3]) and assemble render_rays' output dict.

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

    Keyword arguments go to render_rays; rays are rendered in chunks of `chunk`; background may be [3] or [H*W,3].
    """
    rays_o, rays_d = get_rays(c2w, fovy_deg, height, width)
    rays_o = rays_o.reshape(-1, 3).contiguous()
    rays_d = rays_d.reshape(-1, 3).contiguous()
    kw.pop("return_samples", None)
    bg = kw.pop("background", None)
    parts = []
    for i in range(0, rays_o.shape[0], chunk):
        sub_bg = bg[i:i + chunk] if isinstance(bg, torch.Tensor) and bg.dim() == 2 else bg
        parts.append(render_rays(field, grid, rays_o[i:i + chunk], rays_d[i:i + chunk], background=sub_bg, **kw))
    return {k: torch.cat([p[k] for p in parts]).reshape(height, width, *parts[0][k].shape[1:])
            for k in ("color", "opacity", "depth")}
