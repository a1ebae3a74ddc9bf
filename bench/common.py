"""Shared benchmark helpers: timing (CUDA events or synchronize + perf_counter), host-sync counting, environment.

Timing rule: warm up first (module load, JIT, cuBLAS handles and the caching allocator stay out of the numbers),
then repeat and report the median. On CUDA each repeat is bracketed by CUDA events on the current stream; on CPU by
time.perf_counter().
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "fastdream-bench/1"

# Nominal peak DRAM bandwidth (bytes/s) of cards we expect, from the vendors' datasheets; the JSON also carries a
# measured device-to-device copy figure, which is what ratios use when present.
NOMINAL_BANDWIDTH = {"H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12, "H200": 4.8e12, "A100-SXM4-80GB": 2.04e12,
                     "A100-SXM4-40GB": 1.56e12}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-repeat times in milliseconds."""

    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def as_dict(self) -> dict:
        t = sorted(self.times_ms)
        return {"median_ms": self.median_ms, "min_ms": t[0], "max_ms": t[-1], "repeats": len(t)}


def time_fn(fn: Callable[[], Any], device: torch.device, *, warmup: int = 3, repeats: int = 10,
            setup: Callable[[], Any] | None = None) -> Timing:
    """Median-of-repeats timing of fn(); setup() (untimed) runs before every call, e.g. to zero gradients."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    sync(device)
    out = Timing()
    for _ in range(repeats):
        if setup is not None:
            setup()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out.times_ms.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            out.times_ms.append((time.perf_counter() - t0) * 1e3)
    return out


class PhaseClock:
    """Marks phase boundaries inside a loop without synchronising: CUDA events on GPU, perf_counter on CPU.

    mark(name) closes the phase that started at the previous mark. Read totals with totals_ms() after the loop
    (it synchronises once on CUDA).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._marks: list[tuple[str, Any]] = []

    def _stamp(self):
        if self.device.type == "cuda":
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def start(self) -> None:
        self._marks.append(("", self._stamp()))

    def mark(self, name: str) -> None:
        self._marks.append((name, self._stamp()))

    def totals_ms(self) -> dict[str, float]:
        sync(self.device)
        totals: dict[str, float] = {}
        for (_, a), (name, b) in zip(self._marks, self._marks[1:]):
            if not name:  # a start() opens a new segment; the gap before it is not a phase
                continue
            dt = a.elapsed_time(b) if self.device.type == "cuda" else (b - a) * 1e3
            totals[name] = totals.get(name, 0.0) + dt
        return totals


# --------------------------------------------------------------------------------------------- host syncs
_PY_SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__")

SYNC_COUNT_NOTE = (
    "host_syncs: on CUDA, the number of synchronizing CUDA calls PyTorch's sync debug mode reported "
    "(torch.cuda.set_sync_debug_mode('warn'): stream/device synchronize and blocking copies issued through "
    "PyTorch, e.g. .item(), .cpu(), nonzero(), boolean-mask indexing, repeat_interleave without output_size); "
    "syncs made by third-party C++ code that calls the CUDA runtime directly are not seen. "
    "python_sync_calls: calls from Python of Tensor.item/tolist/cpu/numpy/nonzero/__bool__/__int__/__float__ "
    "(each is a host sync on CUDA; counted on CPU too, as the points that would sync). One un-timed iteration."
)


@contextlib.contextmanager
def count_host_syncs(device: torch.device):
    """Yields a dict filled on exit with host_syncs (CUDA sync debug mode; None on CPU), sync_sites (file:line of
    each, CUDA) and python_sync_calls."""
    result: dict[str, int | None] = {"host_syncs": None, "python_sync_calls": 0}
    originals = {name: getattr(torch.Tensor, name) for name in _PY_SYNC_METHODS}
    own = {name for name in _PY_SYNC_METHODS if name in torch.Tensor.__dict__}  # others are inherited from C

    def wrap(name, orig):
        def counted(self, *args, **kwargs):
            result["python_sync_calls"] += 1
            return orig(self, *args, **kwargs)
        return counted

    for name, orig in originals.items():
        setattr(torch.Tensor, name, wrap(name, orig))
    try:
        if device.type == "cuda":
            sync(device)
            prev = torch.cuda.get_sync_debug_mode()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    yield result
                finally:
                    torch.cuda.set_sync_debug_mode(prev)
            sites = [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message).lower()]
            result["host_syncs"] = len(sites)
            result["sync_sites"] = sorted(set(sites))[:20]  # where in Python each synchronizing call was made
        else:
            yield result
    finally:
        for name, orig in originals.items():
            if name in own:
                setattr(torch.Tensor, name, orig)
            else:
                delattr(torch.Tensor, name)


# --------------------------------------------------------------------------------------------- device facts
def measure_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float | None:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written (CUDA only)."""
    if device.type != "cuda":
        return None
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, warmup=3, repeats=10)
    del src, dst
    return 2 * nbytes / (t.median_ms * 1e-3)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - any failure means "not installed"
        return None


def environment(device: torch.device, command: list[str] | None = None) -> dict:
    """Where and how the numbers were taken: card, torch, CUDA, commit, command, date."""
    env: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(command if command is not None else sys.argv),
        # The GPU machine's copy of the tree may carry no .git, or a stale one: FASTDREAM_COMMIT, when set, names
        # the commit the tree was copied from and wins over what git says there.
        "commit": os.environ.get("FASTDREAM_COMMIT") or _git("rev-parse", "HEAD"),
        "commit_dirty": (None if os.environ.get("FASTDREAM_COMMIT") else
                         bool(_git("status", "--porcelain", "--untracked-files=no")) if _git("rev-parse", "HEAD")
                         else None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "device": str(device),
        "card": None,
        "nerfacc": _version("nerfacc"),
        "tinycudann": _version("tinycudann"),
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(card=props.name, sm_count=props.multi_processor_count,
                   gpu_memory_bytes=int(props.total_memory), capability=f"{props.major}.{props.minor}",
                   cudnn=torch.backends.cudnn.version())
    else:
        env["card"] = platform.processor() or platform.machine()
    try:
        from fastdream import _backend
        caps = _backend.capabilities()
        env["fastdream_backend"] = {k: caps[k] for k in caps if isinstance(caps[k], (str, bool, int, float))}
    except Exception as exc:  # noqa: BLE001 - environment reporting must not fail the run
        env["fastdream_backend"] = {"error": f"{type(exc).__name__}: {exc}"}
    return env


def nominal_bandwidth(card: str | None) -> float | None:
    if not card:
        return None
    for key, bw in NOMINAL_BANDWIDTH.items():
        if key in card:
            return bw
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def unavailable(reason: str) -> dict:
    return {"status": "unavailable", "reason": reason}


def failed(exc: BaseException) -> dict:
    return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}


def write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{prefix}{unit}"
    return f"{x:.{digits}g}{unit}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------------------------- results
def results_name(env: dict) -> str:
    """bench/results/<date>-<card>-<short-commit>.json, as DESIGN.md asks."""
    card = "".join(c if c.isalnum() else "-" for c in (env.get("card") or "unknown")).strip("-")
    while "--" in card:
        card = card.replace("--", "-")
    return f"bench/results/{env['date_utc'][:10]}-{card}-{(env.get('commit') or 'nocommit')[:8]}.json"
