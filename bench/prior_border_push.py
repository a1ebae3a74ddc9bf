"""Where does the builtin prior push an exact render? The mean SDS gradient of exact renders of each primitive (the
size the prior was trained around, the training camera and light distribution) in the 2-pixel bands just outside
the silhouette: below it, above it and beside it.

    python bench/prior_border_push.py [--shapes cube,sphere] [--scales 1,7.5] [--views 48] [--draws 12] [--json FILE]

A positive push means "paint object colour here": the prior wants the object to grow past its true border there.
The renderer's sparsity weight balances a push that is the same on every side; a push that only the band below the
object feels grows geometry under the bottom face, where no training view sees it (the camera never goes below the
bottom face: elevation -10 at radius 1.5-2 is 0.26-0.35 under the centre, a size-0.5 object's bottom is 0.5 under).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastdream.cameras import CameraConfig, CameraSampler  # noqa: E402
from fastdream.config import make_config  # noqa: E402
from fastdream.guidance.pixel import PixelDiffusionGuidance  # noqa: E402
from fastdream.guidance.view_prompts import FRONT_AZIMUTH_RANGE, OVERHEAD_ELEVATION  # noqa: E402
from fastdream.guidance.base import ViewContext  # noqa: E402
from fastdream.priors.shapes_data import AMBIENT_RATIO, caption, compose, render_geometry, view_word  # noqa: E402
from fastdream.procedural import COLORS, PRIMITIVES  # noqa: E402

BAND = 2  # pixels outside the silhouette's bounding box


def band_means(push: torch.Tensor, alpha: torch.Tensor) -> dict[str, float]:
    """Mean push [B,R,R] over each view's bands below / above / beside its silhouette [B,R,R] (bands that leave the
    frame are skipped)."""
    out = {"below": [], "above": [], "beside": []}
    r = alpha.shape[-1]
    for p, a in zip(push, alpha > 0.5):
        rows, cols = np.nonzero(a.any(1).numpy())[0], np.nonzero(a.any(0).numpy())[0]
        if rows.size == 0:
            continue
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        if r1 + BAND < r:
            out["below"].append(float(p[r1 + 1:r1 + 1 + BAND, c0:c1 + 1].mean()))
        if r0 - BAND >= 0:
            out["above"].append(float(p[r0 - BAND:r0, c0:c1 + 1].mean()))
        if c0 - BAND >= 0 and c1 + BAND < r:
            left, right = p[r0:r1 + 1, c0 - BAND:c0], p[r0:r1 + 1, c1 + 1:c1 + 1 + BAND]
            out["beside"].append(float(0.5 * (left.mean() + right.mean())))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}


def border_push(guidance, shape: str, color: str, scale: float, views: int, draws: int, seed: int = 0,
                elevation_range: tuple[float, float] | None = None,
                overhead_elevation: float = OVERHEAD_ELEVATION, front_range: float = FRONT_AZIMUTH_RANGE) -> dict:
    """{below, above, beside}: mean push x 1000 of `views` exact renders at size 0.5, `draws` (t, noise) each, from
    the training camera distribution (or only its elevations in `elevation_range`), captioned by the view rule
    (overhead_elevation, front_range) a run on the prior prompts with."""
    camera = CameraConfig() if elevation_range is None else CameraConfig(elevation_range=elevation_range)
    cams = CameraSampler(camera).sample(views, torch.Generator().manual_seed(seed))
    alpha, shade = render_geometry(shape, cams.c2w, cams.fovy_deg, cams.light_position, torch.full((views,), 0.5),
                                   guidance.resolution)
    rgb = torch.tensor(COLORS[color], dtype=torch.float32)
    lambertian = torch.arange(views) % 2 == 0  # the fast recipe's shading: half lambertian, half flat albedo
    images = compose(alpha, shade, rgb.expand(views, 3), torch.ones(views, 3), lambertian).requires_grad_(True)
    # each view's caption by the trainer's view-word rule, as the prior's data and a training run have it
    words = view_word(cams.elevation_deg, cams.azimuth_deg, overhead_threshold=overhead_elevation,
                      front_range=front_range)
    prompts = guidance.encode_prompts([caption(shape, color, w) for w in words])
    guidance.set_view(ViewContext(cameras=cams, height=guidance.resolution, width=guidance.resolution,
                                  shading=["lambertian" if x else "albedo" for x in lambertian.tolist()],
                                  ambient_ratio=[AMBIENT_RATIO] * views, background=torch.ones(views, 1, 1, 3)))
    out = guidance.sds(images, prompts["cond"], prompts["uncond"], guidance_scale=scale, noise_samples=draws,
                       generator=torch.Generator().manual_seed(seed + 1))
    out.loss.backward()
    # a gradient step moves the pixels along -grad; project it on (object colour - white background)
    towards_object = (rgb - 1.0) / (rgb - 1.0).norm().clamp_min(1e-6)
    push = -(images.grad * towards_object[None, :, None, None]).sum(1)
    return {k: 1e3 * v for k, v in band_means(push, alpha[:, 0]).items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=",".join(PRIMITIVES))
    p.add_argument("--color", default="red")
    p.add_argument("--scales", default="1,7.5", help="classifier-free guidance scales")
    p.add_argument("--views", type=int, default=48)
    p.add_argument("--draws", type=int, default=12, help="(t, noise) draws per view")
    p.add_argument("--prior", default="shapes")
    p.add_argument("--elevations", default=None,
                   help="elevation bands LO:HI,... (degrees) to measure separately; default: the training range")
    p.add_argument("--elevation-guidance", type=float, default=None,
                   help="classifier guidance toward the camera's elevation (default: the prior's recipe)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    guidance = PixelDiffusionGuidance.from_builtin(args.prior)
    # the view rule a run on this prior prompts with (its kind's recipe and its folder's fastdream.json)
    rule = make_config("fast", **{"guidance.spec": f"builtin:{args.prior}"}).guidance
    guidance.use_elevation_guidance(rule.elevation_guidance if args.elevation_guidance is None
                                    else args.elevation_guidance)
    rows = []
    bands = [None] if args.elevations is None else [tuple(float(v) for v in b.split(":"))
                                                    for b in args.elevations.split(",")]
    print("| shape | guidance scale | elevations | below | above | beside |\n|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        for scale in (float(s) for s in args.scales.split(",")):
            for band in bands:
                r = {"shape": shape, "scale": scale, "elevations": band,
                     **border_push(guidance, shape, args.color, scale, args.views, args.draws, elevation_range=band,
                                  overhead_elevation=rule.overhead_elevation,
                                  front_range=rule.front_azimuth_range)}
                rows.append(r)
                el = "training" if band is None else f"{band[0]:g}..{band[1]:g}"
                print(f"| {shape} | {scale:g} | {el} | {r['below']:+.2f} | {r['above']:+.2f} | {r['beside']:+.2f} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
