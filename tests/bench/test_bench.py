"""`fastdream bench all --quick --json F` runs on the CPU end to end: valid JSON with every summary key, the step
section driven by Trainer.train_step; the bench's own helpers (sync counter, timing, merge, registry)."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from fastdream import cli
from fastdream.training.trainer import Trainer

# Summary keys a CPU run cannot fill: CUDA-only peers (nerfacc, tcnn), the CUDA sync counter, GPU memory, and the
# nominal TFLOP/s (defined for SD-2.1-base sizes only).
CPU_NONE = {"march_composite_vs_nerfacc", "march_composite_fixed_vs_nerfacc", "march_composite_host_syncs",
            "encoding_vs_tcnn", "encoding_fraction_of_bandwidth", "step_vs_nerfacc_renderer",
            "trainer_host_syncs_per_step", "baseline_host_syncs_per_step", "trainer_peak_memory_bytes",
            "step_peak_memory_bytes", "step_achieved_tflops_nominal"}
RATIO_FIELDS = ("march_composite_vs_nerfacc", "march_composite_vs_torch", "march_composite_fixed_vs_nerfacc",
                "march_composite_fixed_vs_torch", "encoding_vs_tcnn", "encoding_vs_torch",
                "step_vs_torch_renderer", "step_vs_nerfacc_renderer", "trainer_vs_baseline")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """The quick run of every section, counting the calls of Trainer.train_step made during it."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    calls = {"n": 0}
    original = Trainer.train_step

    def counted(self):
        calls["n"] += 1
        return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "train_step", counted)
        assert cli.main(["bench", "all", "--quick", "--json", str(out)]) == 0
    return json.loads(out.read_text()), calls["n"]


@pytest.mark.slow
def test_quick_bench_json_has_environment_and_every_summary_key_with_a_value(quick_results):
    r, _ = quick_results
    assert r["schema"] == "fastdream-bench/1" and r["quick"] is True
    env = r["environment"]
    for key in ("card", "torch", "cuda_runtime", "commit", "command", "date_utc"):
        assert key in env
    assert env["torch"] == torch.__version__ and "bench" in env["command"]
    s = r["summary"]
    for key in ("trainer_steps_per_s", "trainer_fast_steps_per_s", "trainer_host_syncs_per_step",
                "trainer_peak_memory_bytes", "trainer_vs_baseline", "encoding_vs_tcnn", "levers", *RATIO_FIELDS):
        assert key in s, key
    missing = [k for k, v in s.items() if v is None and k not in CPU_NONE]
    assert missing == [], missing
    for key in RATIO_FIELDS:
        v = s[key]
        assert v is None or (isinstance(v, float) and math.isfinite(v) and v > 0), (key, v)
    assert s["trainer_fast_recipe"]["row"] in ("fast", "fast_compile")
    levers = {lv["row"]: lv for lv in s["levers"]}
    for row in ("lever_plain", "lever_fused_adam", "lever_channels_last", "default", "lever_tiny_encoder",
                "lever_cuda_graphs", "fast", "fast_latent"):
        assert levers[row]["status"] == "ok" and levers[row]["steps_per_s"] > 0, row
    assert levers["lever_compile"]["status"] == "unavailable"  # torch.compile rows run on CUDA only
    mc = r["kernels"]["march_composite"]["backends"]
    assert mc["torch"]["status"] == "ok" and mc["fastdream_fixed"]["status"] == "ok"
    assert mc["nerfacc"]["status"] == "unavailable"  # CUDA-only peer on a CPU run


@pytest.mark.slow
def test_quick_step_rows_are_driven_by_the_trainers_own_step(quick_results):
    r, calls = quick_results
    rows = r["step"]["variants"]
    trainer_rows = [n for n, v in rows.items() if v.get("status") == "ok" and n != "baseline"]
    assert len(trainer_rows) >= 9
    for name in trainer_rows:
        row = rows[name]
        assert row["driver"] == "fastdream.training.trainer.Trainer.train_step", name
        assert row["steps_per_s"] > 0 and row["p10_ms"] <= row["median_ms"] <= row["p90_ms"], name
        assert set(row["phases_ms"]) == {"render_fwd", "vae_encode", "unet", "vae_backward", "render_backward",
                                         "optimizer", "grid_update"}
        assert all(v >= 0 for v in row["phases_ms"].values()) and row["phases_sum_ms"] > 0
        assert row["python_sync_calls_per_step"] is not None
    assert rows["fast_latent"]["phases_ms"]["vae_encode"] == 0.0  # latent warm-up steps skip the encoder
    # every timed, sync-counted and profiled step of those rows went through Trainer.train_step (+ e2e's 5 steps)
    assert calls >= sum(rows[n]["train_steps_run"] for n in trainer_rows)
    assert rows["baseline"]["driver"] == "bench.baseline.BaselineStep.train_step"
    assert rows["baseline"]["steps_per_s"] > 0


