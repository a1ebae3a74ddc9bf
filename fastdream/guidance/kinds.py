"""The guidance kinds a run can name (the oracle target:NAME, a built-in prior builtin:NAME, Stable Diffusion) and
the fast recipe each declares."""
from __future__ import annotations

from fastdream.guidance import pixel, stable_diffusion, target

__all__ = ["KINDS", "kind_of", "fast_preset"]

# kind -> the dot-list overrides its `--preset fast` adds on top of the generic fast preset
KINDS: dict[str, dict] = {"target": target.FAST_PRESET, "builtin": pixel.FAST_PRESET, "sd": stable_diffusion.FAST_PRESET}


def kind_of(spec: str | None, model: str | None = None) -> str:
    """"target" for target:NAME, "builtin" for builtin:NAME (as the spec or as the SD model), else "sd"."""
    if spec and spec.startswith("target:"):
        return "target"
    if any(v.startswith("builtin:") for v in (spec, model) if v):
        return "builtin"
    return "sd"


def fast_preset(spec: str | None, model: str | None = None) -> dict:
    """The fast recipe of the guidance that (spec, model) name."""
    return KINDS[kind_of(spec, model)]
