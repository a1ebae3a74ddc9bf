"""Presets (fast | default | quality) and make_config: preset < guidance kind's fast recipe < YAML < flags <
key=value overrides, resolved and validated."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastdream.config.overrides import apply_overrides, from_dict, load_yaml
from fastdream.config.schema import Config
from fastdream.errors import UserError
from fastdream.guidance.kinds import recipe

__all__ = ["PRESETS", "make_config"]

# Presets are dot-list overrides on top of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "train.iters": 1500, "render.width": 64, "render.height": 64, "render.grid_resolution": 32,
        "render.render_step_size": 0.02, "train.checkpoint_every": 250, "train.preview_every": 500,
        "train.eval_every": 250, "train.log_every": 10,
    },
    "default": {},
    "quality": {
        "train.iters": 15000, "render.width": 128, "render.height": 128, "render.grid_resolution": 128,
        "render.render_step_size": 0.005, "loss.orientation": 1e-2, "shading.albedo_only_steps": 1000,
        "guidance.t_max_end": 0.5,
    },
}


def make_config(preset: str = "default", yaml_file: str | Path | None = None, overrides=None,
                prompt: str | None = None, **flags) -> Config:
    """Resolve preset < guidance recipe < YAML < flags (dot keys, None = unset) < overrides, then validate."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    yaml_dict = load_yaml(yaml_file) if yaml_file is not None else None

    def layered(guidance_recipe: dict) -> Config:
        cfg = Config()
        apply_overrides(cfg, PRESETS[preset])
        apply_overrides(cfg, guidance_recipe)
        if yaml_dict is not None:
            cfg = from_dict(yaml_dict, cfg)
        apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None})
        if prompt is not None:
            cfg.prompt = prompt
        if overrides:
            apply_overrides(cfg, overrides)
        return cfg

    # each guidance kind adds its own recipe (and knows what "fast" means for it); the guidance is the one the run
    # ends up naming, whether by a flag, the YAML or an override
    named = layered({}).guidance
    return layered(recipe(named.spec, named.model, preset)).validate()
