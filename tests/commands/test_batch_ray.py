"""`fastdream batch --ray` on a local Ray instance with 2 CPUs: runs spread over 2 workers, a worker killed mid-run
(its run resumes from its checkpoint on another worker, real `fastdream generate` with the oracle guidance), Ctrl-C
then a restart that skips finished runs; and the driver's checks (no Ray, a folder the workers cannot see)."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import torch

from fastdream import cli
from fastdream.commands.batch_jobs import CHECKPOINT, GENERATE_CMD_ENV, MARKER, plan_jobs, read_marker
from fastdream.commands.batch import _check_args
from fastdream.commands.batch_ray import RayBatch, run_task, task_options
from fastdream.errors import UserError

REPO = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
FAKE = f"{sys.executable} {HELPERS / 'fake_generate.py'}"
ORACLE = ["--guidance", "target:sphere", "--preset", "fast", "--device", "cpu", "--no-export", "train.iters=6",
          "train.checkpoint_every=2", "train.eval_every=0", "train.preview_every=0"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance (2 CPUs) that the batch commands under test join by its address."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *([old] if old else [])])  # the workers' fastdream
    try:
        info = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    yield info.address_info["gcs_address"]
    ray.shutdown()


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_GEN_", "RAY_ADDRESS"))}
    env.update({"PYTHONPATH": str(REPO), GENERATE_CMD_ENV: FAKE}, **extra)
    return env


def _argv(tmp_path: Path, prompts: list[str], ray_arg: list[str], *generate: str) -> list[str]:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(prompts) + "\n")
    return [sys.executable, "-m", "fastdream", "batch", str(path), "--out", str(tmp_path / "out"), "--seeds", "0,1",
            "--grace", "20", *ray_arg, "--", *generate]


def _calls(tmp_path: Path) -> list[dict]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"batch exited ({proc.returncode}) before {path} appeared: {proc.stdout.read()}")
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.1)


def test_four_runs_on_two_local_workers(tmp_path):
    """`--ray` with no address starts Ray here; 4 runs, 2 at a time (a barrier proves it), one progress line."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    argv = _argv(tmp_path, ["a red cube", "a blue sphere"], ["--ray", "--ray-cpus", "2"], "--device", "cpu",
                 f"fake.log={tmp_path / 'calls.jsonl'}", f"fake.barrier={barrier}:2")
    run = subprocess.run(argv, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "out"
    calls = _calls(tmp_path)
    starts = [c for c in calls if c["event"] == "start"]
    assert len(starts) == 4 and all(not c["resume"] for c in starts)
    assert len({c["ppid"] for c in starts[:2]}) == 2  # the first two ran at once, in two workers
    assert all(c["argv"][:2] == ["--device", "cpu"] for c in starts)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["done"] * 4 and all(r["node"] for r in summary["runs"])
    for r in summary["runs"]:
        run_dir = Path(r["run_dir"])
        assert read_marker(run_dir)["prompt"] == r["prompt"] and (run_dir / "batch.log").is_file()
    assert (out / "index.html").is_file() and not list(out.glob(".fastdream-shared-*"))
    assert "4/4 done, 0 running, 0 failed" in run.stdout + run.stderr
    assert "4/4 runs finished" in run.stdout


@pytest.mark.slow
def test_killed_worker_run_resumes_from_its_checkpoint_elsewhere(tmp_path, cluster):
    """Real oracle runs; the worker of one is SIGKILLed after its first checkpoint: Ray retries the task, which
    continues from checkpoints/last.pt (not from step 0), and the run finishes once."""
    cmd = shlex.join(["env", "PAUSE_PROMPT=a sphere", sys.executable, str(HELPERS / "pausing_generate.py")])
    argv = _argv(tmp_path, ["a sphere"], ["--ray", cluster], *ORACLE)
    argv[argv.index("--seeds") + 1] = "0"
    proc = subprocess.Popen(argv, env=_env(**{GENERATE_CMD_ENV: cmd}), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    run_dir = tmp_path / "out" / "a_sphere-s0"
    try:
        _wait_for(run_dir / "blocked", proc)
        paused = json.loads((run_dir / "blocked").read_text())
        os.kill(paused["worker"], signal.SIGKILL)  # the Ray worker process running this task dies
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    with pytest.raises(ProcessLookupError):  # its generate child died with it: no second writer
        os.kill(paused["pid"], 0)
    assert paused["step"] == 2
    steps = [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    # steps 1 (the first-step row) and 2 by the killed attempt, then 4 and 6 resumed from it: no step repeated
    assert steps == [1, 2, 4, 6]
    assert torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)["step"] == 6
    attempts = [json.loads(line) for line in (run_dir / "batch_attempts.jsonl").read_text().splitlines()]
    assert len(attempts) == 1 and attempts[0]["resume"] and attempts[0]["returncode"] == 0
    assert attempts[0]["pid"] != paused["worker"]  # another worker finished it
    headers = [ln for ln in (run_dir / "batch.log").read_text().splitlines() if ln.startswith("== ")]
    assert len(headers) == 2 and "--resume" not in headers[0] and "--resume" in headers[1]
    assert [r["status"] for r in json.loads((tmp_path / "out" / "summary.json").read_text())["runs"]] == ["done"]
    assert json.loads((run_dir / MARKER).read_text())["prompt"] == "a sphere"


@pytest.mark.slow
def test_ctrl_c_then_restart_skips_finished_runs(tmp_path, cluster):
    log = f"fake.log={tmp_path / 'calls.jsonl'}"
    argv = _argv(tmp_path, ["a red cube", "a blue sphere"], ["--ray", cluster], "--device", "cpu", log)
    proc = subprocess.Popen([*argv, "fake.block=a blue sphere|0", "fake.sleep=0.2"], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = tmp_path / "out"
    try:
        _wait_for(out / "a_blue_sphere-s0" / "blocked", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    first = _calls(tmp_path)
    assert ("interrupted", "a blue sphere", 0) in [(c["event"], c["prompt"], c["seed"]) for c in first], output
    summary = {Path(r["run_dir"]).name: r["status"] for r in json.loads((out / "summary.json").read_text())["runs"]}
    assert summary["a_blue_sphere-s0"] == "interrupted" and read_marker(out / "a_blue_sphere-s0") is None
    finished = {name for name, status in summary.items() if status == "done"}
    assert all(read_marker(out / name) for name in finished)
    assert set(summary.values()) <= {"done", "interrupted", "pending"}

    again = subprocess.run([*argv, "fake.sleep=0.2"], env=_env(), cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    second = _calls(tmp_path)[len(first):]
    started = {(c["prompt"], c["seed"]): c["resume"] for c in second if c["event"] == "start"}
    names = {("a red cube", s): f"a_red_cube-s{s}" for s in (0, 1)} | \
        {("a blue sphere", s): f"a_blue_sphere-s{s}" for s in (0, 1)}
    assert {names[k] for k in started}.isdisjoint(finished)  # finished runs are not run again
    assert started[("a blue sphere", 0)] is True  # the interrupted run continues its checkpoint
    rows = json.loads((out / "summary.json").read_text())["runs"]
    assert {Path(r["run_dir"]).name: r["status"] for r in rows} == {
        n: ("skipped" if n in finished else "done") for n in names.values()}


def test_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    (tmp_path / "p.txt").write_text("a cube\n")
    assert cli.main(["batch", str(tmp_path / "p.txt"), "--out", str(tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['fastdream: error: --ray needs Ray, which is not installed here: pip install "fastdream[ray]"']


def test_a_task_that_cannot_see_the_batch_folder_fails_the_batch(tmp_path):
    job = plan_jobs(["a cube"], [0], tmp_path)[0]
    seen = run_task(job, ["false"], [], ".fastdream-shared-x", 1.0, None)  # the driver's marker is not there
    assert seen["unshared"] and seen["out"] == str(tmp_path) and not job.run_dir.exists()
    batch = RayBatch([job], tmp_path)
    with pytest.raises(UserError, match=r"is not visible from Ray node .*: --out must be on a filesystem that every "
                                        r"node mounts at the same path"):
        batch._unshared(ray, seen)


def test_each_run_asks_for_one_gpu_or_cpus_with_device_cpu():
    assert task_options(["--device", "cpu"], 2, {}) == {"num_cpus": 2, "num_gpus": 0, "max_retries": 3}
    assert task_options(["train.device=cpu"], 1, {})["num_gpus"] == 0
    assert task_options(["--preset", "fast"], 1, {"GPU": 8.0}) == {"num_cpus": 1, "num_gpus": 1, "max_retries": 3}
    with pytest.raises(UserError, match="no GPUs; run on CPUs with `-- --device cpu`"):
        task_options([], 1, {"CPU": 2.0})


@pytest.mark.parametrize("argv,address,prompts", [
    (["--ray", "p.txt", "--out", "D"], "local", "p.txt"),  # `--ray` then the prompt file: no address given
    (["p.txt", "--out", "D", "--ray"], "local", "p.txt"),
    (["p.txt", "--out", "D", "--ray", "auto"], "auto", "p.txt"),
    (["--ray", "ray://head:10001", "p.txt", "--out", "D"], "ray://head:10001", "p.txt"),
    (["p.txt", "--out", "D", "--ray", "10.0.0.5:6379"], "10.0.0.5:6379", "p.txt"),
])
def test_ray_address_or_prompt_file(argv, address, prompts):
    args = cli.build_parser().parse_args(["batch", *argv])
    _check_args(args)
    assert (args.ray, args.prompts_file) == (address, prompts)
