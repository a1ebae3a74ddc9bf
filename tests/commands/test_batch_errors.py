"""`fastdream batch` on bad input (issue #17): one-line errors, prompts that look like options, and generate children
that die with a parent killed by SIGKILL."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastdream import cli
from fastdream.commands.batch_jobs import GENERATE_CMD_ENV, MARKER, job_command, plan_jobs

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parents[1] / "helpers" / "fake_generate.py"


def _prompts(tmp_path: Path, content: bytes = b"a red cube\n") -> str:
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    return str(path)


def _out_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return ["batch", _prompts(tmp_path), "--out", str(tmp_path / "afile")]


def _out_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return ["batch", _prompts(tmp_path), "--out", str(tmp_path / "afile" / "sub")]


CASES = [  # (name, argv builder, what the one error line says)
    ("out is a file", _out_is_a_file, r"--out .*afile is a file, not a folder"),
    ("out under a file", _out_under_a_file, r"cannot create the batch folder --out .*afile/sub"),
    ("prompt file not UTF-8", lambda t: ["batch", _prompts(t, b"a caf\xe9 cube\n"), "--out", str(t / "o")],
     r"prompts.txt is not UTF-8 text \(byte 0xe9 at offset 5\); save it as UTF-8"),
    ("prompt file missing", lambda t: ["batch", str(t / "nope.txt"), "--out", str(t / "o")], r"does not exist"),
    ("prompt file is a folder", lambda t: ["batch", str(t), "--out", str(t / "o")], r"is not a file"),
    ("negative grace", lambda t: ["batch", _prompts(t), "--out", str(t / "o"), "--grace", "-5"],
     r"--grace must be a number of seconds >= 0, got -5"),
    ("nan grace", lambda t: ["batch", _prompts(t), "--out", str(t / "o"), "--grace", "nan"], r"--grace must be"),
    ("no out", lambda t: ["batch", _prompts(t)], r"needs PROMPTS and --out DIR"),
    ("seed after --", lambda t: ["batch", _prompts(t), "--out", str(t / "o"), "--", "--seed", "3"],
     r"--seed after `--` is set by fastdream batch"),
    ("report of nothing", lambda t: ["batch", "--report", str(t / "nothing")], r"--report .*nothing is not a folder"),
    ("report of an empty folder", lambda t: ["batch", "--report", str(t)], r"holds no batch"),
    ("gpus with ray", lambda t: ["batch", _prompts(t), "--out", str(t / "o"), "--ray", "auto", "--gpus", "0"],
     r"--gpus is for a batch on this machine"),
]


@pytest.mark.parametrize("name,argv,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(tmp_path, capsys, monkeypatch, name, argv, message):
    monkeypatch.setenv(GENERATE_CMD_ENV, f"{sys.executable} {FAKE}")  # nothing may run; if it did, it's harmless
    monkeypatch.setenv("FAKE_GEN_LOG", str(tmp_path / "calls.jsonl"))
    rc = cli.main(argv(tmp_path))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("fastdream: error: ") and re.search(message, lines[0]), err
    assert not (tmp_path / "calls.jsonl").exists()
    assert not list(tmp_path.rglob(MARKER))


@pytest.mark.parametrize("prompt", ["-h", "--help", "--resume", "--", "-x cube"])
def test_prompts_that_look_like_options_stay_prompts(tmp_path, monkeypatch, capsys, prompt):
    job = plan_jobs([prompt], [0], tmp_path / "o")[0]
    cmd = job_command(job, ["G"], ["--iters", "3", "train.lr=1"])
    args = cli.build_parser().parse_args(["generate", *cmd[1:]])  # what the real generate makes of it
    assert (args.prompt, args.out, args.seed, args.iters, args.overrides) == (prompt, str(job.run_dir), 0, 3,
                                                                             ["train.lr=1"])
    # and end to end through the CLI with the fake generate: the run is made, nothing prints help
    monkeypatch.setenv(GENERATE_CMD_ENV, f"{sys.executable} {FAKE}")
    monkeypatch.setenv("FAKE_GEN_LOG", str(tmp_path / "calls.jsonl"))
    assert cli.main(["batch", _prompts(tmp_path, prompt.encode() + b"\n"), "--out", str(tmp_path / "o")]) == 0
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [(c["event"], c["prompt"]) for c in calls] == [("start", prompt), ("finish", prompt)]
    assert "usage:" not in capsys.readouterr().out
    assert json.loads((job.run_dir / MARKER).read_text())["prompt"] == prompt


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_generate_dies_with_a_killed_batch_and_a_restart_has_one_writer(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_GEN_")}
    env.update({GENERATE_CMD_ENV: f"{sys.executable} {FAKE}", "FAKE_GEN_LOG": str(tmp_path / "calls.jsonl"),
                "FAKE_GEN_BLOCK": "a red cube|0", "PYTHONPATH": str(REPO)})
    argv = [sys.executable, "-m", "fastdream", "batch", _prompts(tmp_path), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    blocked = tmp_path / "out" / "a_red_cube-s0" / "blocked"
    child = None
    try:
        deadline = time.monotonic() + 60
        while not blocked.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the batch never started its run"
            time.sleep(0.05)
        child = json.loads((tmp_path / "calls.jsonl").read_text().splitlines()[0])["pid"]
        os.kill(proc.pid, signal.SIGKILL)  # the batch alone, as `kill -9 <batch pid>` does
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the generate child outlived its killed batch (a second writer on restart)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if child is not None and _alive(child):  # the test failed: leave no orphan behind
            os.kill(child, signal.SIGKILL)
    env.pop("FAKE_GEN_BLOCK")
    rerun = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [(c["event"], c["resume"]) for c in calls] == [("start", False), ("start", True), ("finish", True)]
