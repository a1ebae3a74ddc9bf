"""Export and turntable rendering for a trained run (a fastdream.checkpoint.LoadedRun); used by the CLI and generate.

Run folder layout (DESIGN.md): `<run>/mesh/model.obj|.mtl|_albedo.png`, `<run>/mesh/model.glb`,
`<run>/video/turntable.mp4` (or .gif).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fastdream.cameras import pose_spherical
from fastdream.errors import WriteError
from fastdream.export.asset import FORMATS, ExportResult, export_asset
from fastdream.export.shell import DEFAULT_SEAL
from fastdream.export.turntable import render_turntable
from fastdream.export.visibility import TrainingViews
from fastdream.ops import SHADING_MODES

MAX_SIZE = 4096  # turntable frame width and height in pixels


def _aabb(field) -> torch.Tensor:
    aabb = getattr(field, "aabb", None)
    if not isinstance(aabb, torch.Tensor) or aabb.numel() != 6:
        raise ValueError("the run's field has no aabb buffer [6]")
    return aabb.detach().float().cpu()


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
        cam = run.config.camera
        views = TrainingViews(tuple(float(v) for v in cam.elevation_range), float(min(cam.radius_range)))
    try:
        return export_asset(field.density, albedo, aabb, out_dir, formats=formats, resolution=resolution,
                            texture_size=texture_size, max_faces=max_faces, threshold=threshold, progress=progress,
                            occupied=occupied, views=views, shell=shell, seal=seal)
    except WriteError as exc:  # name the export folder, not the hidden temporary one the files were written to
        raise WriteError(f"cannot write the export to {out_dir}: {exc.reason}; the files already there are "
                         "unchanged") from None


def turntable_camera(run, radius: float | None = None, fovy_deg: float | None = None) -> tuple[float, float]:
    """Camera distance and vertical field of view for a run's turntable: the farthest training camera and the mean
    training fov of the run's config, so the object is framed as training saw it."""
    cam = run.config.camera
    if fovy_deg is None:
        fovy_deg = float(np.mean(cam.fovy_range))
    if radius is None:
        radius = float(max(cam.radius_range))
    return float(radius), float(fovy_deg)


def _render_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    import importlib.util

    # compiled kernels when fastdream._C is built; otherwise the PyTorch twins, rather than a JIT build mid-render
    return "fastdream" if importlib.util.find_spec("fastdream._C") is not None else "torch"


def render_view(run, azimuth_deg: float, *, size: int = 512, elevation_deg: float = 15.0,
                radius: float | None = None, fovy_deg: float | None = None, shading: str = "albedo",
                backend: str = "auto") -> np.ndarray:
    """One [size, size, 3] float image of the run from (elevation, azimuth) over its background (white unless the
    run learnt one), head light for shaded modes."""
    if shading not in SHADING_MODES:
        raise ValueError(f"shading must be one of {', '.join(SHADING_MODES)}, got {shading!r}")
    radius, fovy_deg = turntable_camera(run, radius, fovy_deg)
    c2w = pose_spherical(radius, elevation_deg, azimuth_deg)
    out = run.scene.render_camera(c2w, fovy_deg, size, size, shading=shading, background=run.scene.background,
                                  backend=_render_backend(backend))
    return out["color"].cpu().numpy()


def render_run(run, path: str | Path | None = None, *, frames: int = 120, size: int = 512, fps: int = 30,
               elevation_deg: float = 15.0, shading: str = "albedo", radius: float | None = None,
               fovy_deg: float | None = None, progress: bool = True, backend: str = "auto") -> Path:
    """Turntable video of a run (default `<run_dir>/video/turntable.mp4`; GIF if MP4 encoding is unavailable)."""
    if shading not in SHADING_MODES:
        raise ValueError(f"shading must be one of {', '.join(SHADING_MODES)}, got {shading!r}")
    if int(size) != size or not 8 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer in [8, {MAX_SIZE}], got {size}")
    if path is None:
        path = _default_path(run, "video", "turntable.mp4")

    def view(azimuth: float) -> np.ndarray:
        return render_view(run, azimuth, size=int(size), elevation_deg=elevation_deg, radius=radius,
                           fovy_deg=fovy_deg, shading=shading, backend=backend)

    return render_turntable(view, path, frames=frames, fps=fps, progress=progress)
