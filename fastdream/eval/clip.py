"""Load a CLIP model through transformers (local folder or hub id) and embed images and texts as unit vectors."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.errors import UserError

log = logging.getLogger(__name__)

# OpenAI CLIP's input normalisation, used when the model folder has no preprocessor_config.json.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):
        return False


def _missing(name: str, why: str) -> UserError:
    return UserError(
        f"CLIP weights {name!r} could not be loaded ({why}). Pass --clip a local folder holding a transformers "
        "CLIPModel with its tokenizer (from save_pretrained), or a hub id already in the Hugging Face cache; on a "
        f"machine with network access, fetch it with `huggingface-cli download {name}`.")


def _from_pretrained(loader, name: str, local_files_only: bool):
    return loader.from_pretrained(name, local_files_only=local_files_only)


@dataclass
class ClipModel:
    """A CLIP model with its tokenizer and image normalisation; embeds to L2-normalised rows."""

    name: str
    model: "torch.nn.Module"
    tokenizer: object
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device

    @property
    def max_text_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Unit text embeddings, float32 [P, D] on CPU, one row per text (too-long texts are truncated)."""
        if not texts:
            raise ValueError("texts is empty; give at least one caption")
        out = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_text_tokens, return_tensors="pt")
            tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
            out.append(_features(self.model.get_text_features(**tok)).float().cpu())
        return F.normalize(torch.cat(out), dim=1)

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Unit image embeddings, float32 [N, D] on CPU, from images [N, H, W, 3] float RGB in [0, 1].

        Square renders need no crop: they are resized (bicubic, antialiased) to the model's input size and normalised
        with the model's mean and std, as CLIPProcessor does for a square image.
        """
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be a tensor [N, H, W, 3], got "
                             f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        out = []
        for i in range(0, images.shape[0], batch_size):
            x = images[i:i + batch_size].to(self.device, torch.float32).permute(0, 3, 1, 2).clamp(0, 1)
            if x.shape[-2:] != (self.image_size, self.image_size):
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                                  antialias=True).clamp(0, 1)
            x = (x - mean) / std
            out.append(_features(self.model.get_image_features(pixel_values=x)).float().cpu())
        return F.normalize(torch.cat(out), dim=1)


def _image_normalisation(source: str, local_files_only: bool) -> tuple[tuple, tuple]:
    """image_mean / image_std from preprocessor_config.json (read directly: the image-processor classes are slow
    to import), else OpenAI CLIP's."""
    import json

    from transformers.utils import cached_file

    try:
        path = cached_file(source, "preprocessor_config.json", local_files_only=local_files_only,
                           _raise_exceptions_for_missing_entries=False)
        if path:
            cfg = json.loads(Path(path).read_text(encoding="utf-8"))
            mean = tuple(float(v) for v in cfg["image_mean"])
            std = tuple(float(v) for v in cfg["image_std"])
            if len(mean) == 3 and len(std) == 3 and all(v > 0 for v in std):
                return mean, std
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.debug("no usable preprocessor_config.json for %s; using OpenAI CLIP mean/std", source)
    return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


def _features(out) -> torch.Tensor:
    # transformers < 5 returns the projected features; 5.x returns an output whose pooler_output holds them.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_clip(name_or_path: str, device: str | torch.device = "cpu",
              local_files_only: bool | None = None) -> ClipModel:
    """Load CLIPModel + tokenizer (+ image processor settings) from a local folder or a hub id.

    local_files_only: None = use only local files when the hub is offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE),
    otherwise try the cache first and then the network. Missing weights raise one UserError that says what to do.
    """
    from transformers import AutoTokenizer, CLIPModel
    from transformers.utils import logging as hf_logging

    name = str(name_or_path)
    path = Path(name).expanduser()
    is_dir = path.is_dir()
    if not is_dir and (name.startswith((".", "/", "~")) or path.exists() or name.count("/") > 1):
        raise _missing(name, f"{path} is not a folder")
    source = str(path) if is_dir else name
    if local_files_only is None:
        attempts = [True] if (is_dir or _hub_offline()) else [True, False]
    else:
        attempts = [bool(local_files_only)]

    model = tokenizer = None
    last_error = "not found"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # keep transformers' own multi-line advice out of our one message
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # and the hub's per-retry network warnings
    try:
        for local_only in attempts:
            try:
                model = _from_pretrained(CLIPModel, source, local_only)
                tokenizer = _from_pretrained(AutoTokenizer, source, local_only)
                break
            except (OSError, ValueError) as exc:  # transformers raises these for missing / incomplete files
                last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                model = tokenizer = None
                if local_only and len(attempts) > 1:
                    log.info("CLIP %s is not in the local cache; trying the Hugging Face hub", name)
        if model is None:
            why = last_error
            if attempts == [True] and not is_dir:
                why += "; only local files were searched (offline)"
            raise _missing(name, why)
        mean, std = _image_normalisation(source, attempts[-1])
    finally:
        hf_logging.set_verbosity(verbosity)
        hub_logger.setLevel(hub_level)

    dev = torch.device(device)
    model = model.to(dev).eval()
    return ClipModel(name=name, model=model, tokenizer=tokenizer,
                     image_size=int(model.config.vision_config.image_size), mean=mean, std=std, device=dev)
