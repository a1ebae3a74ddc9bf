"""The `step` section: one SDS training step at a 64x64 render with SD-2.1-base-sized random-weight models (bf16; no
download), run through fastdream's own Trainer.train_step (the code path of `fastdream generate`).

Rows, timed in one process on one GPU (bench/step_variants.py has each row's config overrides):
  default            the default recipe;
  baseline           the threestudio-equivalent step of bench/baseline.py (its docstring says exactly what it is);
  torch_renderer, nerfacc_renderer   the default recipe with the peer renderers;
  lever_*, fast*     a ladder of speed levers, each row adding one lever to the row it names (`after`); the `fast`
                     rows are the fastest recipes and say what they trade; the torch.compile rows run on CUDA only.
Per row, after warm-up and past the occupancy grid's own warm-up: steps/s from the wall clock over the timed steps
(two grid updates among them), per-step ms from CUDA events recorded between steps (median, p10, p90), peak memory,
host syncs per step (torch.cuda.set_sync_debug_mode("warn") over 16 steps with one grid update, and the Python line
of each sync), and, in a separate profiled pass with the Trainer's phase marks on (events inside the step only
then), render fwd / VAE encode / UNet / VAE backward / render backward / optimizer / grid update.
Software gain = default / baseline steps/s on the same GPU in the same run.
"""
from __future__ import annotations

import logging
import tempfile
from typing import Callable

import torch

from bench import common, registry, sd_configs
from bench.baseline import run_baseline
from bench.step_models import build_models
from bench.step_trainer import run_variant
from bench.step_variants import COMPILED, EAGER, FAST_VARIANTS, LADDER, VARIANTS

log = logging.getLogger("fastdream.bench")

ORDER = ("default", "baseline", "torch_renderer", "nerfacc_renderer", "lever_plain", "lever_fused_adam",
         "lever_channels_last", "lever_tiny_encoder", "lever_cuda_graphs", "fast", "fast_latent", "fast_compile",
         "lever_compile")
GROUPS = {"eager": (*EAGER, "baseline"), "compiled": COMPILED, "all": ORDER}


def select(variants: str | None) -> list[str]:
    """Row names to run, in ORDER: a comma list of names or groups (eager, compiled, all; default all). Rows a
    device cannot run (torch.compile and nerfacc off CUDA) are reported as unavailable."""
    variants = variants or "all"
    wanted: set[str] = set()
    for item in (v.strip() for v in variants.split(",") if v.strip()):
        if item not in GROUPS and item not in ORDER:
            raise ValueError(f"unknown step variant {item!r}; choose from {', '.join([*GROUPS, *ORDER])}")
        wanted.update(GROUPS.get(item, (item,)))
    return [n for n in ORDER if n in wanted]


def _unavailable_reason(name: str, device: torch.device) -> str | None:
    if name == "nerfacc_renderer":
        if device.type != "cuda":
            return "nerfacc's sampler is CUDA-only"
        try:
            import nerfacc  # noqa: F401
        except ImportError as exc:
            return f"nerfacc not importable ({exc})"
    if name in COMPILED and device.type != "cuda":
        return "the torch.compile rows run on CUDA only"
    return None


def _run_one(name: str, models, device: torch.device, quick: bool, workdir: str) -> dict:
    reason = _unavailable_reason(name, device)
    if reason:
        return common.unavailable(reason)
    try:
        if name == "baseline":
            return run_baseline(models, device, quick, workdir)
        return run_variant(models, VARIANTS[name], device, quick, workdir)
    except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
        log.warning("step variant %s failed: %s", name, exc)
        return common.failed(exc)


def run(device: torch.device, quick: bool, variants: str | None = None,
        on_progress: Callable[[dict], None] | None = None, **options) -> dict:
    """Time the selected rows; on_progress(partial result) after each, so a killed run keeps what it measured."""
    del options
    names = select(variants)
    out: dict = {"note": __doc__.split("\n\n")[0], "nominal_step_tflop": sd_configs.NOMINAL_STEP_TFLOP,
                 "host_sync_note": common.SYNC_COUNT_NOTE, "variants": {}}
    try:
        models = build_models(quick, device)
        out["models"] = models.info
    except Exception as exc:  # noqa: BLE001
        log.warning("step: building the diffusion models failed: %s", exc)
        out["variants"] = {n: common.failed(exc) for n in names}
        return out
    with tempfile.TemporaryDirectory(prefix="fastdream-bench-step-") as tmp:
        for name in names:
            log.info("bench step: %s", name)
            out["variants"][name] = _run_one(name, models, device, quick, tmp)
            if on_progress is not None:
                on_progress(out)
    return out


