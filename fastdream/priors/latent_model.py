"""The embedded latent shapes model: Stable Diffusion's structure at toy size, in SD's own diffusers folder layout.

AutoencoderKL (images in [-1, 1] <-> 4-channel latents at 1/4 of the image side, its own scaling_factor),
UNet2DConditionModel with cross-attention on the scaled latents (epsilon prediction), CLIPTextModel with a real
CLIPTokenizer (fastdream.priors.clip_vocab) and SD's DDPM schedule (1000 scaled-linear betas 0.00085..0.012). Saved
by StableDiffusionPipeline.save_pretrained (fp16 safetensors), so any code that loads SD loads it.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from fastdream.priors.clip_vocab import BOS, EOS, write_clip_tokenizer
from fastdream.priors.model import _quiet_diffusers

__all__ = ["SCHEDULER_CONFIG", "vae_config", "unet_config", "text_config", "LatentShapesModel"]

# SD 1.x / 2.x-base's training schedule and prediction type.
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        prediction_type="epsilon", clip_sample=False, steps_offset=1,
                        timestep_spacing="leading")


def vae_config(resolution: int = 32, channels=(16, 32, 64)) -> dict:
    """AutoencoderKL config: len(channels) - 1 halvings (factor 4 for three levels), 4 latent channels."""
    n = len(channels)
    return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(channels), layers_per_block=1,
                latent_channels=4, norm_num_groups=8, sample_size=resolution, scaling_factor=1.0)


def unet_config(latent_size: int = 8, channels=(48, 96), cross_attention_dim: int = 64) -> dict:
    """UNet2DConditionModel config: cross-attention at the latent resolution and in the mid block."""
    n = len(channels)
    return dict(sample_size=latent_size, in_channels=4, out_channels=4, block_out_channels=tuple(channels),
                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D",) + ("DownBlock2D",) * (n - 1),
                up_block_types=("UpBlock2D",) * (n - 1) + ("CrossAttnUpBlock2D",),
                cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=8)


def text_config(vocab: dict, max_length: int = 16, hidden: int = 64, layers: int = 2) -> dict:
    return dict(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, max_position_embeddings=max_length, pad_token_id=vocab[EOS],
                bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], projection_dim=hidden)


class LatentShapesModel(torch.nn.Module):
    """vae + unet + text_encoder + tokenizer + DDPM schedule; latents are scaled by vae.config.scaling_factor."""

    def __init__(self, vae, unet, text_encoder, tokenizer, scheduler):
        super().__init__()
        self.vae, self.unet, self.text_encoder = vae, unet, text_encoder
        self.tokenizer, self.scheduler = tokenizer, scheduler
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """Image side in pixels: the UNet's latent side times the VAE's downsampling factor."""
        return int(self.unet.config.sample_size) * self.scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @classmethod
    def create(cls, work_dir, resolution: int = 32, seed: int = 0, vae_channels=(16, 32, 64), unet_channels=(48, 96),
               text_hidden: int = 64, max_length: int = 16) -> "LatentShapesModel":
        """A freshly initialised model (deterministic by seed); its tokenizer files are written to work_dir/tokenizer."""
        _quiet_diffusers()
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
        write_clip_tokenizer(str(Path(work_dir) / "tokenizer"), max_length)
        tok = CLIPTokenizer.from_pretrained(str(work_dir), subfolder="tokenizer", local_files_only=True)
        factor = 2 ** (len(vae_channels) - 1)
        if resolution % factor:
            raise ValueError(f"resolution {resolution} must be a multiple of the VAE factor {factor}")
        torch.manual_seed(seed)
        vae = AutoencoderKL(**vae_config(resolution, vae_channels))
        text = CLIPTextModel(CLIPTextConfig(**text_config(tok.get_vocab(), max_length, text_hidden)))
        unet = UNet2DConditionModel(**unet_config(resolution // factor, unet_channels, text_hidden))
        return cls(vae, unet, text, tok, DDPMScheduler(**SCHEDULER_CONFIG))

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype=torch.float32) -> "LatentShapesModel":
        """Load a saved SD-layout folder with no network access."""
        _quiet_diffusers()
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
        src = str(folder)
        kw = dict(torch_dtype=dtype, local_files_only=True)
        model = cls(AutoencoderKL.from_pretrained(src, subfolder="vae", **kw),
                    UNet2DConditionModel.from_pretrained(src, subfolder="unet", **kw),
                    CLIPTextModel.from_pretrained(src, subfolder="text_encoder", **kw),
                    CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", local_files_only=True),
                    DDPMScheduler.from_pretrained(src, subfolder="scheduler", local_files_only=True))
        return model.to(device).eval().requires_grad_(False)

    def save_pretrained(self, folder, dtype=torch.float16) -> None:
        """Write the folder exactly as StableDiffusionPipeline.save_pretrained does (no safety checker), weights as
        `dtype` safetensors; the tokenizer as vocab.json + merges.txt (every transformers version reads those)."""
        _quiet_diffusers()
        from diffusers import StableDiffusionPipeline
        folder = Path(folder)
        parts = {k: copy.deepcopy(getattr(self, k)).to(dtype) for k in ("vae", "unet", "text_encoder")}
        pipe = StableDiffusionPipeline(**parts, tokenizer=self.tokenizer, scheduler=self.scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.save_pretrained(folder, safe_serialization=True)
        shutil.rmtree(folder / "tokenizer")
        write_clip_tokenizer(str(folder / "tokenizer"), int(self.tokenizer.model_max_length),
                             words=None)
        _check_vocab(folder / "tokenizer", self.tokenizer.get_vocab())

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """CLIP last hidden states [B, L, D] ('' is the unconditional prompt), padded to model_max_length."""
        tok = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        return self.text_encoder(tok.input_ids.to(self.alphas_cumprod.device))[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None,
                      sample: bool = True) -> torch.Tensor:
        """images [B,3,R,R] in [0,1] -> scaled latents [B,4,R/f,R/f] (a posterior sample, or its mean)."""
        dist = self.vae.encode(images * 2 - 1).latent_dist
        z = dist.mean
        if sample:
            z = z + dist.std * torch.randn(z.shape, generator=generator, device=_gen_device(generator, z)).to(z)
        return z * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B,4,h,w] -> images [B,3,h·f,w·f] in [0,1]."""
        return ((self.vae.decode(latents / self.scaling_factor).sample + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def sample(self, prompts: list[str], steps: int = 50, guidance_scale: float = 3.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM (eta 0) samples [B,3,R,R] in [0,1] with classifier-free guidance, decoded by the VAE."""
        dev, b = self.alphas_cumprod.device, len(prompts)
        cond = self.encode_text(prompts)
        uncond = self.encode_text([""]).expand_as(cond)
        n = self.unet.config.sample_size
        x = torch.randn(b, 4, n, n, generator=generator, device=_gen_device(generator, cond)).to(dev)
        ac = self.alphas_cumprod
        ts = torch.linspace(len(ac) - 1, 0, steps, device=dev).round().long()
        for i, t in enumerate(ts):
            e_u, e_c = self.unet(torch.cat([x, x]), t.expand(2 * b), encoder_hidden_states=torch.cat([uncond, cond])
                                 ).sample.chunk(2)
            e = e_u + guidance_scale * (e_c - e_u)
            a_prev = ac[ts[i + 1]] if i + 1 < steps else torch.ones((), device=dev)
            x0 = (x - (1 - ac[t]).sqrt() * e) / ac[t].sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
        return self.decode(x)


def _gen_device(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    return generator.device if generator is not None else like.device


def _check_vocab(folder: Path, expected: dict) -> None:
    """The rewritten tokenizer files must give the ids the text encoder was trained with."""
    with open(folder / "vocab.json", encoding="utf-8") as f:
        if json.load(f) != expected:
            raise RuntimeError(f"{folder}: the saved vocabulary differs from the model's tokenizer")
