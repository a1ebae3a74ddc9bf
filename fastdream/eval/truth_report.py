"""Truth figures of one run: its mesh (the exported file users get, else one extracted in memory) and its opacity at
the held-out protocol views, measured against the run's exact truth (fastdream.eval.truth_target)."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from fastdream.eval import truth as tm
from fastdream.eval.truth_target import Truth, build_truth, judge, truth_spec, unit_surface_points
from fastdream.eval.views import RenderedRun

log = logging.getLogger("fastdream")

__all__ = ["MESH_FILES", "FALLBACK_RESOLUTION", "TRUTH_SEED", "read_run_config", "load_mesh_file", "run_mesh",
           "measure", "score_run_truth"]

MESH_FILES = ("mesh/model.glb", "mesh/model.obj")  # what users get, in this order of preference
FALLBACK_RESOLUTION = 128  # lattice for a run without an exported mesh: ~1/5 % of the diagonal per half voxel
TRUTH_SEED = 0  # sampling is seeded, so the same run always gets the same figures


def read_run_config(run_dir: str | Path) -> dict:
    """The run's resolved config.yaml as a dict; ValueError when it is missing or not a mapping."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ValueError(f"no {path.name} in the run folder")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping of config sections")
    return data


def load_mesh_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V,3] world z-up, faces [F,3]) of an OBJ/GLB written y-up, welded by position (UV seams split
    vertices in files; the surface's topology is what is judged)."""
    import trimesh

    from fastdream.export.writers import yup_to_world

    mesh = trimesh.load(str(path), force="mesh", process=False)
    return tm.weld(yup_to_world(np.asarray(mesh.vertices)), np.asarray(mesh.faces, dtype=np.int64))


def _extract(run_dir: Path, device, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The exporter's isosurface of the run's field, in memory (no textures, nothing written)."""
    from fastdream.checkpoint import load_run
    from fastdream.export import NoSurfaceError, extract_mesh

    run = load_run(run_dir, device=device)
    field, grid = run.field.eval(), run.grid
    aabb = field.aabb.detach().float().cpu()
    grid_aabb = getattr(grid, "aabb", None)
    occupied = None  # the exporter's own choice: level 0 of the occupancy grid when it spans the field's box
    if isinstance(grid_aabb, torch.Tensor) and torch.allclose(grid_aabb.detach().float().cpu(), aabb):
        occupied = grid.occupied[0]
    try:
        mesh = extract_mesh(field.density, aabb, resolution, occupied=occupied)
    except NoSurfaceError as exc:
        log.warning("%s: %s", run_dir, exc)
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def run_mesh(run_dir: str | Path, device="cpu", resolution: int = FALLBACK_RESOLUTION):
    """(vertices, faces, source): the run's exported mesh file, else its field's isosurface at `resolution`."""
    run_dir = Path(run_dir)
    for rel in MESH_FILES:
        if (run_dir / rel).is_file():
            return (*load_mesh_file(run_dir / rel), rel)
    return (*_extract(run_dir, device, resolution), f"extracted in memory at {resolution}^3 (no exported mesh)")


def _truth_masks(truth: Truth, rendered: RenderedRun, size: tuple[int, int]) -> torch.Tensor:
    from fastdream.cameras import get_rays

    rays_o, rays_d = get_rays(rendered.c2w.float(), rendered.fovy, *size)
    return torch.stack([truth.masks(o.reshape(-1, 3), d.reshape(-1, 3)).reshape(size)
                        for o, d in zip(rays_o, rays_d)])


def measure(vertices, faces, truth: Truth, aabb, mesh_points: np.ndarray, rng: np.random.Generator,
            rendered: RenderedRun | None = None) -> dict:
    """Every truth figure of a mesh; mesh_points are its area-uniform samples. Silhouette IoU needs rendered
    opacity and cameras (None without them)."""
    diagonal = tm.box_diagonal(aabb)
    half = 0.5 * float(np.max(np.asarray(aabb[3:]) - np.asarray(aabb[:3])))
    truth_points = tm.sample_sdf_surface(truth.sdf, aabb, tm.CHAMFER_SAMPLES, rng)
    # the same directed distances serve Chamfer and off-surface (each query costs seconds on a wrong mesh)
    to_truth = tm.nearest_distances(mesh_points, truth_points)
    to_mesh = tm.nearest_distances(truth_points, mesh_points)
    tol = tm.OFF_SURFACE_TOL * half
    sil, per_view = None, None
    if rendered is not None and rendered.opacity is not None and rendered.c2w is not None:
        sil, per_view = tm.silhouette_iou(rendered.opacity,
                                          _truth_masks(truth, rendered, tuple(rendered.opacity.shape[1:])))
    return {"box_diagonal": diagonal, "chamfer_mesh_to_truth_pct": float(100 * to_truth.mean() / diagonal),
            "chamfer_truth_to_mesh_pct": float(100 * to_mesh.mean() / diagonal),
            "volume_iou": tm.volume_iou(vertices, faces, truth.sdf, aabb),
            "silhouette_iou": sil, "silhouette_iou_per_view": per_view,
            "off_surface": float((to_truth > tol).mean()), "off_surface_tol": tol,
            "off_surface_by_height": tm.off_surface_by_height(mesh_points, to_truth > tol, truth_points),
            "validity": tm.mesh_validity(vertices, faces)}


def _box(config: dict) -> list[float]:
    r = float((config.get("field") or {}).get("aabb_radius", 1.0))
    return [-r, -r, -r, r, r, r]


def score_run_truth(run_dir: str | Path, rendered: RenderedRun, device="cpu", mesh=None) -> dict:
    """{"truth": label, figures..., "fit", "bars", "failures", "passed"} for a run, or {"truth": None, "reason"}
    when it has no exact truth. mesh: (vertices, faces, source) to judge instead of the run's own."""
    try:
        config = read_run_config(run_dir)
        spec, aabb = truth_spec(config, rendered.prompt), _box(config)
    except ValueError as exc:
        return {"truth": None, "reason": str(exc)}
    vertices, faces, source = mesh if mesh is not None else run_mesh(run_dir, device)
    rng = np.random.default_rng(TRUTH_SEED)
    mesh_points = tm.sample_mesh_surface(vertices, faces, tm.CHAMFER_SAMPLES, rng)
    out = {"truth": spec.label, "mesh": source}
    if len(mesh_points) == 0:
        return {**out, "failures": ["no mesh: the run has no surface"], "passed": False}
    unit = unit_surface_points(spec.name, tm.CHAMFER_SAMPLES, rng) if spec.kind == "builtin" else None
    truth = build_truth(spec, mesh_points, unit, aabb[3], rng)
    figures = measure(vertices, faces, truth, aabb, mesh_points, rng, rendered)
    failures = judge(figures, truth.bars, truth.fit)
    return {**out, **figures, "fit": truth.fit or None, "bars": asdict(truth.bars), "failures": failures,
            "passed": not failures}
