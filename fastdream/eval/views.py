"""Protocol views of a run for CLIP evaluation: N azimuths at one elevation, white background, colour and
textureless shading. Rendering lives behind render_run() so the metric and report code runs on fake renders."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastdream.cameras import pose_spherical
from fastdream.checkpoint import load_run

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


def _middle(value, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        return float(sum(float(v) for v in value) / len(value))
    return float(value)


def seed_from_run(config, run_dir: Path) -> int | None:
    """The run's seed: its config's train.seed, else a `-s<seed>` suffix of the folder name (fastdream batch)."""
    seed = getattr(getattr(config, "train", None), "seed", None)
    if seed is not None:
        return int(seed)
    m = re.search(r"-s(\d+)$", Path(run_dir).name)
    return int(m.group(1)) if m else None


def render_run(run_dir: str | Path, protocol: ViewProtocol, device: str | torch.device = "cpu") -> RenderedRun:
    """Render a run's protocol views with Scene.render_camera (see ViewProtocol), head light, white background."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, device=device)
    cam = run.config.camera
    radius = protocol.radius if protocol.radius is not None else _middle(cam.radius_range, 0.0)
    fovy = protocol.fovy if protocol.fovy is not None else _middle(cam.fovy_range, 0.0)
    elev = torch.full((protocol.views,), float(protocol.elevation))
    azim = torch.tensor(protocol.azimuths(), dtype=torch.float32)
    c2w = pose_spherical(torch.full((protocol.views,), float(radius)), elev, azim)
    images, opacity = {}, None
    for mode in protocol.modes:
        outs = [run.scene.render_camera(c2w[v], fovy, protocol.size, protocol.size, shading=_SHADING[mode],
                                        chunk=protocol.chunk) for v in range(protocol.views)]
        images[mode] = torch.stack([o["color"].cpu() for o in outs])
        if opacity is None:  # opacity does not depend on shading: keep one copy
            opacity = torch.stack([o["opacity"].cpu() for o in outs])
    if not math.isfinite(float(images[protocol.modes[0]].sum())):
        raise RuntimeError(f"rendering {run_dir} produced NaN or Inf")
    return RenderedRun(run_dir=run_dir, prompt=str(run.prompt), seed=seed_from_run(run.config, run_dir),
                       images=images, c2w=c2w.float(), fovy=float(fovy), opacity=opacity)
