"""Does the builtin prior itself want the flat bottoms where the recipe leaves them? Its denoising error (a likelihood
proxy: lower = more likely) of the same views with the bottom at different heights, on common random numbers (the
same cameras, timesteps and noise for every variant, so differences are not sampling noise).

    python bench/prior_bottom_score.py exact --shape cylinder [--deltas -0.06,-0.03,0,0.03,0.06,0.09]
    python bench/prior_bottom_score.py run RUN_DIR --shape cylinder --size 0.523 [--cuts 1.0,1.05,1.1]
    python bench/prior_bottom_score.py zscale RUN_DIR --shape cylinder [--scales 0.88,0.91,0.94,0.97,1.0]

- `exact`: exact renders of the primitive at size 0.5 whose lower half is stretched by delta (world units: delta
  0.06 puts the bottom 0.06 below the truth's, the top stays).
- `run`: a trained run's renders, then the same field with all density below z = -cut·size removed (the truth's
  bottom at cut 1.0), then the exact truth at `size` (the eval's fitted size).
- `zscale`: a trained run's field squeezed vertically about the origin by each scale, and the off-surface area of
  its mesh squeezed the same way (the truth refitted as `fastdream eval` fits it): does the prior's likelihood pick
  the proportions the truth has?

Each line: the mean error over all draws, then over t in 0.02-0.2 / 0.2-0.5 / 0.5-0.98. The cameras are the
training distribution; captions and elevation guidance as a run on builtin:shapes has them; conditional prediction
(guidance scale 1).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastdream.cameras import CameraConfig, CameraSampler  # noqa: E402
from fastdream.config import make_config  # noqa: E402
from fastdream.guidance.base import ViewContext  # noqa: E402
from fastdream.guidance.pixel import PixelDiffusionGuidance  # noqa: E402
from fastdream.priors.shapes_data import (AMBIENT_RATIO, TRACE_SIZE, caption, compose,  # noqa: E402
                                          render_geometry, view_word)
from fastdream.procedural import COLORS, Scene, Shape, sdf_primitive  # noqa: E402

T_BANDS = ((0.02, 0.2), (0.2, 0.5), (0.5, 0.98))
REF_SIZE = TRACE_SIZE  # the stretched primitive is modelled where the prior's renderer traces
SUPERSAMPLE = 2  # as the prior's data: 2x2 rays per pixel, averaged


class StretchedPrimitive(Scene):
    """A primitive of size REF_SIZE whose lower half (z < 0) is stretched so its bottom sits `delta` lower."""

    def __init__(self, kind: str, delta: float):
        super().__init__([Shape(kind, "white", size=REF_SIZE)])
        if not delta > -REF_SIZE:
            raise ValueError(f"delta must be > -{REF_SIZE}, got {delta}")
        self.kind, self.delta = kind, float(delta)

    def _all_sdf(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.where(x[:, 2] < 0, x[:, 2] * REF_SIZE / (REF_SIZE + self.delta), x[:, 2])
        # the stretch makes the mapped SDF up to REF_SIZE / (REF_SIZE + delta) too large: scale it down so sphere
        # tracing never steps through the surface (the zero set is unchanged)
        safety = min(1.0, (REF_SIZE + self.delta) / REF_SIZE)
        return safety * sdf_primitive(self.kind, torch.stack([x[:, 0], x[:, 1], z], -1), REF_SIZE)[:, None]


def render_stretched(kind: str, delta: float, cams, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, shade) [B,1,R,R] of StretchedPrimitive, rendered as the prior's data are (render_geometry)."""
    return render_geometry(kind, cams.c2w, cams.fovy_deg, cams.light_position,
                           torch.full((cams.c2w.shape[0],), REF_SIZE), resolution, SUPERSAMPLE,
                           scene=StretchedPrimitive(kind, delta))


