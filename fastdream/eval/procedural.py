"""Offline quality metric against procedural ground truth: which shape × colour prompt does an image show?

Two matchers:
- `procedural_scores`: for views with KNOWN cameras (a run's held-out views), render every candidate shape × colour
  at those cameras (a few sizes, best one kept) with `fastdream.procedural.render` and rank candidates by pixel error.
  `summarize` turns a list of those into retrieval R@1, shape accuracy and colour accuracy.
- `classify_samples`: for images with UNKNOWN cameras (2D samples of the prior): colour from pixel statistics of the
  foreground, shape by silhouette matching against a bank of reference silhouettes.
"""
from __future__ import annotations

import re

import torch

from fastdream.procedural import COLORS, PRIMITIVES, rotate_z

__all__ = ["SHAPES", "COLOR_NAMES", "parse_prompt", "estimate_background", "classify_color", "ReferenceBank",
           "classify_samples", "procedural_scores", "summarize"]

SHAPES = tuple(PRIMITIVES)
COLOR_NAMES = tuple(COLORS)
_PALETTE = torch.tensor([COLORS[c] for c in COLOR_NAMES])


def parse_prompt(prompt: str) -> tuple[str, str]:
    """(shape, colour) named in a prompt such as 'a red cube, side view'; ValueError if either is missing."""
    words = re.findall(r"[a-z]+", prompt.lower())
    shapes = [w for w in words if w in SHAPES]
    colors = [w for w in words if w in COLORS]
    if not shapes or not colors:
        raise ValueError(f"prompt {prompt!r} names no procedural shape ({', '.join(SHAPES)}) and colour "
                         f"({', '.join(COLOR_NAMES)})")
    return shapes[0], colors[0]


def estimate_background(images: torch.Tensor) -> torch.Tensor:
    """Background colour [B,3]: the per-channel median of the one-pixel image border of images [B,3,H,W]."""
    border = torch.cat([images[:, :, 0, :], images[:, :, -1, :], images[:, :, 1:-1, 0], images[:, :, 1:-1, -1]], -1)
    return border.median(-1).values


def _foreground(images: torch.Tensor, bg: torch.Tensor, thresh: float = 0.12) -> torch.Tensor:
    """Foreground mask [B,H,W] bool: pixels farther than `thresh` (RGB distance) from the background."""
    return (images - bg[:, :, None, None]).norm(dim=1) > thresh


def classify_color(images: torch.Tensor, bg: torch.Tensor | None = None, min_shade: float = 0.3,
                   top_fraction: float = 0.5, relative: bool = True):
    """Colour index [B] and costs [B,C] for images [B,3,H,W]: for each named colour c, the median over the brightest
    `top_fraction` of the object's interior pixels p of min_{s in [min_shade,1]} |p - s·c|² (a lit surface of c)."""
    images = images.float()
    bg = estimate_background(images) if bg is None else bg.float()
    fg = _foreground(images, bg)
    pal = _PALETTE.to(images.device)  # [C,3]
    p = images.permute(0, 2, 3, 1)[..., None, :]  # [B,H,W,1,3]
    s = ((p * pal).sum(-1) / (pal * pal).sum(-1)).clamp(min_shade, 1.0)  # [B,H,W,C]
    err = (p - s[..., None] * pal).square().sum(-1)  # [B,H,W,C]
    if relative:  # error relative to the pixel's own brightness, so dark pixels still tell hue apart
        err = err / (p.square().sum(-1) + 1e-3)
    # Interior pixels only (edges blend with the background), and the median error, so a few odd pixels cannot win.
    interior = fg.clone()
    interior[:, 1:, :] &= fg[:, :-1, :]
    interior[:, :-1, :] &= fg[:, 1:, :]
    interior[:, :, 1:] &= fg[:, :, :-1]
    interior[:, :, :-1] &= fg[:, :, 1:]
    # The brightest part of the object carries its colour best: dark pixels of any colour look alike (and pick up
    # the background's tint), so judge the upper half of the object by brightness.
    bright = images.amax(1)
    costs = torch.empty(images.shape[0], len(COLOR_NAMES), device=images.device)
    for i in range(images.shape[0]):
        m = interior[i] if interior[i].sum() >= 4 else fg[i]
        if m.sum() == 0:  # nothing stands out from the background: judge every pixel
            m = torch.ones_like(m)
        m = m & (bright[i] >= bright[i][m].quantile(1.0 - top_fraction))
        costs[i] = err[i][m].median(0).values
    return costs.argmin(-1), costs


