"""The `kernels` section: march + composite (bench/march_bench.py) and the hash-grid encoding (bench/encoding_bench.py),
forward + backward, each against its peers in the same run."""
from __future__ import annotations

import logging

import torch

from bench import common, encoding_bench, march_bench, registry

log = logging.getLogger("fastdream.bench")


def run(device: torch.device, quick: bool, on_progress=None, **options) -> dict:
    """march + composite, then the encoding; on_progress(partial result) after each."""
    del options
    bandwidth = common.measure_bandwidth(device)
    result = {"device_bandwidth_measured_bytes_per_s": bandwidth,
              "bandwidth_note": "device-to-device copy of 1 GiB, bytes read + written, median of 10",
              "host_sync_note": common.SYNC_COUNT_NOTE}
    try:
        result["march_composite"] = march_bench.bench_march_composite(device, quick)
    except Exception as exc:  # noqa: BLE001 - keep the encoding figures even if this section breaks
        log.warning("march+composite failed: %s", exc)
        result["march_composite"] = {**common.failed(exc), "backends": {}, "ratios": {}}
    if on_progress is not None:
        on_progress(result)
    try:
        result["encoding"] = encoding_bench.bench_encoding(device, quick, bandwidth)
    except Exception as exc:  # noqa: BLE001
        log.warning("encoding failed: %s", exc)
        result["encoding"] = {**common.failed(exc), "backends": {}, "ratios": {}}
    return result


def summary(res: dict) -> dict:
    mc, enc = res.get("march_composite") or {}, res.get("encoding") or {}
    mcr, encr = mc.get("ratios") or {}, enc.get("ratios") or {}
    ours_mc = (mc.get("backends") or {}).get("fastdream") or {}
    ours_enc = (enc.get("backends") or {}).get("fastdream") or {}
    return {"march_composite_rays_per_s": ours_mc.get("rays_per_s"),
            "march_composite_host_syncs": ours_mc.get("host_syncs"),
            **{f"march_composite_{k}": mcr.get(k) for k in march_bench.RATIO_KEYS},
            "encoding_points_per_s": ours_enc.get("points_per_s"),
            "encoding_fraction_of_bandwidth": ours_enc.get("fraction_of_bandwidth"),
            "encoding_vs_tcnn": encr.get("vs_tcnn"), "encoding_vs_torch": encr.get("vs_torch")}


def summary_rows(res: dict) -> list[list[str]]:
    rows = []
    for name, r in res.get("march_composite", {}).get("backends", {}).items():
        rows.append(["march+composite", name, r.get("status", "?"), common.fmt(r.get("rays_per_s"), "rays/s"),
                     common.fmt(r.get("samples_per_s"), "samples/s"), str(r.get("host_syncs", "-")),
                     str(r.get("python_sync_calls", "-")), r.get("reason", "")[:60]])
    for name, r in res.get("encoding", {}).get("backends", {}).items():
        rows.append(["hash encode", name, r.get("status", "?"), common.fmt(r.get("points_per_s"), "pts/s"),
                     common.fmt(r.get("effective_bytes_per_s"), "B/s"), "-", "-", r.get("reason", "")[:60]])
    return rows


SECTION = registry.register(registry.Section(
    name="kernels", run=run, summary=summary, rows=summary_rows,
    header=("bench", "backend", "status", "throughput", "samples|bytes", "syncs", "py-syncs", "reason")))
