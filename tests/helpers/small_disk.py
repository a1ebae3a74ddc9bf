"""A small filesystem to fill up: a tmpfs mounted for one test (root only), and a way to fill it."""
from __future__ import annotations

import errno
import os
import subprocess
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
