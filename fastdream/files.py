"""Safe output files: atomic writes (a temporary file in the same folder, renamed into place only when complete,
with the mode the umask gives), disk-full errors as one-line WriteErrors, and the run-folder lock."""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fastdream.errors import UserError, WriteError

__all__ = ["WRITE_ERRNOS", "atomic_path", "atomic_write", "write_error", "file_mode", "RunLock"]

# the errors a full, read-only or forbidden destination gives: the user can act on them, they are not bugs
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


def file_mode() -> int:
    """The mode a plain open() would give a new file: 0o666 less the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_error(exc: OSError, path: str | os.PathLike, kept: str = "") -> WriteError:
    """A one-line WriteError for `exc` while writing `path`: what filled up (or refused) and what was kept."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += f" on the filesystem of {Path(path).parent}"
    err = WriteError(f"cannot write {path}: {reason}{'; ' + kept if kept else ''}")
    err.reason = reason
    return err


def _kept_message(path: Path) -> str:
    return f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"


def _make_temp(path: Path, suffix: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: {path.parent} is not a folder; choose another path") from None
    try:
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block finishes without error.

    The temporary file is `.<name>.<random><suffix>`; it gets the umask's mode (not mkstemp's 0600). An OSError of
    a full or read-only disk becomes a WriteError naming `path` and saying that the previous file is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        tmp = _make_temp(path, suffix)
        yield tmp
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise write_error(exc, path, _kept_message(path)) from None
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside path for writing (mode "wb" or "w"); flushed, fsynced and renamed onto path
    only if the block finishes without error (see atomic_path)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


class RunLock:
    """An exclusive lock on a run folder (flock on `<folder>/.fastdream.lock`, released by the OS when the process
    dies); the file holds the owner's PID so that a second run can say who holds it."""

    NAME = ".fastdream.lock"
    _held: dict[Path, int] = {}  # lock file -> how many RunLocks of this process hold it (nesting is allowed)

    def __init__(self, folder: str | os.PathLike):
        self.path = (Path(folder) / self.NAME).absolute()
        self.fd: int | None = None
        self.nested = False

    def acquire(self) -> "RunLock":
        """Take the lock (again, if this process holds it already), or raise a UserError naming the PID that holds
        it."""
        if self.path in RunLock._held:
            RunLock._held[self.path] += 1
            self.nested = True
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as exc:
            raise write_error(exc, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{self.path.parent} is in use by another fastdream process (PID {owner}); wait for it "
                             f"to finish or choose another --out") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only the PID in the message goes unknown
            pass
        self.fd = fd
        RunLock._held[self.path] = 1
        return self

    def release(self) -> None:
        if self.nested:
            RunLock._held[self.path] -= 1
            self.nested = False
        elif self.fd is not None:
            del RunLock._held[self.path]
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
