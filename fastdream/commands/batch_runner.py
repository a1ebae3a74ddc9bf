"""Resumable batch generation: one `fastdream generate` subprocess per (prompt, seed), one worker per GPU.

Layout: OUT/<slug>-s<seed>/ per run. A run is finished when its folder holds DONE.json, written atomically after the
generate process exited 0; finished runs are skipped, and a run whose folder holds checkpoints/last.pt is continued
with --resume. Each attempt appends a line to batch_attempts.jsonl and its output to batch.log in the run folder.
OUT/summary.json and OUT/summary.md list every run with its status and seconds; they are rewritten as runs end.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from fastdream.errors import UserError

log = logging.getLogger(__name__)

MARKER = "DONE.json"
ATTEMPTS = "batch_attempts.jsonl"
RUN_LOG = "batch.log"
CHECKPOINT = Path("checkpoints") / "last.pt"
GENERATE_CMD_ENV = "FASTDREAM_BATCH_GENERATE_CMD"  # e.g. "python my_fake_generate.py" (shell-split), for tests
SLUG_MAX = 64


def slugify(prompt: str) -> str:
    """Folder name for a prompt: lowercase words joined by '_', plus a short hash when that loses information.

    Lossless prompts (lowercase ASCII letters, digits, single spaces) keep a readable slug; any other prompt gets
    '-<sha1[:8]>' appended so two prompts never share a folder.
    """
    text = " ".join(prompt.split())
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    lossless = slug.replace("_", " ") == text and len(slug) <= SLUG_MAX
    slug = slug[:SLUG_MAX].rstrip("_") or "prompt"
    if not lossless:
        slug += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return slug


@dataclass(frozen=True)
class Job:
    prompt: str
    seed: int
    run_dir: Path


@dataclass
class JobResult:
    prompt: str
    seed: int
    run_dir: str
    status: str  # done | skipped (finished earlier) | failed | interrupted | pending
    seconds: float | None = None  # wall time summed over all attempts of this run
    returncode: int | None = None
    gpu: str | None = None


def parse_int_list(text: str, what: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; UserError naming `what` otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers like 0,1, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"{what} must be comma-separated non-negative integers like 0,1, got {text!r}")
    return values


def plan_jobs(prompts: Sequence[str], seeds: Sequence[int], out: str | Path) -> list[Job]:
    """One job per (prompt, seed), prompts in order then seeds, in OUT/<slug>-s<seed>/."""
    if not prompts:
        raise UserError("no prompts to generate")
    if not seeds:
        raise UserError("no seeds given")
    out = Path(out)
    prompts = list(dict.fromkeys(" ".join(p.split()) for p in prompts))
    return [Job(p, int(s), out / f"{slugify(p)}-s{int(s)}") for p in prompts for s in dict.fromkeys(seeds)]


def read_marker(run_dir: Path) -> dict | None:
    """The completion marker's content, or None when the run is not finished (absent or unreadable marker)."""
    try:
        return json.loads((Path(run_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def default_generate_cmd() -> list[str]:
    """The command prefix that generates one run: $FASTDREAM_BATCH_GENERATE_CMD, else `python -m fastdream generate`."""
    env = os.environ.get(GENERATE_CMD_ENV, "").strip()
    return shlex.split(env) if env else [sys.executable, "-m", "fastdream", "generate"]


def job_command(job: Job, generate_cmd: Sequence[str], extra_args: Sequence[str] = ()) -> list[str]:
    cmd = [*generate_cmd, job.prompt, "--out", str(job.run_dir), "--seed", str(job.seed)]
    if (job.run_dir / CHECKPOINT).is_file():
        cmd.append("--resume")
    return cmd + list(extra_args)


def _attempt_seconds(run_dir: Path) -> float:
    total = 0.0
    try:
        for line in (run_dir / ATTEMPTS).read_text(encoding="utf-8").splitlines():
            try:
                total += float(json.loads(line).get("seconds", 0.0))
            except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
                continue
    except OSError:
        pass
    return total


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
    def write_summary(self) -> None:
        with self._lock:
            rows = [asdict(self._results.get(j) or JobResult(j.prompt, j.seed, str(j.run_dir), "pending"))
                    for j in self.jobs]
        self.out.mkdir(parents=True, exist_ok=True)
        counts = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        summary = {"runs": rows, "counts": counts, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write_atomic(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        lines = ["# fastdream batch", "",
                 ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), "",
                 "| prompt | seed | status | seconds | run |", "|---|---:|---|---:|---|"]
        for r in rows:
            secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
            prompt = r["prompt"].replace("|", "\\|")
            lines.append(f"| {prompt} | {r['seed']} | {r['status']} | {secs} | {Path(r['run_dir']).name} |")
        _write_atomic(self.out / "summary.md", "\n".join(lines) + "\n")

    def _record(self, job: Job, result: JobResult) -> None:
        with self._lock:
            self._results[job] = result
        self.write_summary()

    # ---- workers
    def _run_job(self, job: Job, gpu: str | None) -> JobResult:
        job.run_dir.mkdir(parents=True, exist_ok=True)
        cmd = job_command(job, self.generate_cmd, self.extra_args)
        env = os.environ.copy()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        self.on_event(f"start {job.run_dir.name}" + (f" on GPU {gpu}" if gpu is not None else "")
                      + (" (resume)" if "--resume" in cmd else ""))
        start = time.monotonic()
        with open(job.run_dir / RUN_LOG, "ab") as logf:
            logf.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(cmd)}\n".encode())
            logf.flush()
            with self._lock:
                if self._stop.is_set():
                    return JobResult(job.prompt, job.seed, str(job.run_dir), "pending", gpu=gpu)
                # Same process group as the batch: a terminal Ctrl-C reaches generate too and it stops cleanly.
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                        env=env)
                self._procs[proc] = start
            try:
                rc = proc.wait()
            finally:
                with self._lock:
                    self._procs.pop(proc, None)
        seconds = time.monotonic() - start
        with open(job.run_dir / ATTEMPTS, "a", encoding="utf-8") as f:
            f.write(json.dumps({"started": time.time() - seconds, "seconds": seconds, "returncode": rc,
                                "gpu": gpu, "resume": "--resume" in cmd}) + "\n")
        total = _attempt_seconds(job.run_dir)
        if rc == 0 and not self._stop.is_set():
            marker = {"prompt": job.prompt, "seed": job.seed, "seconds": total, "last_attempt_seconds": seconds,
                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": cmd}
            _write_atomic(job.run_dir / MARKER, json.dumps(marker, indent=2) + "\n")
            self.on_event(f"done  {job.run_dir.name} in {seconds:.1f} s")
            return JobResult(job.prompt, job.seed, str(job.run_dir), "done", total, rc, gpu)
        status = "interrupted" if self._stop.is_set() else "failed"
        self.on_event(f"{status} {job.run_dir.name} (exit {rc}); see {job.run_dir / RUN_LOG}")
        return JobResult(job.prompt, job.seed, str(job.run_dir), status, total, rc, gpu)

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
        self.out.mkdir(parents=True, exist_ok=True)
        for job in self.jobs:
            marker = read_marker(job.run_dir)
            if marker is None:
                self._queue.put(job)
                continue
            if marker.get("prompt") != job.prompt:
                raise UserError(f"{job.run_dir} holds a finished run of a different prompt "
                                f"({marker.get('prompt')!r}); move it away or use another --out")
            self._results[job] = JobResult(job.prompt, job.seed, str(job.run_dir), "skipped",
                                           marker.get("seconds"), 0, None)
        todo = self._queue.qsize()
        self.on_event(f"{len(self.jobs)} runs: {len(self.jobs) - todo} finished earlier, {todo} to do, "
                      f"{len(self.gpus)} worker(s)")
        self.write_summary()
        # Completion is tracked with events: Thread.is_alive() can be wrong after a join() that Ctrl-C interrupted.
        workers = [threading.Event() for _ in self.gpus[:max(todo, 1)]]
        threads = [threading.Thread(target=self._worker, args=(g, w), name=f"batch-gpu{g}", daemon=True)
                   for g, w in zip(self.gpus, workers)]
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
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
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self.write_summary()
        return [self._results.get(j) or JobResult(j.prompt, j.seed, str(j.run_dir), "pending") for j in self.jobs]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_batch(prompts: Sequence[str], out: str | Path, seeds: Sequence[int] = (0,), *,
              gpus: Sequence[str] | None = None, generate_cmd: Sequence[str] | None = None,
              extra_args: Sequence[str] = (), **kwargs) -> list[JobResult]:
    """Plan and run a batch (see module docstring); returns one JobResult per (prompt, seed)."""
    jobs = plan_jobs(prompts, seeds, out)
    return BatchRunner(jobs, out, gpus=gpus, generate_cmd=generate_cmd, extra_args=extra_args, **kwargs).run()
