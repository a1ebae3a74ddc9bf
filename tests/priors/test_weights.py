"""The shipped shapes prior: size, offline loading, and a small sampling check of the prompted colour."""
from pathlib import Path

import pytest
import torch

from fastdream.errors import UserError

from fastdream.priors.model import BUILTIN_DIR, ShapesPrior, builtin_path

SHIPPED = BUILTIN_DIR / "shapes"


@pytest.fixture(scope="module")
def prior():
    return ShapesPrior.from_pretrained(SHIPPED)


def test_shipped_folder_layout_and_size():
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 1024 * 1024
    for rel in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                "text_encoder/model.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json",
                "TRAINING.md"):
        assert (SHIPPED / rel).is_file(), rel
    assert not (SHIPPED / ".train").exists()
    with pytest.raises(UserError, match="unknown builtin prior"):
        builtin_path("dinosaurs")


def test_builtin_guidance_loads_offline(no_network):
    from fastdream.guidance.pixel import PixelDiffusionGuidance
    g = PixelDiffusionGuidance.from_builtin("shapes", device="cpu")
    assert g.resolution == 32
    emb = g.encode_prompts(["a red cube, front view"])
    assert emb["cond"].shape == emb["uncond"].shape and torch.isfinite(emb["cond"]).all()


def test_samples_show_the_prompted_colour(prior):
    from fastdream.eval.procedural import COLOR_NAMES, classify_color
    prompts = ["a red cube", "a blue sphere, front view", "a green cone, side view", "a yellow cylinder"]
    images = prior.sample(prompts, steps=8, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    pred, _ = classify_color(images)
    assert [COLOR_NAMES[i] for i in pred] == ["red", "blue", "green", "yellow"]
