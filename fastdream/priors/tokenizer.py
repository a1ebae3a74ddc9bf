"""A word-level tokenizer over the shapes prior's own vocabulary; saves and loads offline (vocab.json + config)."""
from __future__ import annotations

import json
import os
import re

import torch

from fastdream.procedural import COLORS, PRIMITIVES

__all__ = ["ShapesTokenizer", "default_vocabulary"]

_SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORDS = ["a", "an", "the", "photo", "of", "image", "picture", "rendering", "3d", "model", "view", ",", "."]
_VIEWS = ["front", "side", "back", "overhead"]


def default_vocabulary() -> list[str]:
    """Special tokens, filler words, view words, shape names and colour names (in that order)."""
    return _SPECIAL + _WORDS + _VIEWS + list(PRIMITIVES) + list(COLORS)


class ShapesTokenizer:
    """Lower-cases, splits words and punctuation, maps unknown words to <unk>, pads to `model_max_length`."""

    vocab_file = "vocab.json"
    config_file = "tokenizer_config.json"

    def __init__(self, vocab: list[str] | None = None, model_max_length: int = 16):
        self.vocab = list(vocab or default_vocabulary())
        if self.vocab[:4] != _SPECIAL:
            raise ValueError(f"vocab must start with {_SPECIAL}")
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.model_max_length = int(model_max_length)
        self.pad_token_id, self.bos_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())

    def encode(self, text: str) -> list[int]:
        """Token ids with <bos>/<eos>, truncated to model_max_length (keeping <eos>)."""
        ids = [self.ids.get(w, self.unk_token_id) for w in self.tokenize(text)]
        ids = [self.bos_token_id] + ids[: self.model_max_length - 2] + [self.eos_token_id]
        return ids

    def __call__(self, texts: list[str] | str) -> torch.Tensor:
        """input_ids [B, model_max_length] int64, padded with <pad>."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.model_max_length), self.pad_token_id, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.encode(t)
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` outside the vocabulary (they become <unk>)."""
        return [w for w in self.tokenize(text) if w not in self.ids]

    def save_pretrained(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, self.vocab_file), "w") as f:
            json.dump({w: i for i, w in enumerate(self.vocab)}, f, indent=0)
        with open(os.path.join(folder, self.config_file), "w") as f:
            json.dump({"tokenizer_class": "ShapesTokenizer", "model_max_length": self.model_max_length,
                       "pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}, f,
                      indent=1)

    @classmethod
    def from_pretrained(cls, folder: str) -> "ShapesTokenizer":
        try:
            with open(os.path.join(folder, cls.vocab_file)) as f:
                mapping = json.load(f)
            with open(os.path.join(folder, cls.config_file)) as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read a ShapesTokenizer from {folder!r}: {e}") from e
        vocab = [w for w, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
        return cls(vocab, model_max_length=config.get("model_max_length", 16))
