"""Issue #17, run folders: one run per folder (a lock naming its holder), no clobbering of a user's folder, resumes
that neither repeat metrics nor accept a different run, files that follow the umask, mistyped guidance that fails
at once."""
from __future__ import annotations

import json
import os
import time

import pytest

from fastdream.checkpoint import checkpoint_path, load_checkpoint
from fastdream.cli import main
from fastdream.errors import UserError

from tests.commands.test_generate import SMALL
from tests.helpers.reliability import hold_lock, make_tiny_run, snapshot

GEN = ["--guidance", "target:sphere", "--device", "cpu", "--no-export", *SMALL]


def _gen(out, *extra) -> int:
    return main(["generate", "a ball", *GEN, "--out", str(out), *extra])


def _steps(out) -> list[int]:
    return [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_runs_cannot_share_a_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = hold_lock(out)  # another fastdream generate, as far as the lock can tell
    try:
        assert _gen(out, "--iters", "1") == 2
        assert f"in use by another fastdream process (PID {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "metrics.jsonl").exists()
    assert _gen(out, "--iters", "1") == 0  # the lock died with its holder


def test_a_users_folder_is_refused_unless_overwrite_and_keeps_its_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    assert _gen(folder, "--iters", "1") == 2
    assert "--overwrite" in capsys.readouterr().err and snapshot(folder) == before
    assert _gen(folder, "--iters", "1", "--overwrite") == 0
    assert (folder / "notes.txt").read_text() == "mine" and checkpoint_path(folder).is_file()


def test_overwrite_replaces_an_earlier_run_and_its_outputs(tmp_path):
    out = tmp_path / "run"
    assert _gen(out, "--iters", "2", "train.preview_every=1") == 0
    assert len(list((out / "previews").glob("step_*.png"))) == 2
    assert _gen(out, "--iters", "1") == 2  # a run is there: --resume or --overwrite
    assert _gen(out, "--iters", "1", "--overwrite", "train.preview_every=0") == 0
    assert load_checkpoint(checkpoint_path(out))["step"] == 1 and _steps(out) == [1, 1]  # loss row, final PSNR
    assert not list((out / "previews").glob("step_*.png"))


def test_resume_drops_metrics_past_the_checkpoint_and_a_killed_runs_temporaries(tmp_path):
    out = make_tiny_run(tmp_path / "run", iters=2)
    with open(out / "metrics.jsonl", "a") as f:  # what a run killed after its checkpoint leaves
        f.write(json.dumps({"step": 3, "loss": 1.0}) + "\n" + '{"step": 4, "lo')
    stale = [out / "checkpoints" / ".last.pt.x1y2.tmp", out / ".config.yaml.abc.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    assert main(["generate", "a sphere", "--out", str(out), "--resume", "--iters", "3", "--no-export"]) == 0
    assert [s for s in _steps(out) if s > 2] == [3] and _steps(out) == sorted(_steps(out))
    assert not any(p.exists() for p in stale)


def test_resume_refuses_another_guidance_and_fewer_iters_than_done(tmp_path, capsys):
    out = make_tiny_run(tmp_path / "run", iters=2)
    before = snapshot(out)
    assert main(["generate", "a sphere", "--out", str(out), "--resume", "--guidance", "target:snowman"]) == 2
    assert "guidance.spec 'target:sphere', not 'target:snowman'" in capsys.readouterr().err
    assert main(["generate", "a sphere", "--out", str(out), "--resume", "--iters", "1"]) == 2
    assert "checkpoint is at step 2, past train.iters=1" in capsys.readouterr().err
    assert snapshot(out) == before  # config.yaml not rewritten, nothing reported "done"


def test_outputs_follow_the_umask(tmp_path):
    out = make_tiny_run(tmp_path / "run")
    old = os.umask(0o022)
    try:
        assert main(["export", str(out), "--resolution", "16", "--texture-size", "16", "--device", "cpu",
                     "--threshold", "1e-3"]) == 0
        assert main(["render", str(out), "--frames", "2", "--size", "16", "--device", "cpu"]) == 0
    finally:
        os.umask(old)
    files = [*(out / "mesh").iterdir(), out / "video" / "turntable.mp4", checkpoint_path(out), out / "config.yaml",
             *(out / "previews").iterdir()]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o644" for p in files}


def test_a_mistyped_guidance_fails_at_once(tmp_path, capsys):
    t0 = time.monotonic()
    assert main(["generate", "a ball", "--guidance", "bogus", "--out", str(tmp_path / "r")]) == 2
    assert "guidance.spec must be sd, target:NAME" in capsys.readouterr().err
    assert time.monotonic() - t0 < 30 and not (tmp_path / "r").exists()


def test_an_unreachable_hub_fails_in_seconds(tmp_path, monkeypatch):
    from fastdream.guidance import hub, stable_diffusion

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_unreachable", lambda: "the Hugging Face hub is unreachable: test")
    t0 = time.monotonic()
    with pytest.raises(UserError, match="hub is unreachable: test"):
        stable_diffusion.StableDiffusionGuidance.from_pretrained("someone/some-model")
    assert time.monotonic() - t0 < 60
