"""Loading weights from a local folder or a Hugging Face hub id: the cache first, the network second (unless offline),
and one clear UserError when neither has them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

import torch

from fastdream.errors import UserError

__all__ = ["LoadFailed", "resolve_source", "load_attempts", "load_first", "load_tiny_encoder", "hub_unreachable"]

T = TypeVar("T")


class LoadFailed(Exception):
    """Every attempt failed; `reason` is the first line of the last error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def resolve_source(spec: str, what: str, needs: str) -> tuple[bool, str]:
    """(is a local folder, the path or hub id to load). A path-like spec that is no folder is a UserError."""
    is_dir = Path(spec).expanduser().is_dir()
    if not is_dir and (spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace("/", "", 1)):
        raise UserError(f"{what} {spec!r}: no such folder ({needs})")
    return is_dir, str(Path(spec).expanduser()) if is_dir else spec


def load_attempts(is_dir: bool, local_files_only: bool | None) -> list[bool]:
    """The local_files_only values to try in order: the cache only for folders, HF_HUB_OFFLINE=1 or when asked;
    the network only when local_files_only is False; else the cache, then the network."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if local_files_only is False:
        return [False]
    return [True] if (is_dir or offline or local_files_only) else [True, False]


def hub_unreachable(timeout: float = 5.0) -> str | None:
    """None when the Hugging Face hub answers one request within `timeout` seconds, else why not."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 -- the HTTP client's errors differ between huggingface_hub versions
        return f"the Hugging Face hub is unreachable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def load_first(attempts: list[bool], load: Callable[[bool], T]) -> T:
    """load(local_files_only) for each attempt until one works; LoadFailed with the last error otherwise. A network
    attempt first checks that the hub answers at all, so an offline machine fails in seconds, not minutes."""
    last: Exception | None = None
    for lfo in attempts:
        if not lfo and (down := hub_unreachable()):
            last = OSError(down)
            continue
        try:
            return load(lfo)
        except (OSError, ValueError) as exc:  # hub and missing-file errors subclass OSError
            last = exc
    raise LoadFailed(str(last).strip().splitlines()[0][:200] if last else "unknown error")


def load_tiny_encoder(spec: str, dtype: torch.dtype, local_files_only: bool | None = None):
    """diffusers' AutoencoderTiny (TAESD) from a folder or hub id; one UserError line when it cannot be had."""
    from diffusers import AutoencoderTiny

    is_dir, source = resolve_source(spec, "guidance.tiny_encoder", "a diffusers AutoencoderTiny folder holds "
                                    "config.json and diffusion_pytorch_model.safetensors")
    try:
        return load_first(load_attempts(is_dir, local_files_only),
                          lambda lfo: AutoencoderTiny.from_pretrained(source, torch_dtype=dtype, local_files_only=lfo))
    except LoadFailed as exc:
        if is_dir:
            raise UserError(f"guidance.tiny_encoder {spec}: not a diffusers AutoencoderTiny folder ({exc.reason})") \
                from None
        raise UserError(f"cannot load the tiny encoder {spec!r}: it is neither in the local Hugging Face cache nor "
                        f"reachable ({exc.reason}). On a machine with internet run `huggingface-cli download {spec} "
                        f"--local-dir DIR` (about 10 MB), copy DIR here and pass `guidance.tiny_encoder=DIR`; or "
                        f"keep the full VAE with `guidance.encoder=vae`.") from None