class ReferenceBank:
    """Reference silhouettes of every primitive from the training camera distribution (coverage alpha [N,R,R])."""

    def __init__(self, resolution: int = 32, per_shape: int = 400, seed: int = 1234, device="cpu"):
        from fastdream.priors.shapes_data import build_bank
        bank = build_bank(per_shape, resolution, seed=seed, device=device, chunk=200)
        self.alpha = bank.alpha.float()[:, 0].to(device)
        self.shape_idx = bank.shape_idx.to(device)
        self.resolution = resolution


def classify_samples(images: torch.Tensor, reference: ReferenceBank, chunk: int = 64):
    """Predicted (shape_idx [B], color_idx [B]) for images [B,3,R,R] in [0,1] with unknown cameras.

    Shape: the reference silhouette with the highest soft IoU against the image's foreground mask.
    """
    images = images.float().to(reference.alpha.device)
    if images.shape[-1] != reference.resolution:
        images = torch.nn.functional.interpolate(images, size=reference.resolution, mode="area")
    bg = estimate_background(images)
    color_idx, _ = classify_color(images, bg)
    fg = _foreground(images, bg).float().flatten(1)  # [B,P]
    ref = reference.alpha.flatten(1)  # [N,P]
    shapes = []
    for i in range(0, fg.shape[0], chunk):
        f = fg[i:i + chunk]
        inter = f @ ref.T
        union = f.sum(1, keepdim=True) + ref.sum(1)[None] - inter
        iou = inter / union.clamp_min(1e-6)
        shapes.append(reference.shape_idx[iou.argmax(1)])
    return torch.cat(shapes), color_idx


# The cube is the one candidate that changes when turned about z, and its cameras take every azimuth, so a cube turned
# by any yaw is as right as an upright one (eval/truth_target.py fits the same yaw). Unturned, an exact cube at 20-45
# degrees ranked 3rd-4th, behind the sphere and the cylinder: a coarse grid over its 90-degree period, then finer.
YAWED_SHAPES = {"cube": 90.0}
YAW_STEPS_DEG = (15.0, 5.0, 1.25)


