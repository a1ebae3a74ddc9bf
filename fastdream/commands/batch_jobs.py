"""A batch's plan and its state on disk: one job per (prompt, seed) in OUT/<slug>-s<seed>/, completion markers,
attempt records, and the `fastdream generate` command line of a job. Shared by the local and the Ray runners.

A run is finished when its folder holds DONE.json, written atomically after the generate process exited 0; a run
whose folder holds checkpoints/last.pt is continued with --resume. Each attempt appends a line to
batch_attempts.jsonl and its output to batch.log in the run folder.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fastdream.commands import generate
from fastdream.errors import UserError
from fastdream.files import atomic_write

MARKER = "DONE.json"
ATTEMPTS = "batch_attempts.jsonl"
RUN_LOG = "batch.log"
CHECKPOINT = Path("checkpoints") / "last.pt"
GENERATE_CMD_ENV = "FASTDREAM_BATCH_GENERATE_CMD"  # e.g. "python my_fake_generate.py" (shell-split), for tests
SLUG_MAX = 64
BATCH_SETS = ("--out", "-o", "--seed")  # generate options the batch sets itself, per run


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
    node: str | None = None  # the host that ran the last attempt (Ray)


def pending(job: Job) -> JobResult:
    """The result of a job that has not run (yet)."""
    return JobResult(job.prompt, job.seed, str(job.run_dir), "pending")


def parse_int_list(text: str, what: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; UserError naming `what` otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers like 0,1, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"{what} must be comma-separated non-negative integers like 0,1, got {text!r}")
    return values


def check_out_dir(out: str | Path) -> Path:
    """Create the batch folder; UserError (one line) when it is a file or cannot be made."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a folder for the batch's runs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the batch folder --out {out}: {exc.strerror or exc}") from None
    return out


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
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def finished_earlier(job: Job) -> JobResult | None:
    """A 'skipped' result when the job's folder holds its marker; UserError when it holds another prompt's."""
    marker = read_marker(job.run_dir)
    if marker is None:
        return None
    if marker.get("prompt") != job.prompt:
        raise UserError(f"{job.run_dir} holds a finished run of a different prompt ({marker.get('prompt')!r}); "
                        f"move it away or use another --out")
    return JobResult(job.prompt, job.seed, str(job.run_dir), "skipped", marker.get("seconds"), 0)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through fastdream.files.atomic_write: readers never see half a file."""
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))


def default_generate_cmd() -> list[str]:
    """The command prefix that generates one run: $FASTDREAM_BATCH_GENERATE_CMD, else `python -m fastdream generate`."""
    env = os.environ.get(GENERATE_CMD_ENV, "").strip()
    return shlex.split(env) if env else [sys.executable, "-m", "fastdream", "generate"]


def _generate_options() -> tuple[set[str], set[str]]:
    """generate's option strings: (those that take a value, flags)."""
    parser = argparse.ArgumentParser(add_help=False)
    generate.add_arguments(parser)
    takes = {s for a in parser._actions for s in a.option_strings if a.nargs != 0}
    flags = {s for a in parser._actions for s in a.option_strings if a.nargs == 0}
    return takes, flags


def split_generate_args(extra: Sequence[str]) -> tuple[list[str], list[str]]:
    """The generate arguments given after the batch's `--`, as (options with their values, key=value overrides)."""
    takes, flags = _generate_options()

    def takes_value(arg: str) -> bool:
        if arg in takes or arg in flags or not arg.startswith("--"):
            return arg in takes
        matches = [s for s in takes | flags if s.startswith(arg)]  # argparse accepts unique abbreviations
        return len(matches) == 1 and matches[0] in takes

    options: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(extra):
        arg = extra[i]
        if arg.split("=", 1)[0] in BATCH_SETS:
            raise UserError(f"{arg} after `--` is set by fastdream batch for each run; leave it out")
        if arg.startswith("-") and "=" not in arg and takes_value(arg):
            options += list(extra[i:i + 2])
            i += 2
            continue
        (options if arg.startswith("-") else positionals).append(arg)
        i += 1
    return options, positionals


def generate_device(extra: Sequence[str]) -> str | None:
    """The device the generate arguments ask for (--device X or train.device=X), or None."""
    options, overrides = split_generate_args(extra)
    for i, arg in enumerate(options):
        if arg == "--device" and i + 1 < len(options):
            return options[i + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    found = [o.split("=", 1)[1] for o in overrides if o.startswith("train.device=")]
    return found[-1] if found else None


def resumes(job: Job) -> bool:
    """True when the job's next attempt continues a checkpoint (--resume)."""
    return (job.run_dir / CHECKPOINT).is_file()


def job_command(job: Job, generate_cmd: Sequence[str], extra_args: Sequence[str] = ()) -> list[str]:
    """The generate argv of a job: options, --out, --seed, --resume when a checkpoint exists, `--`, the prompt
    (so a prompt like '-h' stays a prompt) and the overrides."""
    options, overrides = split_generate_args(extra_args)
    cmd = [*generate_cmd, *options, "--out", str(job.run_dir), "--seed", str(job.seed)]
    if resumes(job):
        cmd.append("--resume")
    return [*cmd, "--", job.prompt, *overrides]


def attempt_seconds(run_dir: Path) -> float:
    """Wall seconds summed over the attempts recorded in the run's batch_attempts.jsonl."""
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


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
