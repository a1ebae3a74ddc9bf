"""The regularisers added to the SDS loss, as a table from the config's loss name to its function."""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["REGULARISERS", "orientation", "sparsity", "entropy", "normal_smoothness", "total_loss",
           "SMOOTHNESS_POINTS", "SMOOTHNESS_RADIUS"]

# normal_smoothness compares the normals at SMOOTHNESS_POINTS surface points per step with those a gaussian offset
# of SMOOTHNESS_RADIUS (world units, per axis) away: about one pixel of the builtin prior's 32x32 views.
SMOOTHNESS_POINTS = 2048
SMOOTHNESS_RADIUS = 0.03


def orientation(batch) -> torch.Tensor | None:
    """DreamFusion's orientation loss: visible normals must not face away from the camera (weights detached)."""
    terms = []
    n_pixels = batch.opacity.shape[1] * batch.opacity.shape[2]
    for b, out in enumerate(batch.outs):
        if out.get("normals") is None or out["ray_indices"].numel() == 0:
            continue
        ri = out["ray_indices"]
        d = batch.rays_d[b].reshape(-1, 3)[ri.clamp_min(0)]
        dot = (torch.nan_to_num(out["normals"].float()) * d).sum(-1).clamp_min(0.0)
        w = torch.where(ri >= 0, out["weights"].detach().float(), 0.0)  # fixed-capacity buffers pad with -1
        terms.append((w * dot ** 2).sum() / n_pixels)
    return torch.stack(terms).mean() if terms else None


def sparsity(batch) -> torch.Tensor:
    """mean sqrt(opacity^2 + 0.01): pushes empty space empty."""
    return torch.sqrt(batch.opacity ** 2 + 0.01).mean()


def entropy(batch) -> torch.Tensor:
    """Binary entropy of the opacity: pushes each ray to fully opaque or fully empty."""
    o = batch.opacity.clamp(1e-5, 1 - 1e-5)
    return -(o * torch.log(o) + (1 - o) * torch.log(1 - o)).mean()


def normal_smoothness(batch) -> torch.Tensor | None:
    """Mean |n(p) - n(p + SMOOTHNESS_RADIUS * g)| over surface points p drawn by render weight (g from batch.probe):
    a 3D normal-smoothness prior, as threestudio's 3d_normal_smooth. It flattens the faces a low-resolution prior
    leaves cupped or wavy, which no pixel it sees resolves. Points where either normal is zero (flat density) and
    steps where nothing is visible add nothing."""
    if batch.field is None or batch.probe is None or any("positions" not in out for out in batch.outs):
        return None
    u, offsets = batch.probe
    positions = torch.cat([out["positions"].detach().float() for out in batch.outs])
    weights = torch.cat([torch.where(out["ray_indices"] >= 0, out["weights"].detach().float(), 0.0)
                         for out in batch.outs])
    if weights.numel() == 0:
        return None
    cdf = torch.cumsum(weights, 0)
    idx = torch.searchsorted(cdf, u * cdf[-1:], right=True).clamp_max(weights.numel() - 1)  # inverse-CDF draw
    p = positions[idx]
    normals = batch.field.normals(torch.cat([p, p + SMOOTHNESS_RADIUS * offsets])).float()
    n1, n2 = normals.chunk(2)
    ok = ((n1.norm(dim=-1) > 0.5) & (n2.norm(dim=-1) > 0.5)).float() * (cdf[-1] > 0).float()
    diff = ((n1 - n2).pow(2).sum(-1) + 1e-6).sqrt()
    return (diff * ok).sum() / ok.sum().clamp_min(1.0)


# Keys are the fields of config.LossConfig; a weight of 0 switches a term off.
REGULARISERS: dict[str, Callable] = {"orientation": orientation, "sparsity": sparsity, "entropy": entropy,
                                     "normal_smoothness": normal_smoothness}


def total_loss(sds: torch.Tensor, batch, weights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """sds + sum of weight * regulariser over the enabled ones; returns (total, {name: value})."""
    losses = {"sds": sds.float()}
    total = losses["sds"]
    for name, fn in REGULARISERS.items():
        weight = getattr(weights, name)
        if weight > 0:
            value = fn(batch)
            if value is not None:
                losses[name] = value
                total = total + weight * value
    return total, losses
