"""One attempt at a batch job: the `fastdream generate` child process, which dies with its parent (so a killed batch
or Ray worker never leaves a second writer on a run folder), its log, and its record on disk."""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable, Iterator, Sequence

from fastdream.commands.batch_jobs import ATTEMPTS, MARKER, RUN_LOG, Job, JobResult, attempt_seconds, now_iso, \
    write_atomic

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the kernel SIGKILLs the child when its parent dies (Linux); exits at once if it already has.

    It also gives the child an empty signal mask and the default SIGINT action: a Ray worker runs tasks with SIGINT
    blocked (and a background job ignores it), which the child would inherit, so it would never see our SIGINT
    (generate's request to save a checkpoint and stop)."""
    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _LIBC.signal(ctypes.c_int(signal.SIGINT), ctypes.c_void_p(0))  # SIG_DFL
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)
    return preexec


def start_generate(job: Job, cmd: Sequence[str], env: dict | None = None) -> tuple[subprocess.Popen, IO[bytes]]:
    """Start `cmd` for `job`, its output appended to the run's batch.log; returns (process, open log file).

    The child stays in the caller's process group, so a terminal's Ctrl-C reaches it and it saves a checkpoint."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    logf = open(job.run_dir / RUN_LOG, "ab")
    try:
        logf.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(cmd)}\n".encode())
        logf.flush()
        preexec = _die_with_parent(os.getpid()) if _LIBC is not None else None
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=preexec)
    except BaseException:
        logf.close()
        raise
    return proc, logf


def wait_interruptibly(proc: subprocess.Popen, poll_s: float = 0.5) -> int:
    """proc.wait() in short slices, so that a KeyboardInterrupt raised in this thread (Ray's task cancel) lands."""
    while True:
        try:
            return proc.wait(timeout=poll_s)
        except subprocess.TimeoutExpired:
            continue


def stop_process(proc: subprocess.Popen, grace_seconds: float) -> int:
    """SIGINT (generate saves a checkpoint and exits), then SIGTERM after `grace_seconds`, then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, grace_seconds), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def finish_attempt(job: Job, cmd: Sequence[str], rc: int, seconds: float, *, stopped: bool, resume: bool,
                   gpu: str | None = None, node: str | None = None) -> JobResult:
    """Record the attempt in batch_attempts.jsonl; write DONE.json when generate exited 0 (it exits 130 when it
    was stopped, so 0 after a stop request means it had finished)."""
    with open(job.run_dir / ATTEMPTS, "a", encoding="utf-8") as f:
        f.write(json.dumps({"started": time.time() - seconds, "seconds": seconds, "returncode": rc, "gpu": gpu,
                            "node": node, "pid": os.getpid(), "resume": resume}) + "\n")
    total = attempt_seconds(job.run_dir)
    if rc == 0:
        marker = {"prompt": job.prompt, "seed": job.seed, "seconds": total, "last_attempt_seconds": seconds,
                  "finished_at": now_iso(), "command": list(cmd), "node": node}
        write_atomic(job.run_dir / MARKER, json.dumps(marker, indent=2) + "\n")
        status = "done"
    else:
        status = "interrupted" if stopped else "failed"
    return JobResult(job.prompt, job.seed, str(job.run_dir), status, total, rc, gpu, node)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active (in the main thread), SIGTERM stops the batch as Ctrl-C does: cleanly, every run resumable."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
