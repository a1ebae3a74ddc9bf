"""Held-out views of the scene during training: fixed cameras, PSNR against an oracle's exact target, previews."""
from __future__ import annotations

from pathlib import Path

import torch

from fastdream.cameras import CameraBatch, pose_spherical
from fastdream.files import atomic_write
from fastdream.guidance.base import ViewContext

__all__ = ["eval_cameras", "render_views", "psnr", "heldout_psnr", "write_preview"]


def eval_cameras(camera_cfg, n: int) -> CameraBatch:
    """n fixed held-out cameras: elevation 15 deg, azimuths 45 + k*360/n deg, mid radius and fovy; light at the eye."""
    c = camera_cfg
    az = torch.tensor([45.0 + 360.0 * k / n for k in range(n)])
    el = torch.full((n,), 15.0)
    radius = torch.full((n,), 0.5 * (c.radius_range[0] + c.radius_range[1]))
    fovy = torch.full((n,), 0.5 * (c.fovy_range[0] + c.fovy_range[1]))
    c2w = pose_spherical(radius, el, az)
    return CameraBatch(c2w, fovy, el, az, radius, c2w[:, :3, 3].clone())


def render_views(scene, cams: CameraBatch, size: int, shading: str = "albedo") -> torch.Tensor:
    """Images [B,3,size,size] of the scene from `cams` on a white background (Scene.render_camera)."""
    imgs = []
    for b in range(cams.c2w.shape[0]):
        out = scene.render_camera(cams.c2w[b], float(cams.fovy_deg[b]), size, size, shading=shading,
                                  light_position=cams.light_position[b].to(scene.device))
        imgs.append(out["color"].permute(2, 0, 1))
    return torch.stack(imgs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between images in [0,1]."""
    mse = torch.mean((a.float() - b.float()) ** 2).clamp_min(1e-12)
    return float(-10.0 * torch.log10(mse))


def heldout_psnr(scene, guidance, camera_cfg, n_views: int, size: int) -> float | None:
    """PSNR (dB) of albedo renders against the oracle's exact target on held-out views (None: no oracle)."""
    render_target = getattr(guidance, "render_target", None)
    if render_target is None or n_views == 0:
        return None
    cams = eval_cameras(camera_cfg, n_views)
    pred = render_views(scene, cams, size, "albedo")
    view = ViewContext(cameras=cams, height=size, width=size, shading=["albedo"] * n_views,
                       ambient_ratio=[0.1] * n_views, background=torch.ones(n_views, size, size, 3))
    return psnr(pred, render_target(view).to(pred.device))


def write_preview(scene, camera_cfg, size: int, path: Path) -> Path:
    """A PNG of 4 held-out views in albedo (top row) and lambertian shading (bottom row), written atomically."""
    import imageio.v3 as iio

    cams = eval_cameras(camera_cfg, 4)
    rows = [render_views(scene, cams, size, s) for s in ("albedo", "lambertian")]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # [3, 2S, 4S]
    img = (grid.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
    with atomic_write(path) as fh:
        fh.write(iio.imwrite("<bytes>", img, extension=".png"))
    return path
