"""`fastdream batch --ray`: the same jobs, markers and summaries as the local batch, run as Ray tasks.

Each (prompt, seed) is one Ray task that asks for one GPU (or CPUs with `--device cpu`) and runs `fastdream
generate` as a child process into OUT/<run>/ on a filesystem every node mounts at the same path; every task first
checks that it sees a marker file the driver wrote there. A task whose worker or node dies is retried by Ray
(max_retries) and continues the run from checkpoints/last.pt; the generate child dies with its worker, so a run never
has two writers. Ctrl-C cancels the tasks: running generate processes get SIGINT, save a checkpoint and stop.
"""
from __future__ import annotations

import logging
import os
import shlex
import socket
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from fastdream.commands.batch_attempt import (finish_attempt, sigterm_as_interrupt, start_generate, stop_process,
                                              wait_interruptibly)
from fastdream.commands.batch_jobs import (GENERATE_CMD_ENV, Job, JobResult, check_out_dir, default_generate_cmd,
                                           finished_earlier, generate_device, job_command, pending, resumes)
from fastdream.commands.batch_progress import ProgressLine
from fastdream.commands.batch_summary import summary_rows, write_summary
from fastdream.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "fastdream[ray]"'
MAX_RETRIES = 3  # attempts after a worker or node died
SHARED_PREFIX = ".fastdream-shared-"


def import_ray():
    """The ray module, or a one-line UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


class RunningSet:
    """A Ray actor (no CPU) that tasks tell when their run starts and ends: the driver's 'running' count."""

    def __init__(self):
        self.running: dict[str, str] = {}

    def start(self, key: str, node: str) -> None:
        self.running[key] = node

    def end(self, key: str) -> None:
        self.running.pop(key, None)

    def snapshot(self) -> dict[str, str]:
        return dict(self.running)


def _tell(actor, method: str, *args) -> None:
    try:  # progress is for show: never fail a run over it
        getattr(actor, method).remote(*args)
    except Exception as exc:  # noqa: BLE001 (any Ray error: the actor may be gone)
        log.debug("progress actor: %s", exc)


def run_task(job: Job, generate_cmd: Sequence[str] | None, extra_args: Sequence[str], shared: str,
             grace_seconds: float, tracker) -> JobResult | dict:
    """The Ray task of one job: check the shared folder, run generate (resuming), write the marker."""
    node = socket.gethostname()
    marker = job.run_dir.parent / shared
    try:
        seen = marker.read_text(encoding="utf-8") == shared
    except OSError:
        seen = False
    if not seen:
        return {"unshared": node, "out": str(job.run_dir.parent)}
    earlier = finished_earlier(job)
    if earlier is not None:  # an earlier attempt finished and its worker died before reporting
        earlier.status, earlier.node = "done", node
        return earlier
    _tell(tracker, "start", job.run_dir.name, node)
    resume = resumes(job)
    cmd = job_command(job, generate_cmd or default_generate_cmd(), extra_args)
    start = time.monotonic()
    proc, logf = start_generate(job, cmd)  # Ray set CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS for this task
    stopped = False
    try:
        rc = wait_interruptibly(proc)
    except KeyboardInterrupt:  # ray.cancel: generate saves a checkpoint and stops
        stopped = True
        rc = stop_process(proc, grace_seconds)
    finally:
        logf.close()
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES") or None
    result = finish_attempt(job, cmd, rc, time.monotonic() - start, stopped=stopped, resume=resume, gpu=gpu,
                            node=node)
    _tell(tracker, "end", job.run_dir.name)
    return result


def connect(ray, address: str | None, num_cpus: int | None) -> None:
    """ray.init: a new local instance (address None), or the cluster at `address` (auto, ray://host:port, ...)."""
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
    except ConnectionError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}; start one with "
                        f"`ray start --head` or check the address") from None


def task_options(extra_args: Sequence[str], cpus_per_run: int, cluster: dict) -> dict:
    """Ray resources of one run: one GPU, or `cpus_per_run` CPUs when generate runs with --device cpu."""
    if generate_device(extra_args) == "cpu":
        return {"num_cpus": cpus_per_run, "num_gpus": 0, "max_retries": MAX_RETRIES}
    if not cluster.get("GPU"):
        raise UserError("the Ray cluster has no GPUs; run on CPUs with `-- --device cpu` after the batch arguments")
    return {"num_cpus": 1, "num_gpus": 1, "max_retries": MAX_RETRIES}


