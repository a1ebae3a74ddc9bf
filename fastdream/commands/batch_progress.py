"""One progress line for a whole batch: done, running, failed, ETA. Redrawn in place on a terminal; elsewhere (a
log file, CI) printed as a plain line whenever the counts change."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def format_eta(seconds: float | None) -> str:
    """'1h05m', '3m20s', '42s', or '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressLine:
    """Counts runs of a batch and shows them; the ETA is the runs left over the rate at which runs ended so far."""

    def __init__(self, total: int, *, finished_earlier: int = 0, stream: TextIO | None = None, width: int = 24):
        self.total, self.earlier, self.width = total, finished_earlier, width
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.done = self.failed = self.running = 0
        self._last = ""

    def text(self) -> str:
        """The current line, e.g. '[#####-----] 4/8 done, 2 running, 1 failed, ETA 3m20s'."""
        ended = self.done + self.failed  # this session's ends
        left = self.total - self.earlier - ended
        eta = (time.monotonic() - self.t0) / ended * left if ended else None
        finished = self.earlier + self.done
        filled = int(self.width * finished / self.total) if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        return (f"[{bar}] {finished}/{self.total} done, {self.running} running, {self.failed} failed, "
                f"ETA {format_eta(0.0 if left <= 0 else eta)}")

    def update(self, *, done: int | None = None, running: int | None = None, failed: int | None = None) -> None:
        """Set the counts (this session's done and failed runs; runs running now) and show them if they changed."""
        self.done = self.done if done is None else done
        self.running = self.running if running is None else running
        self.failed = self.failed if failed is None else failed
        line = self.text()
        counts = line.split("] ", 1)[1].rsplit(", ETA", 1)[0]
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
        elif counts != self._last:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last = counts

    def write(self, message: str) -> None:
        """Print a message line above the progress line."""
        if self.tty:
            self.stream.write("\r\x1b[2K" + message + "\n" + self.text())
        else:
            self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
