"""View-dependent prompting (DreamFusion): the camera's azimuth and elevation pick a view suffix for the prompt."""
from __future__ import annotations

import torch

__all__ = ["VIEWS", "OVERHEAD_ELEVATION", "FRONT_AZIMUTH_RANGE", "view_prompts", "view_indices"]

# Order matters: view_indices() returns indices into this tuple and into view_prompts(prompt).
VIEWS = ("front", "side", "back", "overhead")
# The default rule (guidance.overhead_elevation, guidance.front_azimuth_range), also the shapes priors' captions'.
OVERHEAD_ELEVATION = 60.0  # degrees: views above it are "overhead"
FRONT_AZIMUTH_RANGE = 45.0  # degrees: |azimuth| below it is "front", above 180 - it "back"


def view_prompts(prompt: str) -> list[str]:
    """The prompt with each view suffix, in VIEWS order ("a hamburger, front view", ...)."""
    return [f"{prompt}, {v} view" for v in VIEWS]


def view_indices(elevation_deg: torch.Tensor, azimuth_deg: torch.Tensor, overhead_elevation: float = OVERHEAD_ELEVATION,
                 front_range: float = FRONT_AZIMUTH_RANGE) -> torch.Tensor:
    """View index [B] (into VIEWS) per camera: overhead above `overhead_elevation` degrees; otherwise front when
    |azimuth| < front_range, back when |azimuth| > 180 - front_range, side between (azimuth 0 is the front, +x)."""
    az = torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0  # wrap to [-180, 180)
    a = az.abs()
    idx = torch.where(a < front_range, 0, torch.where(a > 180.0 - front_range, 2, 1))
    return torch.where(elevation_deg > overhead_elevation, 3, idx).long()