class Scorer:
    """The prior's denoising error of [V,3,R,R] model-space images on fixed (t, noise) draws."""

    def __init__(self, kind: str, color: str, views: int, draws: int, seed: int = 0):
        self.guidance = g = PixelDiffusionGuidance.from_builtin("shapes")
        rule = make_config("fast", **{"guidance.spec": "builtin:shapes"}).guidance
        g.use_elevation_guidance(rule.elevation_guidance)
        self.cams = CameraSampler(CameraConfig()).sample(views, torch.Generator().manual_seed(seed))
        words = view_word(self.cams.elevation_deg, self.cams.azimuth_deg, overhead_threshold=rule.overhead_elevation,
                          front_range=rule.front_azimuth_range)
        prompts = g.encode_prompts([caption(kind, color, w) for w in words])
        self.cond, self.uncond = prompts["cond"], prompts["uncond"]
        g.set_view(ViewContext(cameras=self.cams, height=g.resolution, width=g.resolution, shading=[],
                               ambient_ratio=[], background=torch.ones(views, 1, 1, 3)))
        gen = torch.Generator().manual_seed(seed + 1)
        n = g.num_train_timesteps
        self.t = torch.randint(int(0.02 * n), int(0.98 * n), (draws, views), generator=gen)
        self.noise = torch.randn(draws, views, 3, g.resolution, g.resolution, generator=gen)
        self.lambertian = torch.arange(views) % 2 == 0  # the fast recipe: half lambertian, half flat albedo
        self.rgb = torch.tensor(COLORS[color], dtype=torch.float32)

    def compose(self, alpha: torch.Tensor, shade: torch.Tensor) -> torch.Tensor:
        v = alpha.shape[0]
        return compose(alpha, shade, self.rgb.expand(v, 3), torch.ones(v, 3), self.lambertian) * 2 - 1

    @torch.no_grad()
    def errors(self, x: torch.Tensor) -> list[float]:
        """[mean, mean per T_BANDS band] of |ε̂ − ε|² over every draw."""
        g, err = self.guidance, torch.zeros(self.t.shape)
        for k in range(self.t.shape[0]):
            a = g.alphas_cumprod[self.t[k]][:, None, None, None]
            x_t = a.sqrt() * x + (1 - a).sqrt() * self.noise[k]
            eps = g.guide_elevation(g.predict_noise(x_t, self.t[k], self.cond, self.uncond, 1.0), x_t, a, 1)
            err[k] = ((eps - self.noise[k]) ** 2).mean((1, 2, 3))
        tf = self.t.float() / g.num_train_timesteps
        return [float(err.mean())] + [float(err[(tf >= lo) & (tf < hi)].mean()) for lo, hi in T_BANDS]


def warped(forward, forward_with_normals, z_scale: float = 1.0, z_cut: float | None = None):
    """(forward, forward_with_normals) of a field squeezed (z_scale < 1) or stretched vertically about the origin,
    with every density below z_cut (world) removed. Normals follow the warp (n ∝ (nx, ny, nz / z_scale))."""
    inv = torch.tensor([1.0, 1.0, 1.0 / z_scale])

    def keep(x):
        return torch.ones_like(x[:, 0]) if z_cut is None else (x[:, 2] >= z_cut).to(x.dtype)

    def fwd(x):
        sigma, albedo = forward(x * inv.to(x))
        return sigma * keep(x), albedo

    def fwd_n(x):
        sigma, albedo, normals = forward_with_normals(x * inv.to(x))
        return sigma * keep(x), albedo, torch.nn.functional.normalize(normals * inv.to(normals), dim=-1)
    return fwd, fwd_n


def run_renders(scene, scorer: Scorer, z_cut: float | None = None, z_scale: float = 1.0) -> torch.Tensor:
    """A trained scene's model-space renders at the scorer's cameras (2x2 supersampled), optionally warped (see
    `warped`). The occupancy grid is opened while warped, so a stretched field is not clipped by it."""
    field, grid, cams, res = scene.field, scene.grid, scorer.cams, scorer.guidance.resolution
    field.forward, field.forward_with_normals = warped(field.forward, field.forward_with_normals, z_scale, z_cut)
    occupied = grid.occupied.clone()
    if z_scale != 1.0:
        grid.set_occupied(torch.ones_like(occupied))
    try:
        images = []
        for b in range(cams.c2w.shape[0]):
            out = scene.render_camera(cams.c2w[b], float(cams.fovy_deg[b]), res * SUPERSAMPLE, res * SUPERSAMPLE,
                                      shading="lambertian" if scorer.lambertian[b] else "albedo",
                                      light_position=cams.light_position[b], ambient_ratio=AMBIENT_RATIO)
            images.append(torch.nn.functional.avg_pool2d(out["color"].permute(2, 0, 1)[None], SUPERSAMPLE))
    finally:
        del field.forward, field.forward_with_normals
        grid.set_occupied(occupied)
    return torch.cat(images) * 2 - 1


