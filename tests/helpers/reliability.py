"""Helpers for the reliability tests: a small filesystem to fill up (a tmpfs mounted for one test, root only), a
process that holds a run folder's lock, a snapshot of a folder to prove nothing changed."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk, unmounted after the test; skipped (with the reason) where mounting is not
    permitted, the only case these tests skip."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({exc}); these full-disk tests need root")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({r.stderr.strip()}); these full-disk tests need root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill `disk` up to `leave` bytes of free space (0: completely) with one filler file; returns it."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        st = os.statvfs(disk)
        free = st.f_bavail * st.f_frsize - leave
        try:
            while free > 0:
                free -= f.write(b"\0" * min(free, 1 << 16))
            while leave == 0:  # up to the last byte
                f.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


ROOT = Path(__file__).resolve().parents[2]


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds `folder`'s RunLock until killed."""
    code = ("import sys, time; from fastdream.files import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(300)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def snapshot(folder: Path) -> dict:
    """Every file under folder -> (size, mtime_ns): equal snapshots mean nothing was written, added or removed
    (the run lock aside, which holds the PID of the last process that took it)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".fastdream.lock"}


def make_tiny_run(folder: Path, iters: int = 1) -> Path:
    """A real run folder, trained for `iters` steps with the oracle on a tiny config (no export)."""
    from fastdream.training.trainer import Trainer
    from tests.helpers.train_utils import tiny_config

    Trainer(tiny_config(**{"train.iters": iters}), folder, progress=False).train()
    return folder
