"""The README job's recipe, end to end on the CPU: `fastdream generate "a red cube" --model builtin:shapes
--preset fast` must train an object of the prior's size with background around it, judged by the exact truth. The
same short run with builtin:shapes-sd goes through Stable Diffusion's own code path (VAE encode, latent noise, UNet
with CFG, CLIP text encoder), so a regression there fails here too.

Before the fast recipe got its sparsity weight and white background, this run grew a slab that filled the field box
(fitted size 0.99, every held-out view fully opaque): the assertions below fail it. Before it guided at 7.5 with 4
noise draws per render, half the cube's surface lay more than 0.05 off the true faces (49.5% builtin:shapes, 47.2%
builtin:shapes-sd); then 18.4% and 35.2% (bench/results/2026-12-02-cpu-recipe-truth*.md). builtin:shapes now also
guides toward each view's camera elevation (its folder's elevation classifier): 9.2%
(bench/results/2026-12-03-cpu-recipe-truth-builtin.md); at 8 then 32 from half the run 12.3%, at 8 then 48 17.7%
(...-builtin-eg8to32.md, ...-eg8to48.md); with normal smoothness 30 and 8 then 48 from a quarter (shipped) 10.3%
(bench/results/2026-12-04-cpu-recipe-truth-builtin.md). OFF_SURFACE_CEILING fails every recipe before the elevation
guidance and the 8-then-48 one without the smoothness. The issue's bar is 5%, which the cube does not meet yet.
"""
from __future__ import annotations

import json

import pytest

from fastdream.cli import main

pytestmark = pytest.mark.slow

# builtin:shapes-sd's red cube lay 35-45% off over seeds 0-2 before its elevation guidance (which fixes its tori
# and cones, bench/results/2026-12-03-cpu-recipe-truth-shapes-sd-builtin.md); this very run reads 39.2%
OFF_SURFACE_CEILING = {"builtin:shapes": 0.15, "builtin:shapes-sd": 0.45}


@pytest.mark.parametrize("model", ["builtin:shapes", "builtin:shapes-sd"])
def test_fast_recipe_trains_a_cube_of_the_priors_size(tmp_path, model):
    run = tmp_path / "red-cube"
    assert main(["generate", "a red cube", "--model", model, "--preset", "fast", "--device", "cpu",
                 "--no-export", "--out", str(run)]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--procedural", "--device", "cpu", "--json", str(report)]) == 0
    row = json.loads(report.read_text())["runs"][0]
    truth = row["truth"]
    assert truth["truth"] == f"{model} cube"
    assert 0.3 <= truth["fit"]["fitted_size"] <= 0.75, truth["fit"]  # the prior's 0.4-0.6, +-25%
    assert truth["chamfer_mesh_to_truth_pct"] <= 2.5 and truth["chamfer_truth_to_mesh_pct"] <= 2.5, truth
    assert truth["silhouette_iou"] >= 0.8, truth
    assert truth["validity"]["watertight"] and truth["validity"]["components"] == 1, truth["validity"]
    assert truth["off_surface"] <= OFF_SURFACE_CEILING[model], truth
    assert row["rank"] == 1, row["top"][:3]  # and R@1 still names it

    # the late training views show background: mean opacity well below a filled frame (a true 0.5 cube covers
    # ~0.6 of a view on average over the training cameras; the slab covered 1.0 from step 250 on)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    iters = max(r["step"] for r in rows)
    late = [r["opacity_mean"] for r in rows if "opacity_mean" in r and r["step"] > iters // 2]
    assert len(late) >= 10 and sum(late) / len(late) < 0.8, late
