"""The image encoders SDS differentiates through: Stable Diffusion's VAE encoder or TAESD (diffusers' AutoencoderTiny).

Both map images in [-1, 1] ([B,3,H,W]) to the UNet's scaled latent space ([B,C,H/f,W/f]); `scale_factor` is f.
"""
from __future__ import annotations

import torch

__all__ = ["ENCODERS", "KLEncoder", "TinyEncoder", "DEFAULT_TINY_ENCODER"]

# guidance.encoder values (config validation reads this).
ENCODERS = ("vae", "tiny")
# TAESD for the SD 1.x/2.x latent space (madebyollin/taesd, MIT); SDXL needs madebyollin/taesdxl instead.
DEFAULT_TINY_ENCODER = "madebyollin/taesd"


class KLEncoder:
    """AutoencoderKL's encoder: latents = (mean + std * noise) * scaling_factor, with the caller's noise (so a
    generator makes the step reproducible)."""

    kind = "vae"

    def __init__(self, vae: torch.nn.Module):
        self.module = vae
        self.scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 0.18215))

    def __call__(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        posterior = self.module.encode(x).latent_dist
        return (posterior.mean + posterior.std * noise) * self.scaling_factor


class TinyEncoder:
    """AutoencoderTiny's encoder (TAESD): deterministic, about 1.2M parameters instead of the VAE encoder's 34M; its
    latents already live in the scaled space (scaling_factor 1.0), so the noise argument is unused."""

    kind = "tiny"

    def __init__(self, taesd: torch.nn.Module):
        self.module = taesd
        self.scale_factor = 2 ** (len(taesd.config.encoder_block_out_channels) - 1)
        self.latent_channels = int(taesd.config.latent_channels)
        self.scaling_factor = float(getattr(taesd.config, "scaling_factor", 1.0))

    def __call__(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        del noise
        return self.module.encode(x).latents * self.scaling_factor
