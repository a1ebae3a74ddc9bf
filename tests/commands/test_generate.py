"""`fastdream generate` end to end on CPU with the oracle: run folder, SIGINT checkpoint, resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastdream.checkpoint import checkpoint_path, load_checkpoint, load_run
from fastdream.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["render.width=16", "render.height=16", "render.render_step_size=0.05", "render.grid_resolution=16",
         "train.eval_resolution=16", "train.eval_views=2", "train.log_every=1",
         "field.options={log2_hashmap_size: 12, n_levels: 4, finest_resolution: 64, hidden_dim: 16, "
         "n_hidden_layers: 1}"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_generate_oracle_fast_preset_leaves_run_folder_and_reconstructs(tmp_path):
    out = tmp_path / "sphere"
    rc = main(["generate", "an orange sphere", "--guidance", "target:sphere", "--preset", "fast", "--out", str(out),
               "--device", "cpu", "--no-export"])
    assert rc == 0
    assert (out / "config.yaml").is_file() and checkpoint_path(out).is_file()
    assert list((out / "previews").glob("step_*.png"))
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    psnrs = [r["psnr_heldout"] for r in records if "psnr_heldout" in r]
    assert psnrs[-1] >= 25.0, psnrs  # the oracle's answer is known: the field must match it on held-out views
    run = load_run(out)
    assert run.step == run.config.train.iters and run.config.guidance.spec == "target:sphere"


def test_generate_then_resume_extends_the_run(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["generate", "a snowman", "--guidance", "target:snowman", "--out", str(out), "--device", "cpu",
            "--no-export", *SMALL]
    assert main([*base, "--iters", "2"]) == 0
    assert load_checkpoint(checkpoint_path(out))["step"] == 2
    assert main([*base, "--iters", "3"]) == 2  # the folder holds a run: refuse to overwrite it
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--iters", "3", "--resume"]) == 0
    assert load_checkpoint(checkpoint_path(out))["step"] == 3
    assert main(["generate", "a cat", "--out", str(out), "--resume"]) == 2
    assert "not 'a cat'" in capsys.readouterr().err


def test_bad_override_and_missing_weights_are_clean_errors(tmp_path, capsys):
    assert main(["generate", "x", "--out", str(tmp_path / "a"), "render.width=2"]) == 2
    assert "render.width" in capsys.readouterr().err
    assert main(["generate", "x", "--out", str(tmp_path / "b"), "--device", "cpu",
                 "--model", str(tmp_path / "no" / "such" / "model")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


def test_sigint_leaves_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastdream", "generate", "an orange sphere", "--guidance", "target:sphere",
           "--out", str(out), "--device", "cpu", "--iters", "100000", "--no-export", *SMALL,
           "train.checkpoint_every=0", "train.preview_every=0", "train.eval_every=0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no metrics within 120 s"
            time.sleep(0.05)  # polling interval, not a timing assertion
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "--resume" in stdout and "Traceback" not in stderr
    state = load_checkpoint(checkpoint_path(out))
    assert state["step"] >= 2
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert last == {"step": state["step"], "event": "interrupted", "signal": "SIGINT"}
