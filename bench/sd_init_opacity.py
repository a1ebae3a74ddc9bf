"""Mean rendered opacity of the first training views for field inits (CPU, seconds): does the background show?

    python bench/sd_init_opacity.py

Renders 4 training cameras at 64x64 from the default preset's camera distribution (seed 0) before any step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastdream.cameras import CameraSampler  # noqa: E402
from fastdream.config import make_config  # noqa: E402
from fastdream.scene.scene import Scene  # noqa: E402
from fastdream.training.step import render_batch  # noqa: E402

INITS = {
    "paper (trunc_exp, gaussian 10/0.5)": ["field.options.density_activation=trunc_exp",
                                          "field.options.blob_shape=gaussian"],
    "threestudio dreamfusion-sd (softplus, cone 10/0.5): the SD default": [],
    "trunc_exp, cone 10/0.5": ["field.options.density_activation=trunc_exp"],
}


def opacity_at_init(overrides: list[str]) -> dict:
    torch.manual_seed(0)
    cfg = make_config("default", prompt="x", overrides=["field.options.log2_hashmap_size=14", *overrides])
    scene = Scene.from_config(cfg)
    gen = torch.Generator().manual_seed(0)
    cams = CameraSampler(cfg.camera).sample(4, gen)
    with torch.no_grad():
        batch = render_batch(scene, cams, ["albedo"] * 4, [0.1] * 4, 64, 64, stratified=False, need_samples=False,
                             generator=gen)
    o = batch.opacity
    return {"mean": float(o.mean()), "centre": float(o[:, 28:36, 28:36].mean()), "corner": float(o[:, :8, :8].mean())}


def main() -> None:
    print("| init | mean opacity | centre 8x8 | corner 8x8 |\n|---|---|---|---|")
    for name, overrides in INITS.items():
        r = opacity_at_init(overrides)
        print(f"| {name} | {r['mean']:.3f} | {r['centre']:.3f} | {r['corner']:.3f} |")


if __name__ == "__main__":
    main()
