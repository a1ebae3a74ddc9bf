"""The regularisers added to the SDS loss, as a table from the config's loss name to its function."""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["REGULARISERS", "orientation", "sparsity", "entropy", "total_loss"]


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


# Keys are the fields of config.LossConfig; a weight of 0 switches a term off.
REGULARISERS: dict[str, Callable] = {"orientation": orientation, "sparsity": sparsity, "entropy": entropy}


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