def _turned(c2w: torch.Tensor, light: torch.Tensor, yaw_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras [V,4,4] and lights [V,3] turned by -yaw about z: the views of the shape turned by +yaw."""
    if yaw_deg == 0.0:
        return c2w, light
    turned = c2w.clone()
    turned[:, :3, :] = rotate_z(c2w[:, :3, :].transpose(1, 2), -yaw_deg).transpose(1, 2)  # axes and centre
    return turned, rotate_z(light, -yaw_deg)


def _best_over_sizes(shape, images, c2w, fovy, light, bg, lambertian, sizes, refine_steps, device) -> torch.Tensor:
    """[C] distance of each colour of `shape` at its best size (and yaw, for YAWED_SHAPES): the best of `sizes`,
    then for each step in `refine_steps` the best of that size +- 1 and 2 steps, at each coarse yaw; then the best
    yaw +- 1 and 2 of each finer YAW_STEPS_DEG at the best size."""
    from fastdream.priors.shapes_data import compose, render_geometry
    v, h = images.shape[0], images.shape[-1]
    best = torch.full((len(COLOR_NAMES),), float("inf"))
    tried: dict[tuple[float, float], float] = {}  # (size, yaw) -> its best distance over colours
    period = YAWED_SHAPES.get(shape)

    def score(size: float, yaw: float) -> None:
        cams, lights = _turned(c2w, light, yaw)
        alpha, shade = render_geometry(shape, cams, fovy, lights, torch.full((v,), size), h, device=device)
        errs = torch.stack([(compose(alpha, shade, _PALETTE[ci].expand(v, 3), bg, lambertian) - images)
                            .square().mean() for ci in range(len(COLOR_NAMES))])
        best.copy_(torch.minimum(best, errs))
        tried[(size, yaw)] = float(errs.min())

    def best_size(yaw: float) -> None:  # the size grid, then refined, at one yaw
        for size in sizes:
            score(float(size), yaw)
        for step in refine_steps:
            centre = min((k for k in tried if k[1] == yaw), key=tried.get)[0]
            for k in (-2, -1, 1, 2):
                size = round(centre + k * step, 6)
                if size > 0 and (size, yaw) not in tried:
                    score(size, yaw)

    # every coarse yaw gets its own size search: a turned cube of the wrong size can beat the right one upright
    for yaw in ([k * YAW_STEPS_DEG[0] for k in range(int(period // YAW_STEPS_DEG[0]))] if period else [0.0]):
        best_size(yaw)
    for step in (YAW_STEPS_DEG[1:] if period else ()):
        size, centre = min(tried, key=tried.get)
        for k in (-2, -1, 1, 2):
            yaw = round((centre + k * step) % period, 4)
            if (size, yaw) not in tried:
                score(size, yaw)
    return best


@torch.no_grad()
def procedural_scores(images: torch.Tensor, c2w: torch.Tensor, fovy_deg, true_shape: str, true_color: str, *,
                      shading: str = "albedo", light_position: torch.Tensor | None = None,
                      background: torch.Tensor | float | None = None, sizes=(0.35, 0.45, 0.55, 0.65),
                      refine_steps=(0.025, 0.00625), device="cpu") -> dict:
    """Rank every shape × colour candidate against V views of one run with known cameras.

    images [V,3,H,W] in [0,1]; c2w [V,4,4]; fovy_deg scalar or [V]; shading "albedo" or "lambertian" (then
    light_position [V,3] or [3]); background: scalar, [3] or [V,3], or None to estimate it from the image borders.
    Candidate distance = mean over views of the pixel MSE, each candidate shape at its best size: the best of
    `sizes`, then, for each step in `refine_steps`, the best of that size +- 1 and 2 steps. Without the refinement an
    exact render of a sphere of size 0.5 (between the grid's 0.45 and 0.55) ranked "cube" first.
    Returns {"ranking": [(shape, colour, distance)] best first, "rank": 1-based rank of the truth, "pred_shape",
    "pred_color", "true_shape", "true_color"}.
    """
    if true_shape not in SHAPES or true_color not in COLORS:
        raise ValueError(f"unknown true prompt {true_color!r} {true_shape!r}")
    if shading not in ("albedo", "lambertian"):
        raise ValueError(f"shading must be albedo or lambertian, got {shading!r}")
    images = images.float().cpu()
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [V,3,H,W], got {tuple(images.shape)}")
    v, _, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    c2w = c2w.reshape(-1, 4, 4).float().cpu()
    if c2w.shape[0] != v:
        raise ValueError(f"c2w must be [V,4,4] with V={v}, got {tuple(c2w.shape)}")
    fovy = torch.as_tensor(fovy_deg, dtype=torch.float32).reshape(-1).expand(v)
    if background is None:
        bg = estimate_background(images)
    else:
        bg = torch.as_tensor(background, dtype=torch.float32).reshape(-1, 1 if torch.as_tensor(background).numel()
                                                                      == 1 else 3).expand(v, 3)
    light = (torch.zeros(v, 3) + 10.0 if light_position is None
             else torch.as_tensor(light_position, dtype=torch.float32).reshape(-1, 3).expand(v, 3))
    lambertian = torch.full((v,), shading == "lambertian")
    dist = torch.empty(len(SHAPES), len(COLOR_NAMES))
    for si, shape in enumerate(SHAPES):
        dist[si] = _best_over_sizes(shape, images, c2w, fovy, light, bg, lambertian, sizes, refine_steps, device)
    order = dist.flatten().argsort()
    ranking = [(SHAPES[i // len(COLOR_NAMES)], COLOR_NAMES[i % len(COLOR_NAMES)], float(dist.flatten()[i]))
               for i in order.tolist()]
    truth = SHAPES.index(true_shape) * len(COLOR_NAMES) + COLOR_NAMES.index(true_color)
    rank = int((order == truth).nonzero()[0, 0]) + 1
    return {"ranking": ranking, "rank": rank, "pred_shape": ranking[0][0], "pred_color": ranking[0][1],
            "true_shape": true_shape, "true_color": true_color}


def summarize(results: list[dict]) -> dict:
    """{"n", "r_at_1", "shape_accuracy", "color_accuracy"} over procedural_scores results."""
    n = len(results)
    if n == 0:
        raise ValueError("no results to summarize")
    return {"n": n,
            "r_at_1": sum(r["rank"] == 1 for r in results) / n,
            "shape_accuracy": sum(r["pred_shape"] == r["true_shape"] for r in results) / n,
            "color_accuracy": sum(r["pred_color"] == r["true_color"] for r in results) / n}
