"""Random-weight diffusion models for the step benchmark: SD-2.1-base-sized UNet, VAE and text encoder (tiny ones with
--quick), a TAESD-sized AutoencoderTiny, and the guidance object a Trainer gets from them. Random weights cost exactly
what the real ones cost, so nothing is downloaded."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from bench import common, sd_configs
from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
from fastdream.guidance.view_prompts import VIEWS

__all__ = ["Models", "build_models", "make_guidance"]


@dataclass
class Models:
    """The modules (shared by every variant), the DDPM scheduler config, fixed prompt embeddings and facts."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    tiny: torch.nn.Module
    dtype: torch.dtype
    prompts: dict  # {"cond": [len(VIEWS), L, D], "uncond": [1, L, D]}
    info: dict = field(default_factory=dict)

    def scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(**sd_configs.SD_SCHEDULER)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_models(quick: bool, device: torch.device) -> Models:
    """Random UNet/VAE/text encoder (SD 2.1-base sizes, or tiny with quick) and AutoencoderTiny on `device`."""
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_cfg = sd_configs.TINY_TEXT if quick else sd_configs.SD21_BASE_TEXT
    dtype = torch.float32 if device.type == "cpu" else (
        torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):  # random init directly on the device: seconds instead of a minute on the CPU
        unet = UNet2DConditionModel(**(sd_configs.TINY_UNET if quick else sd_configs.SD21_BASE_UNET))
        vae = AutoencoderKL(**(sd_configs.TINY_VAE if quick else sd_configs.SD21_BASE_VAE))
        tiny = AutoencoderTiny(**(sd_configs.TINY_TAESD if quick else sd_configs.TAESD))
        text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    for m in (unet, vae, tiny, text):
        m.to(dtype).eval().requires_grad_(False)
    build_s = time.perf_counter() - t0
    ids = torch.randint(3, text_cfg["vocab_size"], (len(VIEWS) + 1, 77), device=device)
    common.sync(device)
    t1 = time.perf_counter()
    with torch.no_grad():  # computed once per run in training; random token ids here
        emb = text(ids)[0].to(dtype)
    common.sync(device)
    encode_ms = (time.perf_counter() - t1) * 1e3
    n_text = _n_params(text)
    del text  # a Trainer releases its own text encoder after encoding the prompts, so peak memory omits it
    info = {"dtype": str(dtype).replace("torch.", ""), "model_build_s": build_s,
            "prompt_encode_once_ms": encode_ms, "unet_config": "tiny" if quick else
            "SD 2.1-base", "parameters": {"unet": _n_params(unet), "vae_encoder": _n_params(vae.encoder) +
                                          _n_params(vae.quant_conv), "tiny_encoder": _n_params(tiny.encoder),
                                          "text_encoder": n_text}}
    return Models(unet, vae, tiny, dtype, {"cond": emb[1:], "uncond": emb[:1]}, info)


def make_guidance(models: Models, device: torch.device, guidance_cfg, cuda_graphs: bool) -> StableDiffusionGuidance:
    """The StableDiffusionGuidance a Trainer would load for `guidance_cfg` (encoder, channels_last, compile) and
    train.cuda_graphs, over the shared random modules; no text encoder: its prompt embeddings are the fixed random
    ones (a Trainer releases the text encoder once the prompts are encoded)."""
    tiny = guidance_cfg.encoder == "tiny"
    g = StableDiffusionGuidance(models.unet, None if tiny else models.vae, None, None, models.scheduler(),
                                device=device, dtype=models.dtype, compile=guidance_cfg.compile,
                                channels_last=guidance_cfg.channels_last, encoder=models.tiny if tiny else None,
                                cuda_graphs=cuda_graphs)
    prompts = models.prompts
    g.encode_prompts = lambda texts, negative_prompt="": {"cond": prompts["cond"][:len(texts)],
                                                          "uncond": prompts["uncond"]}
    return g
