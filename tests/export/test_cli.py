"""`fastdream export` and `fastdream render` on a small run with an analytic field (the real renderer and grid)."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import trimesh
from tests.helpers.export_fields import AABB, SPHERE_C, density_of, position_albedo, sphere_sdf

from fastdream.cli import main
from fastdream.config import make_config
from fastdream.errors import UserError


class SphereField(torch.nn.Module):
    """The Field interface over an analytic sphere coloured by position."""

    def __init__(self):
        super().__init__()
        self.register_buffer("aabb", torch.tensor(AABB))
        self._density = density_of(sphere_sdf, 200.0, 0.005)

    def density(self, x):
        return self._density(x)

    def forward(self, x):
        return self._density(x), position_albedo(x)

    def forward_with_normals(self, x):
        return self._density(x), position_albedo(x), torch.nn.functional.normalize(x - SPHERE_C.to(x), dim=-1)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A run folder whose loader returns the analytic sphere; any other folder is a UserError like load_run's."""
    from fastdream.scene.occupancy import OccupancyGrid
    from fastdream.scene.background import Background
    from fastdream.scene.scene import Scene

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "marker").write_text("ok")

    def load_run(path, device="cpu"):
        from pathlib import Path

        if not (Path(path) / "marker").exists():
            raise UserError(f"{path} is not a fastdream run folder")
        field, grid = SphereField(), OccupancyGrid(AABB, resolution=16)
        return types.SimpleNamespace(field=field, grid=grid, background=torch.ones(3),
                                     scene=Scene(field, grid, Background("white"), render_step_size=0.02),
                                     config=make_config(prompt="a sphere", overrides=[
                                         "camera.fovy_range=[40, 40]", "render.render_step_size=0.02"]),
                                     step=0, prompt="a sphere")

    fake = types.ModuleType("fastdream.checkpoint")
    fake.load_run = load_run
    monkeypatch.setitem(sys.modules, "fastdream.checkpoint", fake)
    return folder


def test_export_command_writes_loadable_assets(run_dir):
    code = main(["export", str(run_dir), "--format", "glb,obj", "--resolution", "40", "--texture-size", "128",
                 "--faces", "3000", "--device", "cpu"])
    assert code == 0
    out = run_dir / "mesh"
    assert sorted(p.name for p in out.iterdir()) == ["model.glb", "model.mtl", "model.obj", "model_albedo.png"]
    glb = trimesh.load_mesh(out / "model.glb", process=False)
    obj = trimesh.load_mesh(out / "model.obj", process=False)
    assert len(glb.faces) == len(obj.faces) <= 3000
    assert np.asarray(glb.visual.material.baseColorTexture).shape[:2] == (128, 128)


def test_render_command_writes_a_turntable(run_dir):
    import imageio.v2 as imageio

    code = main(["render", str(run_dir), "--frames", "4", "--size", "32", "--shading", "lambertian",
                 "--radius", "3.0", "--elevation", "0", "--device", "cpu"])
    assert code == 0
    video = run_dir / "video" / "turntable.mp4"
    with imageio.get_reader(video, format="FFMPEG") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    for f in frames:
        assert f[16, 16].astype(int).sum() < 600  # the sphere fills the centre
        assert f[1, 1].min() > 235  # white background in the corner


def test_missing_run_and_bad_options_are_user_errors(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "not a fastdream run folder" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "nope")]) == 2
    assert main(["export", str(run_dir), "--format", "fbx"]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["render", str(run_dir), "--radius", "-1"]) == 2
    assert not (run_dir / "mesh").exists() and not (run_dir / "video").exists()
    with pytest.raises(SystemExit):
        main(["render", str(run_dir), "--shading", "toon"])
    with pytest.raises(SystemExit):
        main(["export", str(run_dir), "--resolution", "0"])


def test_turntable_frames_the_object_as_the_run_was_trained():
    from fastdream.config import make_config
    from fastdream.export.runs import turntable_camera

    cfg = make_config(prompt="x", overrides=["camera.radius_range=[1.0, 3.0]", "camera.fovy_range=[30, 50]"])
    run = types.SimpleNamespace(config=cfg)
    assert turntable_camera(run) == (3.0, 40.0)
    assert turntable_camera(run, radius=2.0, fovy_deg=20.0) == (2.0, 20.0)


@pytest.mark.parametrize("command", ["export", "render"])
def test_missing_or_corrupt_real_run_folder_is_a_user_error(tmp_path, capsys, command):
    """Through the real fastdream.checkpoint.load_run: nothing written, a message instead of a traceback."""
    assert main([command, str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert main([command, str(run)]) == 2  # no checkpoint
    assert "checkpoint" in capsys.readouterr().err
    (run / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    assert main([command, str(run)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]


def test_export_fills_what_no_training_camera_saw_when_asked(tmp_path, monkeypatch):
    from tests.export.test_visibility import _capped_tube

    from fastdream.scene.occupancy import OccupancyGrid

    tube = density_of(lambda x: _capped_tube(x, open_end="bottom"), 200.0, 0.01)

    class TubeField(SphereField):
        def density(self, x):
            return tube(x)

        def forward(self, x):
            return tube(x), position_albedo(x)

    def load_run(path, device="cpu"):
        return types.SimpleNamespace(field=TubeField(), grid=OccupancyGrid(AABB, resolution=16),
                                     background=torch.ones(3), step=0, prompt="a tube",
                                     config=make_config(prompt="a tube",
                                                        overrides=["camera.elevation_range=[-10, 45]"]))

    fake = types.ModuleType("fastdream.checkpoint")
    fake.load_run = load_run
    monkeypatch.setitem(sys.modules, "fastdream.checkpoint", fake)
    inner_top = {}  # vertices of the inner skin just under the tube's closed top (files are y-up: world z = y)
    for flag in ([], ["--fill-unseen"]):
        out = tmp_path / ("filled" if flag else "kept")
        assert main(["export", str(tmp_path), "--out", str(out), "--format", "obj", "--resolution", "64",
                     "--texture-size", "64", "--faces", "1000000", "--device", "cpu", *flag]) == 0
        v = np.asarray(trimesh.load_mesh(out / "model.obj", process=False).vertices)
        rho = np.hypot(v[:, 0], v[:, 2])
        inner_top["filled" if flag else "kept"] = int(((rho < 0.35) & (v[:, 1] > 0.25) & (v[:, 1] < 0.38)).sum())
    assert inner_top["kept"] > 20 and inner_top["filled"] == 0
