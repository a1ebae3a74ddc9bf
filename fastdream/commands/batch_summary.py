"""A batch's report files: OUT/summary.json, OUT/summary.md and the gallery page OUT/index.html, and the closing
lines that name the runs that did not finish."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

from fastdream.commands import gallery
from fastdream.commands.batch_jobs import RUN_LOG, Job, JobResult, now_iso, pending, write_atomic

log = logging.getLogger(__name__)


def summary_rows(jobs: Sequence[Job], results: Mapping[Job, JobResult]) -> list[dict]:
    """One dict per job, in plan order (pending where no result is known)."""
    return [asdict(results.get(j) or pending(j)) for j in jobs]


def write_summary(out: Path, rows: Sequence[dict], *, with_gallery: bool = True) -> None:
    """Write summary.json and summary.md (and index.html unless with_gallery is False) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = {"runs": list(rows), "counts": counts, "written_at": now_iso()}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    lines = ["# fastdream batch", "",
             ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), "",
             "| prompt | seed | status | seconds | run |", "|---|---:|---|---:|---|"]
    for r in rows:
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        prompt = r["prompt"].replace("|", "\\|")
        lines.append(f"| {prompt} | {r['seed']} | {r['status']} | {secs} | {Path(r['run_dir']).name} |")
    write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    if with_gallery:
        try:
            gallery.write_gallery(out, rows)
        except OSError as exc:  # the page is a view of the batch; never fail a batch over it
            log.warning("could not write %s: %s", out / gallery.PAGE, exc)


def _last_log_line(run_dir: Path, limit: int = 160) -> str:
    try:
        with open(run_dir / RUN_LOG, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 8192, 0))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def failure_lines(rows: Sequence[dict]) -> list[str]:
    """One line per run that failed or was interrupted: its folder, exit code, last log line and log path."""
    out = []
    for r in rows:
        if r["status"] not in ("failed", "interrupted"):
            continue
        run_dir = Path(r["run_dir"])
        where = f" on {r['node']}" if r.get("node") else ""
        last = _last_log_line(run_dir)
        out.append(f"{r['status']} {run_dir.name} (exit {r['returncode']}{where})"
                   + (f": {last}" if last else "") + f"; log: {run_dir / RUN_LOG}")
    return out
