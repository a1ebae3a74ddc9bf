"""fastdream.files: atomic writes that keep the previous file, follow the umask and say in one line that a disk is
full; the run-folder lock that names its holder and dies with it."""
import os

import pytest

from fastdream.errors import UserError, WriteError
from fastdream.files import RunLock, atomic_path, atomic_write

from tests.helpers.reliability import fill, hold_lock, small_disk  # noqa: F401 (a fixture)


def test_atomic_write_follows_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as fh:
            fh.write("x")
        os.umask(0o002)
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o664


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(tmp_path / "a.txt", "w") as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    with pytest.raises(UserError, match="not a folder"):
        with atomic_write(tmp_path / "a.txt" / "b.txt") as fh:
            fh.write(b"x")


def test_a_full_disk_is_one_write_error_naming_the_file_and_keeping_the_old_one(small_disk):
    target = small_disk / "out.bin"
    target.write_bytes(b"old")
    fill(small_disk)
    with pytest.raises(WriteError) as info:
        with atomic_write(target) as fh:
            fh.write(b"x" * (1 << 20))
    msg = str(info.value)
    assert str(target) in msg and "No space left on device" in msg and "previous out.bin is unchanged" in msg
    assert "\n" not in msg and target.read_bytes() == b"old"
    assert sorted(os.listdir(small_disk)) == ["filler", "out.bin"]


def test_run_lock_names_the_holder_and_is_released_when_it_dies(tmp_path):
    proc = hold_lock(tmp_path)
    try:
        with pytest.raises(UserError, match=f"in use by another fastdream process \\(PID {proc.pid}\\)"):
            RunLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with RunLock(tmp_path):  # the OS released it with the process
        with RunLock(tmp_path):  # the same process may nest it
            pass
        assert (tmp_path / RunLock.NAME).read_text().strip() == str(os.getpid())
