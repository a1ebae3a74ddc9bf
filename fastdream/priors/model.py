"""The embedded shapes prior: a small pixel-space UNet2DConditionModel with a tiny CLIP text encoder.

Saved in diffusers' folder layout: unet/, text_encoder/ (safetensors), tokenizer/ (ShapesTokenizer), scheduler/
(DDPMScheduler config: 1000 linear-beta steps, epsilon prediction). Images live in [-1, 1] in model space.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from fastdream.priors.tokenizer import ShapesTokenizer

__all__ = ["ShapesPrior", "unet_config", "text_config", "BUILTIN_DIR", "builtin_path", "NUM_TRAIN_TIMESTEPS",
           "SHAPES_PRIORS"]

NUM_TRAIN_TIMESTEPS = 1000
BUILTIN_DIR = Path(__file__).resolve().parent / "weights"
# The shipped priors trained on fastdream.priors.shapes_data: a run with one of them has the procedural truth of its
# prompt's primitive (fastdream.eval.truth_target).
SHAPES_PRIORS = ("shapes", "shapes-sd")


def builtin_path(name: str) -> Path:
    """Folder of a shipped prior, e.g. builtin_path('shapes'); UserError listing the choices if unknown."""
    from fastdream.errors import UserError
    folder = BUILTIN_DIR / name
    if not (folder / "unet").is_dir():
        known = sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "unet").is_dir()) if BUILTIN_DIR.is_dir() else []
        raise UserError(f"unknown builtin prior {name!r}; shipped: {', '.join(known) or 'none'}")
    return folder


def unet_config(resolution: int = 32, cross_attention_dim: int = 128) -> dict:
    return dict(sample_size=resolution, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=32)


def text_config(vocab_size: int, max_length: int = 16, hidden: int = 128, layers: int = 3) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, max_position_embeddings=max_length, pad_token_id=0, bos_token_id=1,
                eos_token_id=2, projection_dim=hidden)


def _quiet_diffusers():
    import logging
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()  # a "Loading weights" bar for a model that loads in milliseconds


class ShapesPrior(torch.nn.Module):
    """UNet + text encoder + tokenizer + DDPM schedule (alphas_cumprod [1000])."""

    def __init__(self, unet, text_encoder, tokenizer: ShapesTokenizer):
        super().__init__()
        from diffusers import DDPMScheduler
        self.unet = unet
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule="linear",
                                       prediction_type="epsilon", clip_sample=True)
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)

    @property
    def resolution(self) -> int:
        return int(self.unet.config.sample_size)

    @classmethod
    def create(cls, resolution: int = 32, seed: int = 0) -> "ShapesPrior":
        """A freshly initialised prior (deterministic by seed)."""
        _quiet_diffusers()
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel
        tok = ShapesTokenizer()
        torch.manual_seed(seed)
        text = CLIPTextModel(CLIPTextConfig(**text_config(len(tok), tok.model_max_length)))
        unet = UNet2DConditionModel(**unet_config(resolution, text.config.hidden_size))
        return cls(unet, text, tok)

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype=torch.float32) -> "ShapesPrior":
        """Load a saved prior folder with no network access."""
        _quiet_diffusers()
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel
        folder = Path(folder)
        for sub in ("unet", "text_encoder", "tokenizer"):
            if not (folder / sub).is_dir():
                raise ValueError(f"{folder} is not a shapes-prior folder: missing {sub}/")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=dtype, local_files_only=True)
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype, local_files_only=True)
        tok = ShapesTokenizer.from_pretrained(str(folder / "tokenizer"))
        prior = cls(unet, text, tok).to(device)
        prior.eval().requires_grad_(False)
        return prior

    def save_pretrained(self, folder, dtype=torch.float16) -> None:
        """Write unet/, text_encoder/ (safetensors in `dtype`), tokenizer/ and scheduler/ into `folder`."""
        folder = Path(folder)
        os.makedirs(folder, exist_ok=True)
        import copy
        for name, module in (("unet", self.unet), ("text_encoder", self.text_encoder)):
            copy.deepcopy(module).to(dtype).save_pretrained(folder / name, safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        self.scheduler.save_pretrained(folder / "scheduler")

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [B, L, D] (last hidden state) for prompts ('' is the unconditional prompt)."""
        ids = self.tokenizer(prompts).to(self.alphas_cumprod.device)
        return self.text_encoder(input_ids=ids).last_hidden_state

    def eps(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Predicted noise [B,3,R,R] for noisy images x [B,3,R,R] (model space), timesteps t [B], embeddings [B,L,D]."""
        dtype = next(self.unet.parameters()).dtype
        return self.unet(x.to(dtype), t, encoder_hidden_states=emb.to(dtype)).sample.to(x.dtype)

    @torch.no_grad()
    def sample(self, prompts: list[str], steps: int = 50, guidance_scale: float = 3.0,
               generator: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
        """DDIM samples [B,3,R,R] in [0,1] with classifier-free guidance (generator on the model's device)."""
        dev = self.alphas_cumprod.device
        b, r = len(prompts), self.resolution
        cond = self.encode(list(prompts))
        uncond = self.encode([""]).expand_as(cond)
        x = torch.randn(b, 3, r, r, generator=generator, device=dev)
        ts = torch.linspace(NUM_TRAIN_TIMESTEPS - 1, 0, steps, device=dev).round().long()
        ac = self.alphas_cumprod
        for i, t in enumerate(ts):
            tt = t.expand(b)
            e = self.eps(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([uncond, cond]))
            e_u, e_c = e.chunk(2)
            e = e_u + guidance_scale * (e_c - e_u)
            a_t = ac[t]
            a_prev = ac[ts[i + 1]] if i + 1 < steps else torch.tensor(1.0, device=dev)
            x0 = ((x - (1 - a_t).sqrt() * e) / a_t.sqrt()).clamp(-1, 1)
            e = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # re-derive eps from the clipped x0
            sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp_min(0).sqrt() * e
            if eta > 0 and i + 1 < steps:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=dev)
        return ((x + 1) / 2).clamp(0, 1)
