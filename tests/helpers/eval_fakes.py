"""Fake renders and a fake CLIP with known answers, shared by the eval tests."""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.eval.views import RenderedRun

VOCAB = ["a red cube", "a blue sphere", "a green cone", "a yellow torus"]


def look_image(k: int, size: int = 8) -> torch.Tensor:
    """An image [H, W, 3] that the fake CLIP sees as VOCAB[k]."""
    return torch.full((size, size, 3), (k + 0.5) / len(VOCAB))


class FakeClip:
    """Texts embed as one-hot of their VOCAB index (unknown texts: an extra axis); images as one-hot of what they
    look like (mean pixel value)."""

    def __init__(self, name: str = "fake-clip"):
        self.name = name
        self.dim = len(VOCAB) + 1

    def embed_texts(self, texts):
        idx = torch.tensor([VOCAB.index(t) if t in VOCAB else len(VOCAB) for t in texts])
        return F.one_hot(idx, self.dim).float()

    def embed_images(self, images):
        k = (images.mean(dim=(1, 2, 3)) * len(VOCAB)).floor().long().clamp(0, len(VOCAB) - 1)
        return F.one_hot(k, self.dim).float()


def fake_render_factory(table: dict):
    """render(run_dir, protocol, device) from table[run folder name] = (prompt, seed, {mode: [vocab index per view]})."""
    calls = []

    def render(run_dir, protocol, device="cpu"):
        prompt, seed, looks = table[Path(run_dir).name]
        calls.append(Path(run_dir).name)
        images = {m: torch.stack([look_image(k, protocol.size) for k in looks[m]]) for m in protocol.modes}
        assert all(len(looks[m]) == protocol.views for m in protocol.modes)
        return RenderedRun(run_dir=Path(run_dir), prompt=prompt, seed=seed, images=images)

    render.calls = calls
    return render


# cube/sphere at seeds 0 and 1, two views each. Colour: seed 0 all right; seed 1 one view wrong per run (cube s1 looks
# like a sphere once, sphere s1 like a cone once: the cone caption is absent by default, a tie, a miss).
# Textureless: everything looks like a torus.
SCENARIO = {
    "cube-s0": ("a red cube", 0, {"color": [0, 0], "textureless": [3, 3]}),
    "sphere-s0": ("a blue sphere", 0, {"color": [1, 1], "textureless": [3, 3]}),
    "cube-s1": ("a red cube", 1, {"color": [0, 1], "textureless": [3, 3]}),
    "sphere-s1": ("a blue sphere", 1, {"color": [2, 1], "textureless": [3, 3]}),
}


def make_tiny_clip(root: Path) -> Path:
    """Save a random CLIPModel (hidden 32, 1 layer, 32 px images) with a character-level CLIPTokenizer and an image
    processor config under root/tiny-clip, offline; return that folder."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + string.punctuation:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (root / "tok").mkdir(parents=True)
    (root / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tok" / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer.from_pretrained(str(root / "tok"))
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    model_dir = root / "tiny-clip"
    CLIPModel(cfg).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    # what CLIPImageProcessor.save_pretrained writes (its classes are slow to import)
    (model_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.4, 0.3],
        "image_std": [0.2, 0.25, 0.3], "resample": 3, "do_convert_rgb": True}))
    return model_dir
