"""A noise-conditioned camera-elevation classifier p(elevation | x_t) for a shapes prior (its pixels or SD latents).

The shapes priors are captioned by azimuth only, so a prior's prediction for a low view is an average over the
elevations of its data: SDS then pushes a flat bottom down into a pyramid (bench/results/
2026-12-03-cpu-prior-border-push-by-elevation.md). Classifier guidance (Dhariwal & Nichol 2021) adds the missing
condition without retraining the prior: by Bayes, ∇ log p(x_t | c, e) = ∇ log p(x_t | c) + ∇ log p(e | x_t), so
ε̂ -= s·σ_t·∇_{x_t} log p(e | x_t) with the camera's elevation e (fastdream.guidance.base.Guidance.guide_elevation).

Saved as FOLDER/elevation_classifier/{config.json, model.safetensors} (float16), next to the prior it serves.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["ElevationClassifier", "SUBFOLDER", "load_classifier"]

SUBFOLDER = "elevation_classifier"


class ElevationClassifier(nn.Module):
    """Logits over elevation bins [lo, lo + bin), ... up to hi for noisy model-space inputs x_t [B,C,R,R] (pixels in
    [-1, 1], C=3, or a latent model's scaled latents, C=4) at noise level sigma = sqrt(1 - alphā_t) [B]. Tiny on
    purpose: it ships beside the prior under the weights' size cap."""

    def __init__(self, resolution: int = 32, lo: float = -10.0, hi: float = 45.0, bin_deg: float = 5.0,
                 width: int = 32, in_channels: int = 3, stem: int = 16):
        super().__init__()
        if resolution % 8 or hi <= lo or bin_deg <= 0:
            raise ValueError(f"bad classifier config: resolution {resolution} (multiple of 8), bins {lo}..{hi} by "
                             f"{bin_deg}")
        self.config = dict(resolution=resolution, lo=lo, hi=hi, bin_deg=bin_deg, width=width, in_channels=in_channels,
                           stem=stem)
        self.bins = int(round((hi - lo) / bin_deg))

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(4, cout), nn.SiLU())

        self.features = nn.Sequential(block(in_channels + 1, stem), block(stem, width), block(width, 16))
        self.flat = nn.Linear(16 * (resolution // 8) ** 2, width)
        self.noise_embedding = nn.Linear(1, width)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(width, self.bins))

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.reshape(-1, 1, 1, 1).to(x_t.dtype).expand(-1, 1, *x_t.shape[-2:])
        h = self.flat(self.features(torch.cat([x_t, s], 1)).flatten(1))
        return self.head(h + self.noise_embedding(sigma.reshape(-1, 1).to(x_t.dtype)))

    def soft_targets(self, elevation_deg: torch.Tensor) -> torch.Tensor:
        """[B] degrees -> [B, bins] two-hot weights on the two nearest bin centres (clamped to the range)."""
        c = self.config
        pos = ((elevation_deg.float() - c["lo"]) / c["bin_deg"] - 0.5).clamp(0, self.bins - 1)
        i0 = pos.floor().long().clamp(max=self.bins - 1)
        i1 = (i0 + 1).clamp(max=self.bins - 1)
        w1 = pos - i0.float()
        out = torch.zeros(pos.shape[0], self.bins, device=pos.device)
        out.scatter_add_(1, i0[:, None], (1 - w1)[:, None])
        return out.scatter_add_(1, i1[:, None], w1[:, None])

    def log_prob(self, x_t: torch.Tensor, sigma: torch.Tensor, elevation_deg: torch.Tensor) -> torch.Tensor:
        """log p(elevation | x_t) [B], the bins' probabilities interpolated at each elevation."""
        log_p = torch.log_softmax(self.forward(x_t, sigma), -1)
        # log sum_i w_i p_i; logsumexp keeps the gradient where p is tiny (a clamp would zero it)
        return torch.logsumexp(log_p + self.soft_targets(elevation_deg.to(log_p.device)).log(), -1)

    def save(self, folder: str | Path) -> Path:
        """Write FOLDER/elevation_classifier/: the weights first, config.json last (load_classifier looks for it), each
        through a temporary file, so an interrupted save never leaves a half-written classifier behind."""
        from safetensors.torch import save_file
        out = Path(folder) / SUBFOLDER
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").unlink(missing_ok=True)
        save_file({k: v.detach().half().contiguous() for k, v in self.state_dict().items()},
                  str(out / "model.safetensors.tmp"))
        os.replace(out / "model.safetensors.tmp", out / "model.safetensors")
        (out / "config.json.tmp").write_text(json.dumps(self.config) + "\n")
        os.replace(out / "config.json.tmp", out / "config.json")
        return out


def load_classifier(folder: str | Path) -> ElevationClassifier | None:
    """The classifier saved in FOLDER/elevation_classifier (float32, eval mode), or None when there is none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    sub = Path(folder) / SUBFOLDER
    if not (sub / "config.json").is_file():
        return None
    try:
        model = ElevationClassifier(**json.loads((sub / "config.json").read_text()))
        model.load_state_dict({k: v.float() for k, v in load_file(str(sub / "model.safetensors")).items()})
    except (OSError, ValueError, TypeError, RuntimeError, SafetensorError) as e:  # a broken folder: one line, not a traceback
        from fastdream.errors import UserError
        raise UserError(f"{sub}: not a readable elevation classifier ({str(e).splitlines()[0]}); retrain it with "
                        f"python -m fastdream.priors.train_elevation or remove the folder") from None
    return model.eval().requires_grad_(False)
