"""A tiny random Stable Diffusion (UNet, VAE, CLIP text encoder, offline BPE tokenizer) saved as a diffusers folder."""
from __future__ import annotations

import json
from pathlib import Path

import torch


def _write_tokenizer(folder: Path) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, ",": 3, ",</w>": 4}
    for ch in letters:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = ["#version: 0.2", "t h", "th e</w>", "o f</w>"]
    vocab.update({"th": len(vocab), "the</w>": len(vocab) + 1, "of</w>": len(vocab) + 2})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")


def make_tiny_sd(folder: str | Path, latent_size: int = 8, seed: int = 0) -> Path:
    """Write a tiny random SD checkpoint (unet/, vae/, text_encoder/, tokenizer/, scheduler/) into `folder`."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=latent_size,
                                in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=latent_size * 2)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                                        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                        vocab_size=128, max_position_embeddings=16, projection_dim=16))
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    _write_tokenizer(folder / "tokenizer_src")
    tok = CLIPTokenizer(str(folder / "tokenizer_src" / "vocab.json"), str(folder / "tokenizer_src" / "merges.txt"),
                        model_max_length=16)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    tok.save_pretrained(folder / "tokenizer")
    sched.save_pretrained(folder / "scheduler")
    return folder
