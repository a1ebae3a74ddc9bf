"""`fastdream eval --procedural` with truth figures, on fake runs: config.yaml and mesh files on disk, exact
procedural renders standing in for the field's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fastdream import procedural
from fastdream.cameras import get_rays, pose_spherical
from fastdream.cli import main
from fastdream.eval.views import RenderedRun

pytestmark = pytest.mark.usefixtures("one_thread")

# name: (prompt, guidance spec, rendered scene, mesh file, mesh); the cube has one of the sizes R@1 renders
# its candidates at, so it is retrieved exactly
RUNS = {
    "cube": ("a red cube", "builtin:shapes", procedural.Shape("cube", "red", size=0.45), "model.obj", ("box", 0.45)),
    "block": ("a red cube", "builtin:shapes", procedural.Shape("cube", "red", size=0.95), "model.glb",
              ("box", 0.95)),
    "ball": ("a ball", "target:sphere", procedural.Shape("sphere", "orange", size=0.5), "model.glb",
             ("sphere", 0.5)),
}


def _mesh(kind: str, size: float):
    import trimesh

    m = trimesh.creation.box(extents=[2 * size] * 3) if kind == "box" else \
        trimesh.creation.icosphere(subdivisions=5, radius=size)
    return np.asarray(m.vertices, dtype=np.float32), np.asarray(m.faces, dtype=np.int64)


def _write_run(root: Path, name: str) -> Path:
    from fastdream.export.writers import write_glb, write_obj

    prompt, spec, _, mesh_file, (kind, size) = RUNS[name]
    run = root / name
    (run / "mesh").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"prompt": prompt, "guidance": {"spec": spec},
                                                     "field": {"aabb_radius": 1.0}}))
    v, f = _mesh(kind, size)
    write = write_obj if mesh_file.endswith(".obj") else write_glb  # both y-up, as generate writes them
    write(run / "mesh" / mesh_file, v, f, np.zeros((len(v), 2), np.float32), np.full((4, 4, 3), 200, np.uint8))
    return run


def _fake_render(run_dir, protocol, device="cpu"):
    prompt, _, shape, _, _ = RUNS[Path(run_dir).name]
    n, size = protocol.views, protocol.size
    c2w = pose_spherical(torch.full((n,), 2.5), torch.full((n,), protocol.elevation),
                         torch.tensor(protocol.azimuths(), dtype=torch.float32))
    rays_o, rays_d = get_rays(c2w, 50.0, size, size)
    rgb, hit = procedural.render(procedural.Scene([shape]), rays_o.reshape(-1, 3), rays_d.reshape(-1, 3))
    return RenderedRun(run_dir=Path(run_dir), prompt=prompt, seed=0, images={"color": rgb.reshape(n, size, size, 3)},
                       c2w=c2w, fovy=50.0, opacity=hit.float().reshape(n, size, size))


def test_truth_columns_and_a_wrong_run_marked_not_correct(tmp_path, monkeypatch, capsys):
    from fastdream.eval import views

    monkeypatch.setattr(views, "render_run", _fake_render)
    runs = [_write_run(tmp_path, name) for name in RUNS]
    out = tmp_path / "report.json"
    assert main(["eval", *map(str, runs), "--procedural", "--views", "3", "--size", "24", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {Path(r["run_dir"]).name: r for r in report["runs"]}

    cube = rows["cube"]["truth"]
    assert cube["truth"] == "builtin:shapes cube" and cube["mesh"] == "mesh/model.obj"
    assert cube["fit"]["fitted_size"] == pytest.approx(0.45, abs=0.01)
    assert cube["chamfer_mesh_to_truth_pct"] < 0.3 and cube["chamfer_truth_to_mesh_pct"] < 0.3
    assert cube["volume_iou"] > 0.95 and cube["silhouette_iou"] > 0.95 and cube["off_surface"] == 0.0
    assert cube["validity"]["watertight"] and cube["passed"] and rows["cube"]["correct"] is True

    # the block wins R@1 among candidates (the biggest red shape) but fails the truth: not correct
    block = rows["block"]
    assert block["rank"] == 1 and block["correct"] is False and not block["truth"]["passed"]
    assert block["truth"]["failures"][0] == "size 0.95 outside [0.30, 0.75]"
    assert any(f.startswith("chamfer") for f in block["truth"]["failures"])

    # an oracle run whose prompt names no shape: no R@1, judged by the sphere's bars alone
    ball = rows["ball"]
    assert ball["rank"] is None and ball["truth"]["truth"] == "target:sphere" and ball["correct"] is True
    assert ball["truth"]["bars"]["name"] == "target:sphere" and ball["truth"]["validity"]["components"] == 1

    assert report["summary"]["n"] == 2 and report["summary"]["r_at_1"] == 1.0
    assert report["truth_summary"] == {"n": 3, "passed": 2, "correct": 2, "correct_fraction": 2 / 3}
    for column in ("chamfer%", "volIoU", "silIoU", "off%", "closed", "verdict"):
        assert column in printed
    assert "block vs builtin:shapes cube: size 0.95 outside [0.30, 0.75]" in printed
    assert "WRONG" in printed and "correct (R@1 hit and bars pass) 2/3" in printed
