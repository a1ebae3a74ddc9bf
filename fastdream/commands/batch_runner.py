"""Resumable batch generation on one machine: one `fastdream generate` subprocess per (prompt, seed), one worker per
GPU. The plan and the on-disk state are in batch_jobs; `fastdream batch --ray` runs the same jobs on a Ray cluster.

Layout: OUT/<slug>-s<seed>/ per run; finished runs (DONE.json) are skipped, a run with checkpoints/last.pt is
continued with --resume. OUT/summary.json, OUT/summary.md and OUT/index.html list every run; the summaries are
rewritten as runs end.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from fastdream.commands.batch_attempt import finish_attempt, sigterm_as_interrupt, start_generate
from fastdream.commands.batch_jobs import (CHECKPOINT, GENERATE_CMD_ENV, MARKER, RUN_LOG, Job, JobResult,
                                           check_out_dir, default_generate_cmd, finished_earlier, job_command,
                                           parse_int_list, pending, plan_jobs, read_marker, resumes, slugify)
from fastdream.commands.batch_summary import summary_rows, write_summary

# the plan's names stay importable from here, where they lived before batch_jobs
__all__ = ["BatchRunner", "run_batch", "CHECKPOINT", "GENERATE_CMD_ENV", "MARKER", "Job", "JobResult", "job_command",
           "parse_int_list", "plan_jobs", "read_marker", "slugify"]

log = logging.getLogger(__name__)


class BatchRunner:
    """Runs jobs through a queue with one worker per GPU (or one worker with the environment unchanged)."""

    def __init__(self, jobs: Sequence[Job], out: str | Path, *, gpus: Sequence[str] | None = None,
                 generate_cmd: Sequence[str] | None = None, extra_args: Sequence[str] = (),
                 grace_seconds: float = 60.0, on_event: Callable[[str], None] | None = None):
        self.jobs = list(jobs)
        self.out = Path(out)
        self.gpus = [str(g) for g in gpus] if gpus else [None]
        self.generate_cmd = list(generate_cmd) if generate_cmd else default_generate_cmd()
        self.extra_args = list(extra_args)
        self.grace_seconds = grace_seconds
        self.on_event = on_event or log.info
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._procs: dict[subprocess.Popen, float] = {}
        self._results: dict[Job, JobResult] = {}
        self._queue: queue.Queue[Job] = queue.Queue()

    # ---- state on disk
    def rows(self) -> list[dict]:
        with self._lock:
            return summary_rows(self.jobs, self._results)

    def write_summary(self, with_gallery: bool = True) -> None:
        write_summary(self.out, self.rows(), with_gallery=with_gallery)

    def _record(self, job: Job, result: JobResult) -> None:
        with self._lock:
            self._results[job] = result
        self.write_summary(with_gallery=False)  # the page reads every run folder: written at start and end

    # ---- workers
    def _run_job(self, job: Job, gpu: str | None) -> JobResult:
        resume = resumes(job)
        cmd = job_command(job, self.generate_cmd, self.extra_args)
        env = None
        if gpu is not None:
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
        self.on_event(f"start {job.run_dir.name}" + (f" on GPU {gpu}" if gpu is not None else "")
                      + (" (resume)" if resume else ""))
        start = time.monotonic()
        with self._lock:
            if self._stop.is_set():
                return pending(job)
            proc, logf = start_generate(job, cmd, env)
            self._procs[proc] = start
        try:
            rc = proc.wait()
        finally:
            logf.close()
            with self._lock:
                self._procs.pop(proc, None)
        result = finish_attempt(job, cmd, rc, time.monotonic() - start, stopped=self._stop.is_set(), resume=resume,
                                gpu=gpu)
        if result.status == "done":
            self.on_event(f"done  {job.run_dir.name} in {time.monotonic() - start:.1f} s")
        else:
            self.on_event(f"{result.status} {job.run_dir.name} (exit {rc}); see {job.run_dir / RUN_LOG}")
        return result

    def _worker(self, gpu: str | None, finished: threading.Event) -> None:
        try:
            while not self._stop.is_set():
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    return
                try:
                    result = self._run_job(job, gpu)
                except OSError as exc:  # the command could not start, or the run folder is not writable
                    self.on_event(f"failed {job.run_dir.name}: {exc}")
                    result = JobResult(job.prompt, job.seed, str(job.run_dir), "failed", gpu=gpu)
                self._record(job, result)
        finally:
            finished.set()

    # ---- stopping
    def _signal_children(self, sig: int) -> None:
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _stop_children(self, workers: list[threading.Event]) -> None:
        """Let running generate processes stop on their own (they got the terminal's SIGINT too), then insist."""
        self._stop.set()
        # (seconds to wait before, signal): SIGINT reaches them if only the batch was signalled
        plan = [(2.0, signal.SIGINT), (self.grace_seconds, signal.SIGTERM), (10.0, signal.SIGKILL)]
        for wait_s, sig in plan:
            deadline = time.monotonic() + wait_s
            try:
                while not all(w.is_set() for w in workers) and time.monotonic() < deadline:
                    for w in workers:
                        w.wait(timeout=0.1)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                self.on_event("second interrupt: killing generate processes")
                self._signal_children(signal.SIGKILL)
                break
            if all(w.is_set() for w in workers):
                break
            self.on_event(f"sending {signal.Signals(sig).name} to running generate processes")
            self._signal_children(sig)
        for w in workers:
            w.wait(timeout=5.0)

    def run(self) -> list[JobResult]:
        """Run every unfinished job; return one result per job. Re-raises KeyboardInterrupt after a clean stop."""
        check_out_dir(self.out)
        for job in self.jobs:
            earlier = finished_earlier(job)
            if earlier is None:
                self._queue.put(job)
            else:
                self._results[job] = earlier
        todo = self._queue.qsize()
        self.on_event(f"{len(self.jobs)} runs: {len(self.jobs) - todo} finished earlier, {todo} to do, "
                      f"{len(self.gpus)} worker(s)")
        self.write_summary()
        # Completion is tracked with events: Thread.is_alive() can be wrong after a join() that Ctrl-C interrupted.
        workers = [threading.Event() for _ in self.gpus[:max(todo, 1)]]
        threads = [threading.Thread(target=self._worker, args=(g, w), name=f"batch-gpu{g}", daemon=True)
                   for g, w in zip(self.gpus, workers)]
        try:
            with sigterm_as_interrupt():
                for t in threads:
                    t.start()
                while not all(w.is_set() for w in workers):
                    for w in workers:
                        w.wait(timeout=0.2)
        except KeyboardInterrupt:
            self.on_event("interrupted: stopping workers")
            self._stop_children(workers)
            self.write_summary()
            raise
        self.write_summary()
        return [self._results.get(j) or pending(j) for j in self.jobs]


def run_batch(prompts: Sequence[str], out: str | Path, seeds: Sequence[int] = (0,), *,
              gpus: Sequence[str] | None = None, generate_cmd: Sequence[str] | None = None,
              extra_args: Sequence[str] = (), **kwargs) -> list[JobResult]:
    """Plan and run a batch (see module docstring); returns one JobResult per (prompt, seed)."""
    jobs = plan_jobs(prompts, seeds, out)
    return BatchRunner(jobs, out, gpus=gpus, generate_cmd=generate_cmd, extra_args=extra_args, **kwargs).run()