def test_unknown_section_and_unknown_step_variant_are_rejected(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "nope"])
    assert cli.main(["bench", "step", "--quick", "--variants", "warp_drive"]) == 2
    assert "warp_drive" in capsys.readouterr().err


def test_variant_groups_and_the_lever_ladder_are_consistent():
    from bench import step, step_variants

    assert step.select(None) == step.select("all") == list(step.ORDER)
    assert step.select("eager") == [n for n in step.ORDER if n not in ("lever_compile", "fast_compile")]
    assert step.select("compiled,default") == ["default", "fast_compile", "lever_compile"]
    names = set(step_variants.VARIANTS)
    assert set(step.ORDER) == names | {"baseline"}
    for row in step_variants.LADDER:
        after = step_variants.VARIANTS[row].after
        assert after is None or after in names, row


def test_sync_counter_counts_python_sync_calls():
    from bench import common

    x = torch.arange(4.0)
    with common.count_host_syncs(torch.device("cpu")) as counted:
        x.sum().item()
        x.tolist()
        bool(x[0] > 1)
    assert counted["python_sync_calls"] == 3
    assert counted["host_syncs"] is None  # no device: nothing for the CUDA sync debug mode to see
    assert torch.Tensor.item is not None and x.sum().item() == 6.0  # patches removed


def test_time_fn_median_and_phase_clock():
    from bench import common

    calls = []
    t = common.time_fn(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=5)
    assert len(calls) == 7 and len(t.times_ms) == 5 and t.median_ms >= 0
    clock = common.PhaseClock(torch.device("cpu"))
    for _ in range(3):
        clock.start()
        torch.ones(1000).sum()
        clock.mark("a")
        clock.mark("b")
    totals = clock.totals_ms()
    assert set(totals) == {"a", "b"} and all(v >= 0 for v in totals.values())


def test_time_steps_reports_spread_and_throughput():
    from bench.step_timing import time_steps

    out = time_steps(lambda: torch.ones(100).sum(), torch.device("cpu"), 5)
    assert out["steps"] == 5 and out["steps_per_s"] > 0 and out["p10_ms"] <= out["median_ms"] <= out["p90_ms"]


def test_merge_results_merges_step_rows_from_two_processes(tmp_path):
    from bench import common, sections

    a = {"schema": common.SCHEMA, "environment": {"card": "x"}, "kernels": {"march_composite": {
        "ratios": {"vs_nerfacc": 3.5, "vs_torch": 40.0}}, "encoding": {"ratios": {"vs_tcnn": 0.9}}},
        "step": {"variants": {"default": {"status": "ok", "steps_per_s": 30.0, "host_syncs_per_step": 0.0},
                              "baseline": {"status": "ok", "steps_per_s": 10.0},
                              "torch_renderer": {"status": "ok", "steps_per_s": 20.0},
                              "fast": {"status": "ok", "steps_per_s": 60.0}}}}
    b = {"schema": common.SCHEMA, "environment": {"card": "x"},
         "step": {"variants": {"fast_compile": {"status": "ok", "steps_per_s": 90.0}}}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    merged = sections.merge_results([str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                                     str(tmp_path / "missing")], str(tmp_path / "m.json"))
    s = json.loads((tmp_path / "m.json").read_text())["summary"]
    assert s["march_composite_vs_nerfacc"] == 3.5 and s["encoding_vs_tcnn"] == 0.9
    assert s["trainer_vs_baseline"] == 3.0 and s["step_vs_torch_renderer"] == 1.5
    assert s["trainer_fast_steps_per_s"] == 90.0 and s["trainer_fast_recipe"]["row"] == "fast_compile"
    assert s["trainer_host_syncs_per_step"] == 0.0 and s["encoding_vs_torch"] is None
    assert set(merged["step"]["variants"]) == {"default", "baseline", "torch_renderer", "fast", "fast_compile"}
    assert len(merged["merge_errors"]) == 1
    assert "default" in sections.report(merged)


@pytest.mark.cuda
def test_cuda_sync_counter_sees_item(cuda_device):
    from bench import common

    x = torch.ones(8, device=cuda_device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with common.count_host_syncs(cuda_device) as counted:
            x.sum().item()
            y = x * 2  # no sync
    assert counted["host_syncs"] >= 1 and y.shape == (8,)
    assert any("test_bench.py" in site for site in counted["sync_sites"])


def test_sanitize_workload_runs_every_op_on_cpu(capsys):
    """bench/sanitize_ops.py (the compute-sanitizer workload of gpu_check.sh) calls the real APIs correctly."""
    from bench import sanitize_ops

    assert sanitize_ops.main(["--cpu"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert f"{len(sanitize_ops.CHECKS)}/{len(sanitize_ops.CHECKS)} without error" in out
