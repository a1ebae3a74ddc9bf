"""Issue #17, full disks: render, export and a checkpoint on a filesystem that fills up end in one line and a
non-zero exit, and what the user had there before is still there, byte for byte."""
from __future__ import annotations

import os

import pytest

from fastdream.checkpoint import checkpoint_path, load_checkpoint
from fastdream.cli import main
from fastdream.errors import WriteError

from tests.commands.test_generate import SMALL
from tests.helpers.reliability import fill, make_tiny_run, small_disk, snapshot  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("full_disk") / "run")


def _one_line(capsys) -> str:
    """The error on stderr, which must be one line (progress bars aside) and no traceback."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and "%|" not in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_render_on_a_full_disk_keeps_the_previous_video(run_dir, small_disk, capfd):
    """capfd: ffmpeg writes to the file descriptor, and must stay quiet too."""
    video = small_disk / "video" / "turntable.mp4"
    video.parent.mkdir()
    video.write_bytes(b"the good turntable")
    fill(small_disk)
    code = main(["render", str(run_dir), "--out", str(video), "--frames", "2", "--size", "16", "--device", "cpu"])
    err = _one_line(capfd)
    assert code == 1 and "no space left" in err.lower() and "previous turntable.mp4 is unchanged" in err, err
    assert video.read_bytes() == b"the good turntable"
    assert os.listdir(video.parent) == ["turntable.mp4"]  # no temporary left behind


def test_export_on_a_full_disk_names_the_folder_and_keeps_the_mesh(run_dir, small_disk, capsys):
    mesh = small_disk / "mesh"
    mesh.mkdir()
    (mesh / "model.glb").write_bytes(b"the good mesh")
    fill(small_disk)
    before = snapshot(small_disk)
    code = main(["export", str(run_dir), "--out", str(mesh), "--resolution", "16", "--texture-size", "16",
                 "--device", "cpu"])
    err = _one_line(capsys)
    assert code == 1 and str(mesh) in err and "No space left on device" in err, err
    assert snapshot(small_disk) == before and sorted(os.listdir(mesh)) == ["model.glb"]


def test_a_checkpoint_on_a_full_disk_stops_the_run_and_keeps_the_last_one(small_disk, capsys):
    out = small_disk / "run"
    base = ["generate", "a ball", "--guidance", "target:sphere", "--out", str(out), "--device", "cpu", "--no-export",
            *SMALL, "field.options={log2_hashmap_size: 10, n_levels: 2, finest_resolution: 32, hidden_dim: 8, "
                    "n_hidden_layers: 1}", "train.preview_every=0", "train.eval_every=0"]
    assert main([*base, "--iters", "2"]) == 0
    good = checkpoint_path(out).read_bytes()
    capsys.readouterr()
    fill(small_disk, leave=16 << 10)  # room for metrics rows and config.yaml, not for a checkpoint
    code = main([*base, "--iters", "3", "--resume"])
    err = _one_line(capsys)
    assert code == 1, err
    assert f"cannot write {checkpoint_path(out)}" in err and "No space left on device" in err, err
    assert "training stopped at step 3" in err and "checkpoint of step 2" in err and "--resume" in err, err
    assert checkpoint_path(out).read_bytes() == good and load_checkpoint(checkpoint_path(out))["step"] == 2
    assert sorted(os.listdir(checkpoint_path(out).parent)) == ["last.pt"]


def test_generate_fails_when_its_turntable_cannot_be_written(tmp_path, monkeypatch, caplog):
    """generate's automatic export and turntable go through export_run/render_run: their failure is its failure."""
    from fastdream.export import runs

    def full(*args, **kwargs):
        raise WriteError("cannot write video/turntable.mp4: No space left on device; nothing was written")

    monkeypatch.setattr(runs, "export_run", lambda *a, **k: None)
    monkeypatch.setattr(runs, "render_run", full)
    code = main(["generate", "a ball", "--guidance", "target:sphere", "--out", str(tmp_path / "run"), "--device",
                 "cpu", "--iters", "1", *SMALL])
    assert code == 1
    assert "turntable video failed: cannot write video/turntable.mp4" in caplog.text
