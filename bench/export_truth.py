"""Exported meshes against the oracle's exact answer: Chamfer, off-surface area, topology, glTF validity.

    python bench/export_truth.py RUN/mesh/model.glb [OTHER.obj ...] --target sphere [--json FILE]

Each file (OBJ or GLB as fastdream writes them: y-up) is rotated back to the world frame and its UV seams welded
(equal positions merged), then compared with the target scene of `--guidance target:NAME`
(fastdream.guidance.target):
  chamfer      mean of (mean |sdf| over 50k area-uniform points on the mesh) and (mean distance from 20k
               area-uniform points on the true surface to 400k points on the mesh), in % of the box diagonal
               (box [-1, 1]^3: 2*sqrt(3))
  off_area     fraction of the mesh's area farther than 0.05 from the true surface (|sdf| at the same 50k points)
  median_r     median distance of the vertices from the origin (the sphere's radius is 0.5)
  topology     closed manifold or not, components, boundary / non-manifold / misoriented edges, pinched vertices
               (fastdream.export.cleanup.topology), trimesh is_watertight
  gltf         errors and warnings of the Khronos glTF validator (GLB only; npm gltf-validator, see
               tests/helpers/gltf_validator.py)
True-surface points come from marching cubes of the exact SDF at 256^3. Self-intersections are not measured.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from fastdream.export.cleanup import face_areas, topology, weld  # noqa: E402
from fastdream.export.writers import yup_to_world  # noqa: E402
from fastdream.guidance.target import target_scene  # noqa: E402

BOX_DIAGONAL = 2.0 * math.sqrt(3.0)
OFF_SURFACE = 0.05


def sample_on_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n area-uniform points [n, 3] on a triangle mesh."""
    tri = vertices[faces].astype(np.float64)
    area = face_areas(vertices, faces)
    face = rng.choice(len(faces), size=n, p=area / area.sum())
    s, r2 = np.sqrt(rng.random(n)), rng.random(n)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    return np.einsum("nj,njd->nd", bary, tri[face])


def true_surface_points(sdf, n: int, rng: np.random.Generator, resolution: int = 256) -> np.ndarray:
    """n area-uniform points on the zero level of an exact SDF over [-1, 1]^3."""
    from skimage.measure import marching_cubes

    axis = torch.linspace(-1.0, 1.0, resolution)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    values = torch.cat([sdf(c) for c in pts.split(1 << 20)]).reshape((resolution,) * 3).numpy()
    step = 2.0 / (resolution - 1)
    v, f, _, _ = marching_cubes(values, 0.0, spacing=(step,) * 3)
    return sample_on_mesh(v - 1.0, f.astype(np.int64), n, rng)


def load_world_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices [V, 3] world z-up, faces [F, 3]) of a fastdream OBJ/GLB, UV seams welded."""
    import trimesh

    mesh = trimesh.load(path, force="mesh", process=False)
    world = yup_to_world(np.asarray(mesh.vertices)).astype(np.float32)
    return weld(world, np.asarray(mesh.faces, dtype=np.int64))


def truth_metrics(vertices: np.ndarray, faces: np.ndarray, sdf, surface: np.ndarray, seed: int = 0) -> dict:
    """Chamfer (% of the box diagonal), off-surface area fraction, median vertex radius, topology of one mesh."""
    import trimesh
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    on_mesh = sample_on_mesh(vertices, faces, 50_000, rng)
    mesh_to_true = sdf(torch.from_numpy(on_mesh).float()).abs().numpy()
    dense = sample_on_mesh(vertices, faces, 400_000, rng)
    true_to_mesh, _ = cKDTree(dense).query(surface)
    chamfer = 0.5 * (mesh_to_true.mean() + true_to_mesh.mean())
    topo = topology(faces)
    return {"vertices": int(len(vertices)), "faces": int(len(faces)),
            "chamfer_pct_diag": round(float(100.0 * chamfer / BOX_DIAGONAL), 3),
            "off_area": round(float((mesh_to_true > OFF_SURFACE).mean()), 4),
            "median_r": round(float(np.median(np.linalg.norm(vertices, axis=1))), 4),
            "closed_manifold": topo.closed_manifold, "components": topo.components,
            "boundary_edges": topo.boundary_edges, "nonmanifold_edges": topo.nonmanifold_edges,
            "misoriented_edges": topo.misoriented_edges, "pinched_vertices": topo.nonmanifold_vertices,
            "watertight": bool(trimesh.Trimesh(vertices, faces, process=False).is_watertight)}


def gltf_issues(path: Path) -> dict:
    """Errors, warnings and the distinct issue codes the Khronos validator reports for a GLB."""
    from tests.helpers.gltf_validator import validate

    issues = validate(path)["issues"]
    codes = sorted({m["code"] for m in issues["messages"]})
    return {"gltf_errors": issues["numErrors"], "gltf_warnings": issues["numWarnings"], "gltf_codes": codes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meshes", nargs="+", type=Path, help="OBJ or GLB files written by fastdream export")
    parser.add_argument("--target", default="sphere", help="the oracle target the run was trained on")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    scene = target_scene(args.target)
    surface = true_surface_points(scene.sdf, 20_000, np.random.default_rng(1))
    rows = {}
    for path in args.meshes:
        vertices, faces = load_world_mesh(path)
        row = truth_metrics(vertices, faces, scene.sdf, surface)
        if path.suffix.lower() == ".glb":
            row.update(gltf_issues(path))
        rows[str(path)] = row
        print(path, json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"target": args.target, "meshes": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
