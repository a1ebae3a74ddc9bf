"""What changes over a run: the diffusion t range (annealed), the elevation guidance scale, the random shading per
view, latent warm-up."""
from __future__ import annotations

import dataclasses
import math

import torch

from fastdream.ops import SHADING_MODES

__all__ = ["t_range", "elevation_scale", "loss_weights", "lr_scale", "sample_shading", "in_latent_warmup"]


def t_range(guidance_cfg, step: int, iters: int) -> tuple[float, float]:
    """(t_min, t_max) at `step`: t_max moves linearly to guidance.t_max_end over the run when that is set."""
    g = guidance_cfg
    t_max = g.t_max
    if g.t_max_end is not None:
        frac = min(step / max(iters, 1), 1.0)
        t_max = g.t_max + (g.t_max_end - g.t_max) * frac
    return (g.t_min, max(t_max, g.t_min))


def elevation_scale(guidance_cfg, step: int, iters: int) -> float:
    """The elevation guidance scale at `step`: guidance.elevation_guidance, then guidance.elevation_guidance_end from
    step elevation_guidance_switch · iters on when that is set."""
    g = guidance_cfg
    if g.elevation_guidance_end is not None and step >= g.elevation_guidance_switch * iters:
        return float(g.elevation_guidance_end)
    return float(g.elevation_guidance)


def loss_weights(loss_cfg, step: int, iters: int):
    """The regulariser weights at `step`: loss_cfg, with normal_smoothness off before step
    normal_smoothness_start · iters."""
    if loss_cfg.normal_smoothness > 0 and step < loss_cfg.normal_smoothness_start * iters:
        return dataclasses.replace(loss_cfg, normal_smoothness=0.0)
    return loss_cfg


def lr_scale(optim_cfg, step: int, iters: int) -> float:
    """The learning-rate factor at `step`: cosine from 1 to optim.lr_final over the run (1 throughout by default)."""
    final = optim_cfg.lr_final
    if final >= 1.0:
        return 1.0
    frac = min(step / max(iters - 1, 1), 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * frac))


def sample_shading(shading_cfg, step: int, batch: int, generator: torch.Generator) -> tuple[list[str], list[float]]:
    """A shading mode (albedo for the first `albedo_only_steps`) and an ambient ratio per view, drawn on the CPU."""
    s = shading_cfg
    probs = torch.tensor([getattr(s, f"{mode}_prob") for mode in SHADING_MODES], dtype=torch.float64)
    idx = torch.multinomial(probs, batch, replacement=True, generator=generator).tolist()
    lo, hi = s.ambient_range
    ambient = (lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=torch.float64)).tolist()
    modes = [SHADING_MODES[i] for i in idx]
    if step < s.albedo_only_steps:
        modes = ["albedo"] * batch
    return modes, ambient


def in_latent_warmup(guidance_cfg, guidance, step: int, iters: int) -> bool:
    """True while the first `latent_warmup` share of steps feeds [rgb, opacity] as latents (skipping the VAE)."""
    g = guidance_cfg
    return g.latent_warmup > 0 and getattr(guidance, "supports_latent", False) and step < g.latent_warmup * iters
