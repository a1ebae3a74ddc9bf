"""Backgrounds composited behind the scene: a random solid colour per image, fixed white/black, or a small MLP."""
from __future__ import annotations

import math

import torch

from fastdream.ops.transfer import to_device

__all__ = ["Background", "KINDS"]

# The one list of background kinds (config validation reads it).
KINDS = ("random", "white", "black", "mlp")


class Background(torch.nn.Module):
    """kind "random" | "white" | "black" | "mlp". forward(rays_d [B,H,W,3]) -> colours [B,H,W,3] in [0,1].

    "random" draws one colour per image from `generator` (CPU) while training and is white in eval mode;
    "mlp" maps the ray direction (with a few Fourier frequencies) to a colour and is trained with its own LR.
    """

    def __init__(self, kind: str = "random", hidden: int = 32, n_freq: int = 3):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"background kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.n_freq = n_freq
        self.mlp = None
        if kind == "mlp":
            d_in = 3 + 6 * n_freq
            self.mlp = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(inplace=True),
                                           torch.nn.Linear(hidden, 3))

    def forward(self, rays_d: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = rays_d.shape[:-1]
        if self.kind == "mlp":
            d = rays_d.reshape(-1, 3).float()
            freqs = (2.0 ** torch.arange(self.n_freq, device=d.device, dtype=d.dtype)) * math.pi
            xf = (d[:, None, :] * freqs[:, None]).reshape(d.shape[0], -1)
            feats = torch.cat([d, torch.sin(xf), torch.cos(xf)], -1)
            return torch.sigmoid(self.mlp(feats)).reshape(*shape, 3)
        if self.kind == "black" or (self.kind == "white" or not self.training):
            value = 0.0 if self.kind == "black" else 1.0
            return torch.full((*shape, 3), value, device=rays_d.device, dtype=torch.float32)
        color = to_device(torch.rand(shape[0], 3, generator=generator), rays_d.device)  # one per image
        return color.view(shape[0], *([1] * (len(shape) - 1)), 3).expand(*shape, 3)