class RayBatch:
    """Submits one task per unfinished job and follows them to the end with one progress line."""

    def __init__(self, jobs: Sequence[Job], out: str | Path, *, address: str | None = None,
                 extra_args: Sequence[str] = (), grace_seconds: float = 60.0, cpus_per_run: int = 1,
                 local_cpus: int | None = None, on_event: Callable[[str], None] | None = None):
        self.out = Path(out).resolve()  # workers have other working folders: every path is absolute
        self.jobs = [Job(j.prompt, j.seed, self.out / j.run_dir.name) for j in jobs]
        self.address, self.extra_args, self.grace = address, list(extra_args), grace_seconds
        self.cpus_per_run, self.local_cpus = cpus_per_run, local_cpus
        self.on_event = on_event or log.info
        env_cmd = os.environ.get(GENERATE_CMD_ENV, "").strip()
        self.generate_cmd = shlex.split(env_cmd) if env_cmd else None  # None: each worker's own python
        self.results: dict[Job, JobResult] = {}
        self.refs: dict = {}  # ObjectRef -> Job, for the tasks not yet collected
        self.progress: ProgressLine | None = None
        self.running: dict[str, str] = {}  # run folder name -> node, as the tasks last told

    def write_summary(self, with_gallery: bool = True) -> None:
        write_summary(self.out, summary_rows(self.jobs, self.results), with_gallery=with_gallery)

    def _say(self, message: str) -> None:
        """An event line: above the progress line once there is one."""
        if self.progress is not None:
            self.progress.write(f"fastdream batch: {message}")
        else:
            self.on_event(message)

    def run(self) -> list[JobResult]:
        """Run every unfinished job on the cluster; one result per job. Re-raises KeyboardInterrupt after a clean
        cancel (every run resumable)."""
        ray = import_ray()
        check_out_dir(self.out)
        todo = []
        for job in self.jobs:
            earlier = finished_earlier(job)
            if earlier is None:
                todo.append(job)
            else:
                self.results[job] = earlier
        self.write_summary()
        shared = f"{SHARED_PREFIX}{uuid.uuid4().hex}"
        (self.out / shared).write_text(shared, encoding="utf-8")
        try:
            if todo:
                with sigterm_as_interrupt():
                    self._run_on_cluster(ray, todo, shared)
        finally:
            (self.out / shared).unlink(missing_ok=True)
            if ray.is_initialized():
                ray.shutdown()
            self.write_summary()
        return [self.results.get(j) or pending(j) for j in self.jobs]

    def _run_on_cluster(self, ray, todo: list[Job], shared: str) -> None:
        connect(ray, self.address, self.local_cpus)
        options = task_options(self.extra_args, self.cpus_per_run, ray.cluster_resources())
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        self.on_event(f"{len(self.jobs)} runs: {len(self.jobs) - len(todo)} finished earlier, {len(todo)} to do, "
                      f"on Ray ({nodes} node(s), {ray.cluster_resources().get('CPU', 0):g} CPUs, "
                      f"{ray.cluster_resources().get('GPU', 0):g} GPUs)")
        tracker = ray.remote(num_cpus=0, max_restarts=1)(RunningSet).remote()
        task = ray.remote(run_task).options(**options)
        self.refs = {task.remote(j, self.generate_cmd, self.extra_args, shared, self.grace, tracker): j
                     for j in todo}
        self.progress = ProgressLine(len(self.jobs), finished_earlier=len(self.jobs) - len(todo))
        try:
            self._follow(ray, tracker)
        except KeyboardInterrupt:
            self._say("interrupted: cancelling the runs; running generate processes save a checkpoint")
            self._cancel(ray, tracker)
            raise
        finally:
            self.progress.close()

    def _follow(self, ray, tracker) -> None:
        next_poll = 0.0
        while self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=0.5)
            for ref in ready:
                self._collect(ray, ref)
            if time.monotonic() >= next_poll:
                try:
                    self.running = ray.get(tracker.snapshot.remote(), timeout=10)
                except Exception as exc:  # noqa: BLE001 (the count is for show)
                    log.debug("progress actor: %s", exc)
                next_poll = time.monotonic() + 1.0
            names = {j.run_dir.name for j in self.refs.values()}
            ended = [r for j, r in self.results.items() if r.status != "skipped"]
            self.progress.update(done=sum(r.status == "done" for r in ended), failed=sum(r.status != "done"
                                 for r in ended), running=len(names & set(self.running)))

    def _collect(self, ray, ref) -> None:
        job = self.refs.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            result = JobResult(job.prompt, job.seed, str(job.run_dir),
                               "interrupted" if job.run_dir.name in self.running else "pending")
        except ray.exceptions.RayError as exc:  # the task raised, or its workers died more than MAX_RETRIES times
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self._say(f"failed {job.run_dir.name}: {type(exc).__name__}: {first[:200]}")
            result = JobResult(job.prompt, job.seed, str(job.run_dir), "failed")
        if isinstance(result, dict):
            self._unshared(ray, result)
        self.results[job] = result
        node = f" on {result.node}" if result.node else ""
        if result.status == "done":
            self._say(f"done  {job.run_dir.name}{node} in {result.seconds or 0:.1f} s")
        elif result.status in ("failed", "interrupted") and result.returncode is not None:
            self._say(f"{result.status} {job.run_dir.name}{node} (exit {result.returncode}); see "
                      f"{job.run_dir / 'batch.log'}")
        self.write_summary(with_gallery=False)

    def _unshared(self, ray, info: dict) -> None:
        for ref in list(self.refs):
            ray.cancel(ref, force=True)
        self.refs.clear()
        raise UserError(f"the batch folder {info['out']} is not visible from Ray node {info['unshared']}: --out must "
                        f"be on a filesystem that every node mounts at the same path (NFS, a cluster filesystem)")

    def _cancel(self, ray, tracker) -> None:
        """Cancel every task: pending ones never start, running ones stop their generate process (SIGINT, then
        SIGTERM after the grace period); after that, workers still busy are killed (their child dies with them)."""
        for ref in self.refs:
            ray.cancel(ref)
        deadline = time.monotonic() + self.grace + 20.0
        try:
            while self.refs and time.monotonic() < deadline:
                ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=0.5)
                for ref in ready:
                    self._collect(ray, ref)
        except KeyboardInterrupt:
            self._say("second interrupt: killing the remaining tasks")
        for ref, job in list(self.refs.items()):
            ray.cancel(ref, force=True)
            self.results[job] = JobResult(job.prompt, job.seed, str(job.run_dir), "interrupted")
        self.refs.clear()

