"""End to end: prompt -> trained field -> mesh -> turntable, with the oracle guidance (target:sphere).

Runs the user-facing commands in-process, one after the other, and times each:
  train   fastdream generate PROMPT --guidance target:sphere --preset fast --iters N --seed 0 --no-export
          (N = 1000; --quick: 5 steps with QUICK_OVERRIDES)
  export  fastdream export RUN            (defaults; --quick: --resolution 64 --texture-size 128)
  render  fastdream render RUN            (defaults: 120 frames at 512; --quick: --frames 4 --size 64)
A stage whose command is not available (not merged yet, or an unknown flag) is reported as such.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench import common, registry

log = logging.getLogger("fastdream.bench")

PROMPT = "a red sphere"
# --quick (CPU smoke test): tiny renders, no periodic evaluation, previews or checkpoints inside the 5 steps.
QUICK_OVERRIDES = ["render.width=16", "render.height=16", "train.eval_every=100000", "train.preview_every=100000",
                   "train.checkpoint_every=100000", "train.eval_views=1", "train.eval_resolution=16"]
GUIDANCE = "target:sphere"


def _cli(argv: list[str]) -> tuple[int, float, str]:
    """Run `fastdream ARGV` in-process; (exit code, seconds, last lines of its stderr/stdout)."""
    from fastdream import cli

    buf = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = cli.main(argv)
    except SystemExit as exc:  # argparse rejects an unknown command or flag with exit code 2
        rc = int(exc.code) if isinstance(exc.code, int) else 2
    dt = time.perf_counter() - t0
    return rc, dt, "\n".join(buf.getvalue().strip().splitlines()[-5:])


def _available(name: str) -> bool:
    from fastdream import cli

    return any(n == name for n, _ in cli._available_commands())


def run(device: torch.device, quick: bool, workdir: str | None = None, **options) -> dict:
    del options
    iters = 5 if quick else 1000
    out: dict[str, Any] = {"prompt": PROMPT, "guidance": GUIDANCE, "iters": iters, "preset": "fast", "stages": {}}
    with tempfile.TemporaryDirectory(prefix="fastdream-bench-e2e-", dir=workdir) as tmp:
        run_dir = str(Path(tmp) / "run")
        stages = [
            ("train", "generate", ["generate", PROMPT, "--guidance", GUIDANCE, "--preset", "fast", "--iters",
                                   str(iters), "--seed", "0", "--out", run_dir, "--device", device.type,
                                   "--no-export", *(QUICK_OVERRIDES if quick else [])]),
            ("export", "export", ["export", run_dir, *(["--resolution", "64", "--texture-size", "128"]
                                                       if quick else [])]),
            ("render", "render", ["render", run_dir, *(["--frames", "4", "--size", "64"] if quick else [])]),
        ]
        ok_so_far = True
        for stage, command, argv in stages:
            if not _available(command):
                out["stages"][stage] = common.unavailable(f"`fastdream {command}` is not available")
                ok_so_far = False
                continue
            if not ok_so_far:
                out["stages"][stage] = common.unavailable("an earlier stage did not finish")
                continue
            common.sync(device)
            try:
                rc, dt, tail = _cli(argv)
            except Exception as exc:  # noqa: BLE001
                out["stages"][stage] = common.failed(exc)
                ok_so_far = False
                continue
            common.sync(device)
            out["stages"][stage] = {"status": "ok" if rc == 0 else "error", "seconds": dt, "exit_code": rc,
                                    "command": "fastdream " + " ".join(argv)}
            if rc != 0:
                out["stages"][stage]["reason"] = tail[-500:]
                ok_so_far = False
        if out["stages"].get("train", {}).get("status") == "ok":
            out["train_steps_per_s"] = iters / out["stages"]["train"]["seconds"]
            files = sorted(str(p.relative_to(run_dir)) for p in Path(run_dir).rglob("*") if p.is_file())
            out["run_files"] = files[:50]
    secs = [s.get("seconds") for s in out["stages"].values()]
    out["total_s"] = sum(secs) if secs and all(x is not None for x in secs) else None
    return out


def summary_rows(res: dict) -> list[list[str]]:
    return [["e2e", stage, r.get("status", "?"), common.fmt(r.get("seconds"), " s"), r.get("reason", "")[:80]]
            for stage, r in res.get("stages", {}).items()]


def summary(res: dict) -> dict:
    stages = res.get("stages") or {}
    return {f"e2e_{k}_s": (stages.get(k) or {}).get("seconds") for k in ("train", "export", "render")}


SECTION = registry.register(registry.Section(name="e2e", run=run, summary=summary, rows=summary_rows,
                                             header=("bench", "stage", "status", "time", "reason")))
