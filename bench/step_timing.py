"""Steady-state timing of a training step function: per-step times from CUDA events recorded between steps (nothing
inside the step), wall-clock throughput, host syncs per step, peak memory, and an optional profiled pass."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from bench import common

__all__ = ["sizes", "time_steps", "count_syncs", "profile_phases", "PHASES", "DIFFUSION_PHASES"]

PHASES = ("render_fwd", "vae_encode", "unet", "vae_backward", "render_backward", "optimizer", "grid_update")
DIFFUSION_PHASES = ("vae_encode", "unet", "vae_backward")


def sizes(quick: bool) -> dict:
    """Steps per stage. The timed run starts after the grid's warm-up (train step = grid_warmup_steps + warmup) and
    spans two grid updates (every 16 steps); the sync count spans one."""
    if quick:
        return dict(render=16, warmup=1, steps=2, sync_steps=1, phase_steps=1, grid_every=2)
    return dict(render=64, warmup=10, steps=32, sync_steps=16, phase_steps=16, grid_every=16)


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def time_steps(step: Callable[[], object], device: torch.device, n: int) -> dict:
    """Run step() n times: steps/s from the wall clock (one sync at the end), per-step ms between consecutive events
    (CUDA; perf_counter on the CPU), peak memory over the run."""
    common.peak_memory_reset(device)
    stamps = []

    def stamp():
        if device.type == "cuda":
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    common.sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        stamps.append(stamp())
        step()
    stamps.append(stamp())
    common.sync(device)
    wall = time.perf_counter() - t0
    if device.type == "cuda":
        per = [a.elapsed_time(b) for a, b in zip(stamps, stamps[1:])]
    else:
        per = [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:])]
    return {"steps": n, "wall_s": wall, "steps_per_s": n / wall, "mean_ms": wall / n * 1e3,
            "median_ms": statistics.median(per), "p10_ms": _percentile(per, 0.1), "p90_ms": _percentile(per, 0.9),
            "peak_memory_bytes": common.peak_memory_bytes(device)}


def count_syncs(step: Callable[[], object], device: torch.device, n: int) -> dict:
    """Host syncs over n steps (CUDA sync debug mode, warn) and Python-level sync-capable calls, per step."""
    with common.count_host_syncs(device) as counted:
        for _ in range(n):
            step()
    syncs = counted["host_syncs"]
    return {"host_syncs_per_step": None if syncs is None else syncs / n, "host_syncs_counted_over_steps": n,
            "sync_sites": counted.get("sync_sites", []),
            "python_sync_calls_per_step": counted["python_sync_calls"] / n}


def profile_phases(trainer, step: Callable[[], object], device: torch.device, n: int) -> dict:
    """Average ms per phase over n steps with the Trainer's phase marks on (events inside the step)."""
    clock = common.PhaseClock(device)
    trainer.profile(clock)
    try:
        for _ in range(n):
            step()
    finally:
        trainer.profile(None)
    totals = clock.totals_ms()
    phases = {k: totals.get(k, 0.0) / n for k in PHASES}
    total = sum(phases.values())
    return {"phases_ms": phases, "phases_sum_ms": total,
            "diffusion_share": sum(phases[k] for k in DIFFUSION_PHASES) / max(total, 1e-9)}
