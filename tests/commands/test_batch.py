"""`fastdream batch`: planning, markers, resume after a kill, clean Ctrl-C, one worker per GPU (with a fake generate)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastdream import cli
from fastdream.commands.batch_runner import (CHECKPOINT, GENERATE_CMD_ENV, MARKER, Job, job_command, parse_int_list, plan_jobs,
                             read_marker, run_batch, slugify)
from fastdream.errors import UserError

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parents[1] / "helpers" / "fake_generate.py"
PROMPTS = ["a red cube", "a blue sphere"]


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_GEN_")}
    env.update({GENERATE_CMD_ENV: f"{sys.executable} {FAKE}", "FAKE_GEN_LOG": str(tmp_path / "calls.jsonl"),
                "PYTHONPATH": str(REPO)}, **extra)
    return env


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"batch exited ({proc.returncode}) before {path} appeared: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _batch_argv(tmp_path: Path) -> list[str]:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\n" + "\n".join(PROMPTS) + "\n\n")
    return [sys.executable, "-m", "fastdream", "batch", str(prompts), "--out", str(tmp_path / "out"),
            "--seeds", "0,1", "--grace", "20", "--", "--iters", "3", "--preset", "fast"]


def test_slugs_plan_and_command():
    assert slugify("a red cube") == "a_red_cube"
    lossy = slugify("A 20-sided die, made of glass!")
    assert lossy.startswith("a_20_sided_die_made_of_glass-") and len(lossy) == len("a_20_sided_die_made_of_glass") + 9
    assert slugify("a red  cube!") != slugify("a red cube")  # different prompts never share a folder
    long = "an extremely detailed " * 10
    assert len(slugify(long)) <= 64 + 9 and slugify(long) != slugify(long + " x")
    jobs = plan_jobs(["a red cube", "a  red cube", "b"], [0, 1, 1], "/o")
    assert [(j.prompt, j.seed, j.run_dir.name) for j in jobs] == [
        ("a red cube", 0, "a_red_cube-s0"), ("a red cube", 1, "a_red_cube-s1"), ("b", 0, "b-s0"), ("b", 1, "b-s1")]
    assert parse_int_list("0, 2", "--seeds") == [0, 2]
    for bad in ("", "a", "-1", "1.5"):
        with pytest.raises(UserError, match="--seeds"):
            parse_int_list(bad, "--seeds")
    with pytest.raises(UserError):
        plan_jobs([], [0], "/o")


def test_job_command_resumes_only_with_a_checkpoint(tmp_path):
    job = Job("a cube", 3, tmp_path / "a_cube-s3")
    cmd = job_command(job, ["gen"], ["--iters", "5", "train.lr=1", "--negative", "x=y", "--comp"])
    # the prompt comes after `--` (a prompt like '-h' stays a prompt), the overrides after it
    assert cmd == ["gen", "--iters", "5", "--negative", "x=y", "--comp", "--out", str(job.run_dir), "--seed", "3",
                   "--", "a cube", "train.lr=1"]
    (job.run_dir / CHECKPOINT).parent.mkdir(parents=True)
    (job.run_dir / CHECKPOINT).write_text("1")
    assert job_command(job, ["gen"], ["--iters", "5"])[-3:] == ["--resume", "--", "a cube"]
    with pytest.raises(UserError, match="--seed after `--` is set by fastdream batch"):
        job_command(job, ["gen"], ["--seed", "4"])


def test_cli_splits_generate_args_after_double_dash():
    args = cli.build_parser().parse_args(["batch", "p.txt", "--out", "D", "--seeds", "0,1", "--", "--iters", "5",
                                          "--guidance", "target:sphere"])
    assert (args.prompts_file, args.out, args.seeds) == ("p.txt", "D", "0,1")
    assert args.generate_args == ["--iters", "5", "--guidance", "target:sphere"]
    assert cli.build_parser().parse_args(["batch", "p.txt", "--out", "D"]).generate_args == []


def test_kill_midway_then_rerun_finishes_without_redoing(tmp_path):
    out = tmp_path / "out"
    argv = _batch_argv(tmp_path)
    env = _env(tmp_path, FAKE_GEN_BLOCK="a blue sphere|0")
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        _wait_for(out / "a_blue_sphere-s0" / "blocked", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its generate process die without cleanup
        proc.communicate()
    assert read_marker(out / "a_red_cube-s0") and read_marker(out / "a_red_cube-s1")
    assert read_marker(out / "a_blue_sphere-s0") is None and (out / "a_blue_sphere-s0" / CHECKPOINT).exists()
    assert not (out / "a_blue_sphere-s1").exists()
    done_before = {d: ((out / d / MARKER).stat().st_mtime_ns, (out / d / MARKER).read_text())
                   for d in ("a_red_cube-s0", "a_red_cube-s1")}
    first = _calls(tmp_path / "calls.jsonl")
    assert [(c["event"], c["prompt"], c["seed"]) for c in first] == [
        ("start", "a red cube", 0), ("finish", "a red cube", 0), ("start", "a red cube", 1),
        ("finish", "a red cube", 1), ("start", "a blue sphere", 0)]
    assert all(c["argv"][:4] == ["--iters", "3", "--preset", "fast"] for c in first)

    rerun = subprocess.run(argv, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    second = _calls(tmp_path / "calls.jsonl")[len(first):]
    starts = [(c["prompt"], c["seed"], c["resume"]) for c in second if c["event"] == "start"]
    assert starts == [("a blue sphere", 0, True), ("a blue sphere", 1, False)]  # red cube runs are not redone
    assert [c["step"] for c in second if c["event"] == "finish"] == [3, 3]
    for d, before in done_before.items():
        assert ((out / d / MARKER).stat().st_mtime_ns, (out / d / MARKER).read_text()) == before
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["prompt"], r["seed"], r["status"]) for r in summary["runs"]] == [
        ("a red cube", 0, "skipped"), ("a red cube", 1, "skipped"),
        ("a blue sphere", 0, "done"), ("a blue sphere", 1, "done")]
    assert all(r["seconds"] is not None and r["seconds"] > 0 for r in summary["runs"])
    # the resumed run's time covers both attempts
    attempts = (out / "a_blue_sphere-s0" / "batch_attempts.jsonl").read_text().splitlines()
    assert len(attempts) == 1  # the killed attempt never got to record itself
    md = (out / "summary.md").read_text()
    assert "| a blue sphere | 1 | done |" in md and "| a red cube | 0 | skipped |" in md

    # a third run does nothing
    again = subprocess.run(argv, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and len(_calls(tmp_path / "calls.jsonl")) == len(first) + len(second)


def test_ctrl_c_stops_workers_cleanly(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_batch_argv(tmp_path), env=_env(tmp_path, FAKE_GEN_BLOCK="a red cube|1"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for(out / "a_red_cube-s1" / "blocked", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    calls = _calls(tmp_path / "calls.jsonl")
    assert calls[-1]["event"] == "interrupted" and calls[-1]["seed"] == 1
    with pytest.raises(ProcessLookupError):  # the generate process is gone, not orphaned
        os.kill(calls[-1]["pid"], 0)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["done", "interrupted", "pending", "pending"], output
    assert summary["runs"][1]["returncode"] == 130 and read_marker(out / "a_red_cube-s1") is None


def test_one_worker_per_gpu_and_failures(tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = _env(tmp_path, FAKE_GEN_BARRIER=f"{barrier}:2", FAKE_GEN_FAIL="a blue sphere|1")
    old = dict(os.environ)
    os.environ.update(env)
    try:
        results = run_batch(PROMPTS, tmp_path / "out", [0, 1], gpus=["3", "5"],
                            generate_cmd=[sys.executable, str(FAKE)], on_event=lambda msg: None)
    finally:
        os.environ.clear()
        os.environ.update(old)
    calls = _calls(tmp_path / "calls.jsonl")
    starts = [c for c in calls if c["event"] == "start"]
    # the first two runs waited for each other at the barrier, so they ran at once, one per GPU
    assert sorted(c["cuda"] for c in starts[:2]) == ["3", "5"]
    assert {c["cuda"] for c in starts} <= {"3", "5"}
    assert [(r.seed, r.status) for r in results] == [(0, "done"), (1, "done"), (0, "done"), (1, "failed")]
    assert results[3].returncode == 7 and read_marker(tmp_path / "out" / "a_blue_sphere-s1") is None
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["counts"] == {"done": 3, "failed": 1}

    # a rerun retries only the failed run (its checkpoint-free folder starts fresh)
    os.environ.update(_env(tmp_path))
    try:
        results = run_batch(PROMPTS, tmp_path / "out", [0, 1], generate_cmd=[sys.executable, str(FAKE)],
                            on_event=lambda msg: None)
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert [r.status for r in results] == ["skipped", "skipped", "skipped", "done"]
    assert len([c for c in _calls(tmp_path / "calls.jsonl") if c["event"] == "start"]) == len(starts) + 1


def test_marker_of_another_prompt_is_refused(tmp_path):
    job = plan_jobs(["a cube"], [0], tmp_path)[0]
    job.run_dir.mkdir(parents=True)
    (job.run_dir / MARKER).write_text(json.dumps({"prompt": "something else", "seed": 0}))
    with pytest.raises(UserError, match="different prompt"):
        run_batch(["a cube"], tmp_path, [0], generate_cmd=[sys.executable, str(FAKE)], on_event=lambda m: None)


@pytest.mark.slow
def test_real_generate_two_oracle_prompts_then_eval(tmp_path):
    """`fastdream batch` over the real `fastdream generate` (oracle guidance, CPU), rerun skips, then eval them."""
    from tests.helpers.eval_fakes import make_tiny_clip

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a white sphere\na sphere, seen from afar\n")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != GENERATE_CMD_ENV}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "fastdream", "batch", str(prompts), "--out", str(out), "--seeds", "0", "--",
            "--guidance", "target:sphere", "--preset", "fast", "--device", "cpu", "--iters", "20", "--no-export"]
    first = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = sorted(p.parent for p in out.glob(f"*/{MARKER}"))
    assert len(runs) == 2 and all((r / CHECKPOINT).is_file() for r in runs)
    stamps = [(r / MARKER).stat().st_mtime_ns for r in runs]
    again = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and [(r / MARKER).stat().st_mtime_ns for r in runs] == stamps
    assert [r["status"] for r in json.loads((out / "summary.json").read_text())["runs"]] == ["skipped"] * 2

    clip = make_tiny_clip(tmp_path / "clip")
    report_path = tmp_path / "eval.json"
    rc = cli.main(["eval", *map(str, runs), "--clip", str(clip), "--views", "2", "--size", "32", "--device", "cpu",
                   "--json", str(report_path)])
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert sorted(r["prompt"] for r in report["runs"]) == sorted(["a white sphere", "a sphere, seen from afar"])
    assert report["candidates"]["count"] == 2 and all(r["seed"] == 0 for r in report["runs"])
    assert all(0.0 <= res["r_at_1_mean"] <= 1.0 for res in report["results"])


def test_prompt_files(tmp_path):
    from fastdream.commands.prompt_list import read_prompt_list

    txt = tmp_path / "p.txt"
    txt.write_text("# header\n a red  cube \n\na blue sphere\na red cube\n")
    assert read_prompt_list(txt) == ["a red cube", "a blue sphere"]
    js = tmp_path / "p.json"
    js.write_text(json.dumps(["x", "y", "x"]))
    assert read_prompt_list(js) == ["x", "y"]
    js.write_text(json.dumps({"a": ["x"], "b": ["y", "z"]}))
    assert read_prompt_list(js) == ["x", "y", "z"]
    gallery = Path("/work/shared/data/dreamfusion_gallery_prompts.json")
    if gallery.exists():  # the real gallery file: 415 distinct prompts
        assert len(read_prompt_list(gallery)) == 415
    for content, match in [("{", "not valid JSON"), ('{"a": "x"}', "list of prompts"), ("[1]", "must be a string"),
                           ("[]", "holds no prompts"), ("3", "must hold a JSON list")]:
        js.write_text(content)
        with pytest.raises(UserError, match=match):
            read_prompt_list(js)
    with pytest.raises(UserError, match="does not exist"):
        read_prompt_list(tmp_path / "nope.txt")
