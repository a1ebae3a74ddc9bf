"""The shipped latent shapes model (builtin:shapes-sd): layout, size, SD's own loader, its tokenizer, its VAE on fresh
renders and a small sampling check of the prompted colour through the VAE decoder."""
import json

import pytest
import torch

from fastdream.priors import clip_vocab, shapes_data
from fastdream.priors.latent_model import LatentShapesModel
from fastdream.priors.model import BUILTIN_DIR

SHIPPED = BUILTIN_DIR / "shapes-sd"
# TRAINING.md: 26.96 dB mean on 300 held-out renders; eight fresh 48-render draws gave 26.3-28.2 dB.
PSNR_BAR_DB = 25.0
WEIGHTS_CAP_BYTES = 20_000_000  # issue #18: every shipped prior together


@pytest.fixture(scope="module")
def model():
    return LatentShapesModel.from_pretrained(SHIPPED)


def test_shipped_folder_layout_and_size_cap():
    index = json.loads((SHIPPED / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
        assert index[part][1] is not None and (SHIPPED / part).is_dir(), part
    for rel in ("vae/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
                "scheduler/scheduler_config.json", "TRAINING.md"):
        assert (SHIPPED / rel).is_file(), rel
    assert not (SHIPPED / ".train").exists() and not (SHIPPED / "tokenizer" / "tokenizer.json").exists()
    total = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert total <= WEIGHTS_CAP_BYTES, f"fastdream/priors/weights holds {total} bytes"


def test_loads_through_sds_own_loader_as_fp16_epsilon_sd():
    from fastdream.guidance.stable_diffusion import _load_parts
    unet, vae, text, tok, sched = _load_parts(str(SHIPPED), torch.float32, local_files_only=True)
    assert type(tok).__name__ == "CLIPTokenizer" and tok.model_max_length == text.config.max_position_embeddings
    assert sched.config.prediction_type == "epsilon" and sched.config.beta_schedule == "scaled_linear"
    assert vae.config.latent_channels == unet.config.in_channels == 4
    assert unet.config.cross_attention_dim == text.config.hidden_size
    assert vae.config.scaling_factor != 0.18215  # its own, measured on its latents
    from safetensors import safe_open
    with safe_open(str(SHIPPED / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}


def test_shipped_tokenizer_is_the_one_the_script_builds_and_covers_the_vocabulary(model, tmp_path):
    clip_vocab.write_clip_tokenizer(str(tmp_path), model_max_length=model.tokenizer.model_max_length)
    for name in ("vocab.json", "merges.txt"):
        assert (SHIPPED / "tokenizer" / name).read_text() == (tmp_path / name).read_text(), name
    tok = model.tokenizer
    for w in clip_vocab.caption_words():
        ids = tok(w).input_ids
        assert len(ids) == 3 and tok.decode(ids, skip_special_tokens=True) == w, w


def test_vae_reconstructs_fresh_renders(model):
    seed = int(torch.randint(0, 2 ** 31 - 1, ()))  # fresh renders each run; the seed is in the message
    bank = shapes_data.build_bank(8, 32, seed=seed)
    images = shapes_data.sample_batch(bank, len(bank), torch.Generator().manual_seed(seed))[0]
    with torch.no_grad():
        recon = model.decode(model.encode_images(images, sample=False))
    psnr = 10 * torch.log10(1.0 / (recon - images).square().flatten(1).mean(1))
    assert psnr.mean() >= PSNR_BAR_DB, f"seed {seed}: mean PSNR {psnr.mean():.2f} dB < {PSNR_BAR_DB}"


def test_samples_show_the_prompted_colour(model):
    from fastdream.eval.procedural import COLOR_NAMES, classify_color
    prompts = ["a red cube", "a blue sphere, front view", "a green cone, side view", "a yellow cylinder"]
    images = model.sample(prompts, steps=10, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    pred, _ = classify_color(images)
    assert [COLOR_NAMES[i] for i in pred] == ["red", "blue", "green", "yellow"]
