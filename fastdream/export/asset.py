"""One call from a field to asset files: mesh, UVs, texture, OBJ/GLB, written all-or-nothing."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from fastdream.errors import UserError
from fastdream.export.bake import bake_texture
from fastdream.export.isosurface import extract_mesh
from fastdream.export.shell import DEFAULT_SEAL
from fastdream.export.uv import unwrap
from fastdream.export.writers import write_glb, write_obj

log = logging.getLogger(__name__)

FORMATS = ("obj", "glb")


@dataclass
class ExportResult:
    files: dict[str, list[Path]]  # format -> written paths
    n_vertices: int
    n_faces: int
    threshold: float
    texture_size: int
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals [V, 3] float32 of an outward-wound mesh: area-weighted face normals.

    Where those cancel or vanish (a needle, faces of zero area) the vertex takes its largest face's normal, else
    the direction from the mesh centroid, else +z: every normal has unit length (glTF requires it)."""
    tri = vertices[faces].astype(np.float64)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros((len(vertices), 3))
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1)
    bad = ~(norm > 1e-12 * max(float(norm.max(initial=0.0)), 1e-300))
    if bad.any():
        corner_face = np.repeat(np.arange(len(faces)), 3)
        order = np.argsort(np.linalg.norm(fn, axis=1)[corner_face], kind="stable")
        largest = np.zeros((len(vertices), 3))
        largest[faces.reshape(-1)[order]] = fn[corner_face[order]]  # the last write, the largest face, stays
        fallback = np.where(np.linalg.norm(largest, axis=1, keepdims=True) > 0, largest,
                            vertices - vertices.mean(0))
        n[bad] = fallback[bad]
        norm = np.linalg.norm(n, axis=1)
        still = ~(norm > 0)
        n[still], norm[still] = (0.0, 0.0, 1.0), 1.0
    return (n / norm[:, None]).astype(np.float32)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """'glb,obj' or ('glb', 'obj') -> validated tuple; ValueError naming the bad entry."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = []
    for item in items:
        fmt = str(item).strip().lower().lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {item!r}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ValueError("formats must name at least one of " + ", ".join(FORMATS))
    return tuple(out)


def _prepare_out_dir(out_dir: Path) -> tuple[Path, Path | None]:
    """Create out_dir and a hidden temp folder in it; returns (temp, topmost folder we created or None)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output folder {out_dir} exists and is not a folder; choose another path")
    created = None
    probe = out_dir.absolute()
    while not probe.exists() and probe != probe.parent:
        created, probe = probe, probe.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    except OSError as exc:
        raise UserError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}; "
                        "choose a writable folder") from exc
    return tmp, created


def _remove_created(out_dir: Path, created: Path | None) -> None:
    """Remove the folders export_asset created (out_dir up to `created`) where they are empty."""
    if created is None:
        return
    folder = out_dir.absolute()
    while True:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        if folder == created:
            return
        folder = folder.parent


def _write_formats(fmts, tmp: Path, out_dir: Path, name: str, uvm, texture, vn, y_up: bool) -> dict:
    """Write each format into tmp, then rename every file into out_dir: {format: [final paths]}."""
    written: dict[str, list[Path]] = {}
    for fmt in fmts:
        if fmt == "obj":
            written[fmt] = write_obj(tmp / f"{name}.obj", uvm.vertices, uvm.faces, uvm.uvs, texture, normals=vn,
                                     y_up=y_up)
        else:
            written[fmt] = [write_glb(tmp / f"{name}.glb", uvm.vertices, uvm.faces, uvm.uvs, texture, normals=vn,
                                      y_up=y_up)]
    for paths in written.values():
        for p in paths:
            os.replace(p, out_dir / p.name)
    return {fmt: [out_dir / p.name for p in paths] for fmt, paths in written.items()}


def export_asset(density_fn: Callable[[torch.Tensor], torch.Tensor],
                 albedo_fn: Callable[[torch.Tensor], torch.Tensor], aabb, out_dir, *,
                 formats: str | Sequence[str] = FORMATS, resolution: int = 256, texture_size: int = 1024,
                 max_faces: int | None = 100_000, threshold: float | None = None, name: str = "model",
                 min_component_ratio: float | None = None, device: torch.device | str | None = None,
                 progress: bool = True, y_up: bool = True, occupied: torch.Tensor | None = None,
                 views=None, shell: bool = True, seal: float = DEFAULT_SEAL) -> ExportResult:
    """Extract, clean, unwrap, bake and write a field as `<out_dir>/<name>.obj|.mtl|_albedo.png` and `<name>.glb`.

    density_fn / albedo_fn: x [N, 3] world -> sigma [N] / rgb [N, 3] in [0, 1]; aabb [6] world units. threshold=None
    matches rendered opacity (see extract_mesh); occupied (bool [r, r, r] over aabb) skips empty space;
    views: the training cameras (visibility.TrainingViews); space none of them could see is filled (extract_mesh).
    shell (default): one closed, manifold outer shell, openings narrower than `seal` (a fraction of the box) sealed;
    shell=False keeps inner surfaces too (see extract_mesh).
    Files are y-up (see fastdream.export.writers), world units.
    All-or-nothing: everything is written into a hidden temporary folder inside out_dir and renamed into place only
    when every stage succeeded; on any error nothing new is left behind (a folder we created is removed again).
    Raises NoSurfaceError (a UserError) for a field without surface, UserError for an unwritable out_dir.
    """
    fmts = parse_formats(formats)
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    if int(texture_size) != texture_size or texture_size < 8:
        raise ValueError(f"texture_size must be an integer >= 8, got {texture_size}")
    out_dir = Path(out_dir)
    tmp, created = _prepare_out_dir(out_dir)
    seconds: dict[str, float] = {}
    try:
        t = time.perf_counter()
        mesh = extract_mesh(density_fn, aabb, resolution, threshold, max_faces=max_faces,
                            min_component_ratio=min_component_ratio, device=device, progress=progress,
                            occupied=occupied, views=views, shell=shell, seal=seal)
        seconds["mesh"] = time.perf_counter() - t
        log.info("mesh: %d vertices, %d faces at density %.4g (%.1f s)", len(mesh.vertices), len(mesh.faces),
                 mesh.threshold, seconds["mesh"])
        t = time.perf_counter()
        normals = vertex_normals(mesh.vertices, mesh.faces)
        uvm = unwrap(mesh.vertices, mesh.faces, texture_size=int(texture_size))
        seconds["unwrap"] = time.perf_counter() - t
        log.info("uv atlas: %d vertices (%.1f s)", len(uvm.vertices), seconds["unwrap"])
        t = time.perf_counter()
        texture = bake_texture(uvm.vertices, uvm.faces, uvm.uvs, albedo_fn, int(texture_size), device=device,
                               progress=progress)
        seconds["bake"] = time.perf_counter() - t
        log.info("texture %d^2 baked (%.1f s)", texture_size, seconds["bake"])
        t = time.perf_counter()
        files = _write_formats(fmts, tmp, out_dir, name, uvm, texture, normals[uvm.vmapping], y_up)
        seconds["write"] = time.perf_counter() - t
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(out_dir, created)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    seconds["total"] = sum(seconds.values())
    log.info("exported %s to %s (%.1f s)", ", ".join(fmts), out_dir, seconds["total"])
    return ExportResult(files, len(uvm.vertices), len(uvm.faces), mesh.threshold, int(texture_size), seconds)
