"""Protocol views of a run for CLIP evaluation: N azimuths at one elevation, white background, colour and
textureless shading. Rendering lives behind render_run() so the metric and report code runs on fake renders."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

MODES = ("color", "textureless")
_SHADING = {"color": "albedo", "textureless": "textureless"}


@dataclass(frozen=True)
class ViewProtocol:
    """Where the evaluation cameras sit: `views` azimuths evenly spaced from 0 degrees at `elevation` degrees.

    radius / fovy: None = take the run's own camera settings (the middle of its training ranges), else these values.
    """

    views: int = 8
    elevation: float = 30.0
    size: int = 224
    radius: float | None = None
    fovy: float | None = None
    modes: tuple[str, ...] = MODES
    chunk: int = 1 << 15  # rays per render call, bounds memory

    def __post_init__(self):
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}")
        if not -90.0 < self.elevation < 90.0:
            raise ValueError(f"elevation must lie in (-90, 90) degrees, got {self.elevation}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {self.modes}")

    def azimuths(self) -> list[float]:
        return [360.0 * k / self.views for k in range(self.views)]


@dataclass
class RenderedRun:
    """One run's protocol renders: images[mode] is float [N, H, W, 3] in [0, 1] on white; opacity [N, H, W] the
    accumulated opacity (the same for every mode); c2w [N,4,4] and fovy (degrees) are the cameras they were rendered
    from (None where a stand-in renderer does not say)."""

    run_dir: Path
    prompt: str
    seed: int | None
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    c2w: torch.Tensor | None = None
    fovy: float | None = None
    opacity: torch.Tensor | None = None


def config_value(config, *names: str, default=None):
    """First value found under any of `names` in a nested config (dicts, dataclasses, objects); else default."""
    seen = set()

    def visit(node, depth):
        if node is None or depth > 6 or id(node) in seen:
            return None
        seen.add(id(node))
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            items = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
        elif isinstance(node, dict):
            items = node
        elif hasattr(node, "__dict__") and not isinstance(node, (torch.Tensor, torch.nn.Module)):
            items = vars(node)
        else:
            return None
        for n in names:
            if n in items and items[n] is not None:
                return (items[n],)
        for v in items.values():
            found = visit(v, depth + 1)
            if found is not None:
                return found
        return None

    found = visit(config, 0)
    return default if found is None else found[0]


def _middle(value, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        return float(sum(float(v) for v in value) / len(value))
    return float(value)


def seed_from_run(config, run_dir: Path) -> int | None:
    """The run's seed: config `seed`, else a `-s<seed>` suffix of the folder name (fastdream batch), else None."""
    seed = config_value(config, "seed")
    if seed is not None:
        return int(seed)
    m = re.search(r"-s(\d+)$", Path(run_dir).name)
    return int(m.group(1)) if m else None


def render_run(run_dir: str | Path, protocol: ViewProtocol, device: str | torch.device = "cpu") -> RenderedRun:
    """Render a run's protocol views with fastdream's renderer (see ViewProtocol)."""
    from fastdream.cameras import CameraConfig, get_rays, pose_spherical
    from fastdream.checkpoint import load_run
    from fastdream.renderer import render_rays

    run_dir = Path(run_dir)
    run = load_run(run_dir, device=device)
    dev = torch.device(device)
    cfg = run.config
    cam = CameraConfig()  # the training defaults, when the run's config does not say
    run_cam = config_value(cfg, "camera", default=cfg)  # look in the camera section first: other sections may
    radius = protocol.radius if protocol.radius is not None else _middle(  # hold unrelated "radius" fields
        config_value(run_cam, "eval_radius", "radius", "radius_range"), _middle(cam.radius_range, 0))
    fovy = protocol.fovy if protocol.fovy is not None else _middle(
        config_value(run_cam, "eval_fovy", "fovy_deg", "fovy", "fovy_range"), _middle(cam.fovy_range, 0))
    field_, grid = run.field, run.grid
    field_.eval()
    field_.requires_grad_(False)
    step = config_value(cfg, "render_step_size")
    if step is None:
        aabb = field_.aabb.detach().float().cpu()
        step = float((aabb[3:] - aabb[:3]).norm()) / 1024.0
    white = torch.ones(3, device=dev)

    elev = torch.full((protocol.views,), float(protocol.elevation))
    azim = torch.tensor(protocol.azimuths(), dtype=torch.float32)
    c2w = pose_spherical(torch.full((protocol.views,), float(radius)), elev, azim).to(dev)
    rays_o, rays_d = get_rays(c2w, fovy, protocol.size, protocol.size)
    images, opacity = {}, []
    for mode in protocol.modes:
        views = []
        for v in range(protocol.views):
            o = rays_o[v].reshape(-1, 3).contiguous()
            d = rays_d[v].reshape(-1, 3).contiguous()
            light = c2w[v, :3, 3]  # a headlight: textureless shading is lit from the camera
            colors, alphas = [], []
            for i in range(0, o.shape[0], protocol.chunk):
                with torch.no_grad():  # the field's normals are finite differences: no autograd needed
                    out = render_rays(field_, grid, o[i:i + protocol.chunk], d[i:i + protocol.chunk],
                                      shading=_SHADING[mode], light_position=light, background=white,
                                      render_step_size=step)
                colors.append(out["color"].detach().float().clamp(0, 1))
                alphas.append(out["opacity"].detach().float().reshape(-1))
            views.append(torch.cat(colors).reshape(protocol.size, protocol.size, 3).cpu())
            if mode == protocol.modes[0]:  # opacity does not depend on shading: keep one copy
                opacity.append(torch.cat(alphas).reshape(protocol.size, protocol.size).cpu())
        images[mode] = torch.stack(views)
    if not math.isfinite(float(images[protocol.modes[0]].sum())):
        raise RuntimeError(f"rendering {run_dir} produced NaN or Inf")
    return RenderedRun(run_dir=run_dir, prompt=str(run.prompt), seed=seed_from_run(cfg, run_dir), images=images,
                       c2w=c2w.detach().float().cpu(), fovy=float(fovy), opacity=torch.stack(opacity))
