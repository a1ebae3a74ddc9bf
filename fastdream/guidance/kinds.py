"""The guidance kinds a run can name (the oracle target:NAME, a built-in prior builtin:NAME, Stable Diffusion) and
the recipe each declares: overrides for every preset, and more for `--preset fast`.

A builtin:NAME prior is a folder in fastdream/priors/weights: a pixel-space prior there is the "builtin" kind, one in
Stable Diffusion's layout (with a vae/) is the "sd" kind and loads exactly as an SD checkpoint does.
"""
from __future__ import annotations

import json
from pathlib import Path

from fastdream.errors import UserError
from fastdream.guidance import pixel, stable_diffusion, target

__all__ = ["KINDS", "kind_of", "recipe", "builtin_folder", "builtin_name", "is_sd_folder", "is_pixel_folder",
           "model_recipe", "MODEL_RECIPE_FILE", "MODEL_RECIPE_KEYS"]

# A model folder may say how its training data was captioned, so a run prompts it the same way: MODEL_RECIPE_FILE
# holds {"recipe": {key: value}} with keys from MODEL_RECIPE_KEYS, merged after the kind's recipe for builtin:NAME
# and local folders alike. Both shapes training scripts (fastdream/priors/train_shapes*.py) write it (the elevation
# above which their data say "overhead view"), and a folder with an elevation classifier the scale to guide it at;
# SD 2.1's folders have none and keep the defaults.
MODEL_RECIPE_FILE = "fastdream.json"
MODEL_RECIPE_KEYS = ("guidance.overhead_elevation", "guidance.front_azimuth_range", "guidance.elevation_guidance",
                     "guidance.elevation_guidance_end", "guidance.elevation_guidance_switch",
                     "guidance.elevation_guidance_min_t", "guidance.elevation_guidance_above",
                     "guidance.elevation_guidance_above_factor")

# recipe key -> (the dot-list overrides it adds to every preset, those it adds to the generic fast preset).
# "sd-small" is an SD model (builtin:NAME or a local folder) whose native image is at most
# stable_diffusion.SMALL_IMAGE_SIZE pixels: it keeps SD's recipe for every preset, and its fast preset is sized for
# the model instead of for SD 2.1 (see stable_diffusion.SMALL_FAST_PRESET).
KINDS: dict[str, tuple[dict, dict]] = {
    "target": ({}, target.FAST_PRESET),
    "builtin": ({}, pixel.FAST_PRESET),
    "sd": (stable_diffusion.BASE_PRESET, stable_diffusion.FAST_PRESET),
    "sd-small": (stable_diffusion.BASE_PRESET, stable_diffusion.SMALL_FAST_PRESET),
}


def builtin_folder(spec: str) -> Path:
    """The shipped folder of builtin:NAME; a one-line UserError naming the shipped priors when there is none."""
    from fastdream.priors.model import builtin_path
    return builtin_path(spec.split(":", 1)[1])


def is_sd_folder(folder: Path) -> bool:
    """True for a diffusers Stable Diffusion folder (a latent model: it has a vae/), False for a pixel-space one."""
    return (Path(folder) / "vae").is_dir()


def is_pixel_folder(source: str | Path | None) -> bool:
    """True for a local pixel-space prior folder (what fastdream.priors.train_shapes writes: unet/, no vae/)."""
    if not source:
        return False
    folder = Path(source).expanduser()
    return (folder / "unet" / "config.json").is_file() and not is_sd_folder(folder)


def builtin_name(spec: str | None, model: str | None) -> str | None:
    """The builtin:NAME a run names as its guidance spec or as its SD model (the spec first), or None."""
    return next((v for v in (spec, model) if v and v.startswith("builtin:")), None)


def kind_of(spec: str | None, model: str | None = None) -> str:
    """"target" for target:NAME; "builtin" for a pixel-space prior folder, shipped (builtin:NAME, as the spec or as
    the SD model) or local; else "sd" (Stable Diffusion's layout, a hub id)."""
    if spec and spec.startswith("target:"):
        return "target"
    return "builtin" if is_pixel_folder(_sd_source(spec, model)) else "sd"


def _sd_source(spec: str | None, model: str | None) -> str | None:
    """The folder or hub id an "sd" run loads (as load_guidance picks it)."""
    builtin = builtin_name(spec, model)
    if builtin is not None:
        return str(builtin_folder(builtin))
    return spec if spec and spec != "sd" else model


def model_recipe(source: str | None) -> dict:
    """The overrides a local model folder declares in MODEL_RECIPE_FILE ({} for a hub id or a folder without one); a
    one-line UserError for a file that is not {"recipe": {key: value}} with keys from MODEL_RECIPE_KEYS."""
    path = Path(source).expanduser() / MODEL_RECIPE_FILE if source else None
    if path is None or not path.is_file():
        return {}
    try:
        declared = json.loads(path.read_text()).get("recipe", {})
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{path} is not a JSON object with a 'recipe' object ({e})") from None
    unknown = sorted(set(declared) - set(MODEL_RECIPE_KEYS)) if isinstance(declared, dict) else ["(not an object)"]
    if unknown:
        raise UserError(f"{path}: a model may only declare {', '.join(MODEL_RECIPE_KEYS)}, not {', '.join(unknown)}")
    return dict(declared)


def recipe(spec: str | None, model: str | None, preset: str) -> dict:
    """The overrides the guidance that (spec, model) name adds to `preset`: its kind's recipe, then what the model's
    folder declares (model_recipe)."""
    key = kind_of(spec, model)
    source = None if key == "target" else _sd_source(spec, model)
    size = stable_diffusion.native_image_size(source) if key == "sd" else None
    if size is not None and size <= stable_diffusion.SMALL_IMAGE_SIZE:
        key = "sd-small"
    base, fast = KINDS[key]
    if key == "sd-small":  # render at the model's own size: a 64x64 model would only see 32x32 renders upsampled
        fast = {**fast, "render.width": size, "render.height": size}
    return {**base, **(fast if preset == "fast" else {}), **model_recipe(source)}
