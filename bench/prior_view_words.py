"""Does a shapes prior draw the camera elevation its caption names? Samples "a red SHAPE, WORD view" for each view
word and reads each sample's elevation off the best-matching exact silhouette.

    python bench/prior_view_words.py [--priors shapes,MODEL_DIR] [--shapes cube,cylinder,torus,cone] [--samples 16]

For every sample, the elevation of the reference view (exact renders of that shape from the training camera
distribution at the prior's central size, many elevations) whose silhouette has the highest IoU with the sample's
foreground. A prior whose data said "overhead view" above E degrees should give overhead samples a mean elevation
well above E and front / side / back samples one below it; a prior that ignores the word gives the same figure for
every word (the same seeds are used for every word, so equal images mean the word changed nothing).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastdream.cameras import CameraConfig, CameraSampler  # noqa: E402
from fastdream.eval.procedural import _foreground, estimate_background  # noqa: E402
from fastdream.priors.model import ShapesPrior, builtin_path  # noqa: E402
from fastdream.priors.shapes_data import caption, render_geometry  # noqa: E402


def references(shape: str, n: int, resolution: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """(coverage [n,P] of exact renders at size 0.5, their camera elevations [n] in degrees)."""
    cams = CameraSampler(CameraConfig()).sample(n, torch.Generator().manual_seed(seed))
    alpha, _ = render_geometry(shape, cams.c2w, cams.fovy_deg, cams.light_position, torch.full((n,), 0.5), resolution)
    return alpha[:, 0].flatten(1).float(), cams.elevation_deg.float()


def matched_elevation(images: torch.Tensor, ref_alpha: torch.Tensor, ref_elevation: torch.Tensor) -> torch.Tensor:
    """[B] elevation of the reference whose silhouette best matches each image's foreground (soft IoU)."""
    fg = _foreground(images, estimate_background(images)).float().flatten(1)
    inter = fg @ ref_alpha.T
    union = fg.sum(1, keepdim=True) + ref_alpha.sum(1)[None] - inter
    return ref_elevation[(inter / union.clamp_min(1e-6)).argmax(1)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--priors", default="shapes",
                   help="pixel priors: builtin names (folders in fastdream/priors/weights) or model folders")
    p.add_argument("--shapes", default="cube,cylinder,torus,cone")
    p.add_argument("--words", default="front,side,overhead")
    p.add_argument("--samples", type=int, default=16, help="samples per (prior, shape, word)")
    p.add_argument("--references", type=int, default=600, help="exact reference views per shape")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps")
    p.add_argument("--guidance-scale", type=float, default=3.0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    words = args.words.split(",")
    rows = []
    print(f"| prior | shape | {' | '.join(words)} |\n|---|---|{'---|' * len(words)}")
    for name in args.priors.split(","):
        prior = ShapesPrior.from_pretrained(name if Path(name).is_dir() else builtin_path(name))
        for shape in args.shapes.split(","):
            ref_alpha, ref_el = references(shape, args.references, prior.resolution)
            row = {"prior": name, "shape": shape}
            for word in words:
                gen = torch.Generator().manual_seed(0)  # the same draws for every word
                images = prior.sample([caption(shape, "red", word)] * args.samples, steps=args.steps,
                                      guidance_scale=args.guidance_scale, generator=gen)
                row[word] = float(matched_elevation(images.float().clamp(0, 1), ref_alpha, ref_el).mean())
            rows.append(row)
            print(f"| {name} | {shape} | {' | '.join(f'{row[w]:.1f}' for w in words)} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