def _sps(v: dict, name: str | None) -> float | None:
    return (v.get(name) or {}).get("steps_per_s") if name else None


def _levers(v: dict) -> list[dict]:
    rows = []
    for name in LADDER:
        var = VARIANTS[name]
        rows.append({"row": name, "adds": var.adds or "-", "after": var.after, "steps_per_s": _sps(v, name),
                     "vs_after": common.ratio(_sps(v, name), _sps(v, var.after)),
                     "status": (v.get(name) or {}).get("status", "not run")})
    return rows


def summary(res: dict) -> dict:
    v = res.get("variants") or {}
    d = v.get("default") or {}
    measured = [n for n in FAST_VARIANTS if _sps(v, n)]
    fast = max(measured, key=lambda n: _sps(v, n)) if measured else None
    tflop = sd_configs.NOMINAL_STEP_TFLOP * 1e12
    return {
        "trainer_steps_per_s": _sps(v, "default"), "trainer_step_median_ms": d.get("median_ms"),
        "trainer_step_p10_ms": d.get("p10_ms"), "trainer_step_p90_ms": d.get("p90_ms"),
        "trainer_fast_steps_per_s": _sps(v, fast), "trainer_fast_recipe": None if fast is None else {
            "row": fast, "overrides": VARIANTS[fast].overrides, "what_it_is_and_trades": VARIANTS[fast].note},
        "trainer_host_syncs_per_step": d.get("host_syncs_per_step"),
        "trainer_peak_memory_bytes": d.get("peak_memory_bytes"),
        "trainer_vs_baseline": common.ratio(_sps(v, "default"), _sps(v, "baseline")),
        "trainer_fast_vs_baseline": common.ratio(_sps(v, fast), _sps(v, "baseline")),
        "baseline_steps_per_s": _sps(v, "baseline"),
        "baseline_host_syncs_per_step": (v.get("baseline") or {}).get("host_syncs_per_step"),
        "step_steps_per_s": _sps(v, "default"), "step_peak_memory_bytes": d.get("peak_memory_bytes"),
        "step_diffusion_share": d.get("diffusion_share"),
        "step_achieved_tflops_nominal": None if not d.get("steps_per_s") or res.get("models", {}).get(
            "unet_config") != "SD 2.1-base" else tflop * d["steps_per_s"] / 1e12,
        "step_vs_torch_renderer": common.ratio(_sps(v, "default"), _sps(v, "torch_renderer")),
        "step_vs_nerfacc_renderer": common.ratio(_sps(v, "default"), _sps(v, "nerfacc_renderer")),
        "levers": _levers(v),
    }


def summary_rows(res: dict) -> list[list[str]]:
    rows = []
    for name, r in (res.get("variants") or {}).items():
        ph = r.get("phases_ms") or {}
        spread = (f"{r['median_ms']:.1f} ({r['p10_ms']:.1f}-{r['p90_ms']:.1f})" if r.get("median_ms") is not None
                  else "-")
        rows.append(["sds step", name, r.get("status", "?"), common.fmt(r.get("steps_per_s"), " it/s"), spread,
                     str(r.get("host_syncs_per_step", "-")), common.fmt(r.get("peak_memory_bytes"), "B"),
                     " ".join(f"{k}={x:.1f}" for k, x in ph.items()) if ph else r.get("reason", "")[:70]])
    return rows


def report_lines(res: dict) -> list[str]:
    lines = ["", "levers (each row adds one lever to the row in brackets):"]
    for lv in summary(res)["levers"]:
        gain = f"{lv['vs_after']:.3g}x" if isinstance(lv["vs_after"], float) else "-"
        lines.append(f"  {lv['row']:<20} + {lv['adds']:<24} [{lv['after'] or '-'}]  "
                     f"{common.fmt(lv['steps_per_s'], ' it/s')}  {gain}")
    return lines


SECTION = registry.register(registry.Section(
    name="step", run=run, summary=summary, rows=summary_rows, report_lines=report_lines,
    header=("bench", "row", "status", "steps/s", "ms median (p10-p90)", "syncs/step", "peak mem", "phases (ms)")))
