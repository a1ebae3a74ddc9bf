"""One step-benchmark variant run through the Trainer's own step (Trainer.train_step, the code path of
`fastdream generate`): build the run from a config, warm up past the occupancy grid's warm-up, then time the step,
count its host syncs and, in a separate profiled pass, break it into phases."""
from __future__ import annotations

import gc
import logging
from pathlib import Path

import torch

from bench import common
from bench.step_models import Models, make_guidance
from bench.step_timing import count_syncs, profile_phases, sizes, time_steps
from bench.step_variants import Variant
from fastdream.config import Config, make_config
from fastdream.ops.capacity import SampleCapacity
from fastdream.training.trainer import Trainer

__all__ = ["bench_config", "run_variant", "release"]

log = logging.getLogger("fastdream.bench")
PROMPT = "a DSLR photo of a hamburger"
QUICK_FIELD = {"log2_hashmap_size": 12, "n_levels": 4, "finest_resolution": 64, "hidden_dim": 16, "n_hidden_layers": 1}


def bench_config(device: torch.device, quick: bool, overrides: dict) -> Config:
    """The default recipe at the bench's sizes (64x64 renders; tiny with quick) plus `overrides`."""
    s = sizes(quick)
    base = {"guidance.spec": "sd", "train.device": device.type, "train.iters": 100_000,
            "render.width": s["render"], "render.height": s["render"], "render.grid_update_every": s["grid_every"]}
    if quick:
        base.update({"render.grid_resolution": 16, "render.render_step_size": 0.1, "field.options": QUICK_FIELD})
    return make_config("default", prompt=PROMPT, overrides={**base, **overrides})


def start_after_grid_warmup(trainer: Trainer) -> None:
    """Fill the grid from the initial field (the warm-up update), then continue as a run past its grid warm-up:
    later updates refresh occupied cells plus a random share, every render.grid_update_every steps."""
    trainer._update_grid()  # step 0: evaluates every cell
    trainer.step = trainer.cfg.render.grid_warmup_steps


def _capacity_info(capacity) -> dict | None:
    if not isinstance(capacity, SampleCapacity):
        return None
    return {"final": capacity.current(), "last_demand": capacity.last_demand,
            "truncated_steps": capacity.truncated_steps}


def run_variant(models: Models, variant: Variant, device: torch.device, quick: bool, workdir: str) -> dict:
    """Time `variant` through Trainer.train_step; the result holds steps/s, per-step ms (median, p10, p90),
    host syncs per step (and where), phases, peak memory and what the sample budget did."""
    s = sizes(quick)
    cfg = bench_config(device, quick, variant.overrides)
    guidance = make_guidance(models, device, cfg.guidance, cfg.train.cuda_graphs)
    trainer = Trainer(cfg, Path(workdir) / variant.name, guidance=guidance, progress=False)
    try:
        start_after_grid_warmup(trainer)
        calls_before = trainer.step
        for _ in range(s["warmup"]):
            trainer.train_step()
        out = {"status": "ok", "note": variant.note, "overrides": variant.overrides,
               "driver": "fastdream.training.trainer.Trainer.train_step", "render": f"{s['render']}x{s['render']}"}
        out.update(time_steps(trainer.train_step, device, s["steps"]))
        out.update(count_syncs(trainer.train_step, device, s["sync_steps"]))
        out.update(profile_phases(trainer, trainer.train_step, device, s["phase_steps"]))
        out["train_steps_run"] = trainer.step - calls_before
        out["sample_capacity"] = _capacity_info(trainer.capacity)
        graphed = getattr(guidance, "_unet_call", None)
        out["cuda_graphs_active"] = bool(guidance.cuda_graphs and graphed.disabled_reason is None)
        if guidance.cuda_graphs and graphed.disabled_reason:
            out["cuda_graphs_fallback"] = graphed.disabled_reason
        if variant.cuda_only and device.type != "cuda":
            out["lever_note"] = "a CUDA-only lever: on the CPU this row runs as the row before it"
        return out
    finally:
        del trainer, guidance
        release(device)


def release(device: torch.device) -> None:
    """Free what the last variant held (graph pools, compiled code's buffers) before the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    common.sync(device)
