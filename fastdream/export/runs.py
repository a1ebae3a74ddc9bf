"""Export and turntable rendering for a trained run (a fastdream.checkpoint.LoadedRun); used by the CLI and generate.

Run folder layout (DESIGN.md): `<run>/mesh/model.obj|.mtl|_albedo.png`, `<run>/mesh/model.glb`,
`<run>/video/turntable.mp4` (or .gif).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from fastdream.export.asset import FORMATS, ExportResult, export_asset
from fastdream.export.shell import DEFAULT_SEAL
from fastdream.export.turntable import render_turntable

SHADINGS = ("albedo", "lambertian", "textureless")


def config_value(config: Any, name: str, default: Any = None) -> Any:
    """First value stored under key/attribute `name` anywhere in a nested config (dataclass, dict, namespace)."""
    seen = set()
    stack = [config]
    while stack:
        node = stack.pop(0)
        if node is None or id(node) in seen or isinstance(node, (str, bytes, int, float, bool, torch.Tensor)):
            continue
        seen.add(id(node))
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            items = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
        elif isinstance(node, dict):
            items = node
        elif hasattr(node, "__dict__"):
            items = vars(node)
        else:
            continue
        if name in items and items[name] is not None:
            return items[name]
        stack.extend(items.values())
    return default


def _aabb(field) -> torch.Tensor:
    aabb = getattr(field, "aabb", None)
    if not isinstance(aabb, torch.Tensor) or aabb.numel() != 6:
        raise ValueError("the run's field has no aabb buffer [6]")
    return aabb.detach().float().cpu()


def _aabb_device(field) -> torch.device:
    aabb = getattr(field, "aabb", None)
    return aabb.device if isinstance(aabb, torch.Tensor) else torch.device("cpu")


def _default_path(run, *parts: str) -> Path:
    run_dir = getattr(run, "run_dir", None)
    if run_dir is None:
        raise ValueError("this run does not know its folder; pass the output path explicitly")
    return Path(run_dir).joinpath(*parts)


def export_run(run, out_dir: str | Path | None = None, *, formats: str | Sequence[str] = FORMATS,
               resolution: int = 256, texture_size: int = 1024, max_faces: int | None = 100_000,
               threshold: float | str | None = None, progress: bool = True,
               fill_unseen: bool = False, shell: bool = True, seal: float = DEFAULT_SEAL) -> ExportResult:
    """Extract and write the run's field as textured OBJ/GLB into out_dir (default `<run_dir>/mesh`).

    fill_unseen: fill the empty space that no camera of the run's training distribution (its config's
    elevation_range and radius_range, all azimuths) could see, so shells open towards the ground export without an
    inner skin. Off by default: it is conservative for cameras this close, so on builtin-prior runs it removed
    0-5 % of the faces for ~8 s at 192^3 (see visibility.py).
    shell, seal: one closed outer shell with openings narrower than seal x the box sealed (see extract_mesh);
    shell=False keeps every surface at the level, inner ones too."""
    field = run.field.eval()
    if out_dir is None:
        out_dir = _default_path(run, "mesh")

    def albedo(x: torch.Tensor) -> torch.Tensor:
        return field(x)[1]

    aabb = _aabb(field)
    occupied = None
    grid = getattr(run, "grid", None)
    grid_aabb = getattr(grid, "aabb", None)
    if isinstance(grid_aabb, torch.Tensor) and torch.allclose(grid_aabb.detach().float().cpu(), aabb):
        occupied = grid.occupied[0]  # level 0 covers exactly the field's box; the renderer skips the rest
    views = None
    if fill_unseen:
        from fastdream.cameras import CameraConfig
        from fastdream.export.visibility import TrainingViews

        defaults = CameraConfig()
        elevation = config_value(run.config, "elevation_range", defaults.elevation_range)
        radius = config_value(run.config, "radius_range", defaults.radius_range)
        views = TrainingViews(tuple(float(v) for v in elevation), float(min(radius)))
    return export_asset(field.density, albedo, aabb, out_dir, formats=formats, resolution=resolution,
                        texture_size=texture_size, max_faces=max_faces, threshold=threshold, progress=progress,
                        occupied=occupied, views=views, shell=shell, seal=seal)


def turntable_camera(run, radius: float | None = None, fovy_deg: float | None = None) -> tuple[float, float]:
    """Camera distance and vertical field of view for a run's turntable: the farthest training camera and the mean
    training fov from the run's config (`radius_range`, `fovy_range`), else fastdream.cameras.CameraConfig's
    defaults, so the object is framed as training saw it."""
    from fastdream.cameras import CameraConfig

    defaults = CameraConfig()
    if fovy_deg is None:
        fovy_deg = float(np.mean(config_value(run.config, "fovy_range", defaults.fovy_range)))
    if radius is None:
        radius = float(max(config_value(run.config, "radius_range", defaults.radius_range)))
    return float(radius), float(fovy_deg)


def _background(run, rays_d: torch.Tensor, shading: str) -> torch.Tensor:
    bg = getattr(run, "background", None)
    if isinstance(bg, torch.Tensor) and bg.numel() == 3:
        return bg.detach().float().to(rays_d.device).reshape(3)
    if isinstance(bg, (int, float)):
        return torch.full((3,), float(bg), device=rays_d.device)
    if isinstance(bg, torch.nn.Module):
        with torch.no_grad():
            out = bg(rays_d)
        if isinstance(out, torch.Tensor) and out.shape == (rays_d.shape[0], 3):
            return out.float()
    return torch.ones(3, device=rays_d.device)  # white, the usual turntable backdrop


def _render_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    import importlib.util

    # compiled kernels when fastdream._C is built; otherwise the PyTorch twins, rather than a JIT build mid-render
    return "fastdream" if importlib.util.find_spec("fastdream._C") is not None else "torch"


@torch.no_grad()
def render_view(run, azimuth_deg: float, *, size: int = 512, elevation_deg: float = 15.0,
                radius: float | None = None, fovy_deg: float | None = None, shading: str = "albedo",
                render_step_size: float | None = None, chunk: int = 1 << 16,
                device: torch.device | str | None = None, backend: str = "auto") -> np.ndarray:
    """One [size, size, 3] float image of the run from (elevation, azimuth), headlight for lambertian shading."""
    from fastdream import cameras
    from fastdream.renderer import render_rays

    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {', '.join(SHADINGS)}, got {shading!r}")
    field = run.field.eval()
    dev = torch.device(device) if device is not None else _aabb_device(field)
    radius, fovy_deg = turntable_camera(run, radius, fovy_deg)
    if render_step_size is None:
        render_step_size = config_value(run.config, "render_step_size")
    if render_step_size is None:
        aabb = _aabb(field)
        render_step_size = float((aabb[3:] - aabb[:3]).norm()) / 1024.0
    backend = _render_backend(backend)
    c2w = cameras.pose_spherical(radius, elevation_deg, azimuth_deg)
    rays_o, rays_d = cameras.get_rays(c2w, fovy_deg, size, size)
    rays_o = rays_o.reshape(-1, 3).to(dev)
    rays_d = rays_d.reshape(-1, 3).to(dev)
    light = c2w[:3, 3].to(dev)
    out = torch.empty(rays_o.shape[0], 3, device=dev)
    for i in range(0, rays_o.shape[0], chunk):
        o, d = rays_o[i:i + chunk], rays_d[i:i + chunk]
        res = render_rays(field, run.grid, o, d, shading=shading, light_position=light,
                          background=_background(run, d, shading), render_step_size=float(render_step_size),
                          backend=backend)
        out[i:i + chunk] = res["color"].float()
    return out.reshape(size, size, 3).clamp(0.0, 1.0).cpu().numpy()


def render_run(run, path: str | Path | None = None, *, frames: int = 120, size: int = 512, fps: int = 30,
               elevation_deg: float = 15.0, shading: str = "albedo", radius: float | None = None,
               fovy_deg: float | None = None, progress: bool = True, backend: str = "auto") -> Path:
    """Turntable video of a run (default `<run_dir>/video/turntable.mp4`; GIF if MP4 encoding is unavailable)."""
    if shading not in SHADINGS:
        raise ValueError(f"shading must be one of {', '.join(SHADINGS)}, got {shading!r}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size}")
    if path is None:
        path = _default_path(run, "video", "turntable.mp4")

    def view(azimuth: float) -> np.ndarray:
        return render_view(run, azimuth, size=int(size), elevation_deg=elevation_deg, radius=radius,
                           fovy_deg=fovy_deg, shading=shading, backend=backend)

    return render_turntable(view, path, frames=frames, fps=fps, progress=progress)