def z_scale_rows(run, scorer: Scorer, scales: list[float]):
    """(scale, errors, off-surface figures) per z scale of a loaded run (fastdream.checkpoint.load_run): the prior's
    error of the squeezed field, and the eval's off-surface of the run's mesh squeezed the same way (truth refitted,
    as `fastdream eval` fits it)."""
    from fastdream.eval.truth_report import run_mesh, score_run_truth
    from fastdream.eval.views import RenderedRun

    vertices, faces, source = run_mesh(run.run_dir)
    for scale in scales:
        errors = scorer.errors(run_renders(run.scene, scorer, z_scale=scale))
        squeezed = vertices * np.array([1.0, 1.0, scale])
        truth = score_run_truth(run.run_dir, RenderedRun(run.run_dir, run.prompt, None),
                                mesh=(squeezed, faces, source))
        yield scale, errors, truth


def _line(name: str, errs: list[float]) -> str:
    return f"| {name} | {errs[0]:.5f} | " + " | ".join(f"{e:.5f}" for e in errs[1:]) + " |"


def _exact_mode(args, scorer: Scorer) -> None:
    for delta in (float(v) for v in args.deltas.split(",")):
        x = scorer.compose(*render_stretched(args.shape, delta, scorer.cams, scorer.guidance.resolution))
        print(_line(f"exact {args.shape}, bottom {delta:+.2f}", scorer.errors(x)), flush=True)


def _run_mode(args, scorer: Scorer) -> None:
    from fastdream.checkpoint import load_run

    run = load_run(args.run_dir)
    scene = run.scene
    if args.mode == "zscale":
        for scale, errors, truth in z_scale_rows(run, scorer, [float(v) for v in args.scales.split(",")]):
            by = truth["off_surface_by_height"]
            print(_line(f"the run's field, z x {scale:g}", errors) + f" {100 * truth['off_surface']:.1f} "
                  f"({100 * by['bottom']:.1f} / {100 * by['middle']:.1f} / {100 * by['top']:.1f}) |", flush=True)
        return
    cams, n = scorer.cams, args.views
    exact = scorer.compose(*render_geometry(args.shape, cams.c2w, cams.fovy_deg, cams.light_position,
                                            torch.full((n,), args.size), scorer.guidance.resolution))
    print(_line(f"exact truth, size {args.size:g}", scorer.errors(exact)), flush=True)
    print(_line("the run's field", scorer.errors(run_renders(scene, scorer))), flush=True)
    for cut in (float(v) for v in args.cuts.split(",")):
        x = run_renders(scene, scorer, z_cut=-cut * args.size)
        print(_line(f"the run's field, cut at z = -{cut:g}·size", scorer.errors(x)), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["exact", "run", "zscale"])
    p.add_argument("run_dir", nargs="?")
    p.add_argument("--shape", default="cylinder")
    p.add_argument("--color", default="red")
    p.add_argument("--size", type=float, default=REF_SIZE, help="run mode: the eval's fitted size")
    p.add_argument("--deltas", default="-0.06,-0.03,0,0.03,0.06,0.09")
    p.add_argument("--cuts", default="1.0,1.05,1.1")
    p.add_argument("--scales", default="0.88,0.91,0.94,0.97,1.0")
    p.add_argument("--views", type=int, default=64)
    p.add_argument("--draws", type=int, default=8)
    args = p.parse_args(argv)
    if args.mode != "exact" and not args.run_dir:
        p.error(f"{args.mode} mode needs RUN_DIR")
    scorer = Scorer(args.shape, args.color, args.views, args.draws)
    head = "| renders | error | t 0.02-0.2 | t 0.2-0.5 | t 0.5-0.98 |"
    if args.mode == "zscale":
        print(head + " off-surface % (bottom / middle / top) |\n|---|---|---|---|---|---|")
    else:
        print(head + "\n|---|---|---|---|---|")
    (_exact_mode if args.mode == "exact" else _run_mode)(args, scorer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
