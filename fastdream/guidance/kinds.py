"""The guidance kinds a run can name (the oracle target:NAME, a built-in prior builtin:NAME, Stable Diffusion) and
the recipe each declares: overrides for every preset, and more for `--preset fast`."""
from __future__ import annotations

from fastdream.guidance import pixel, stable_diffusion, target

__all__ = ["KINDS", "kind_of", "recipe"]

# kind -> (the dot-list overrides it adds to every preset, those it adds to the generic fast preset)
KINDS: dict[str, tuple[dict, dict]] = {
    "target": ({}, target.FAST_PRESET),
    "builtin": ({}, pixel.FAST_PRESET),
    "sd": (stable_diffusion.BASE_PRESET, stable_diffusion.FAST_PRESET),
}


def kind_of(spec: str | None, model: str | None = None) -> str:
    """"target" for target:NAME, "builtin" for builtin:NAME (as the spec or as the SD model), else "sd"."""
    if spec and spec.startswith("target:"):
        return "target"
    if any(v.startswith("builtin:") for v in (spec, model) if v):
        return "builtin"
    return "sd"


def recipe(spec: str | None, model: str | None, preset: str) -> dict:
    """The overrides the guidance that (spec, model) name adds to `preset`."""
    base, fast = KINDS[kind_of(spec, model)]
    return {**base, **(fast if preset == "fast" else {})}
