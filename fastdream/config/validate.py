"""Validation of a Config: each section checked once, at the edge, with a UserError naming the field and its range.

It reads the enumerations where they are defined (render backends, background kinds, shading modes, field
activations) instead of copying them.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from fastdream.errors import UserError
from fastdream.guidance.encoders import ENCODERS
from fastdream.render.registry import BACKENDS as RENDER_BACKENDS
from fastdream.scene.background import KINDS as BACKGROUND_KINDS
from fastdream.scene.encoding import ENCODING_BACKENDS
from fastdream.scene.field import BLOB_SHAPES, DENSITY_ACTIVATIONS

__all__ = ["validate_config", "PRECISIONS"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 autocast on CUDA, fp32 elsewhere
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # whether it is there is checked when the run starts


def fail(name: str, allowed: str, value) -> None:
    raise UserError(f"config: {name} must be {allowed}, got {value!r}")


def check_range(name: str, value, lo=-math.inf, hi=math.inf, lo_open=False, integer=False, optional=False) -> None:
    """value is a number (an int when `integer`) in [lo, hi] ((lo, hi] when lo_open); None only when optional."""
    if value is None and optional:
        return
    interval = f"{'(' if lo_open else '['}{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        fail(name, f"{'an integer' if integer else 'a number'} in {interval}", value)
    if math.isnan(value) or not (lo < value if lo_open else lo <= value) or not value <= hi:
        fail(name, f"in {interval}", value)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        fail(name, f"one of {', '.join(choices)}", value)


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        fail(name, "true or false", value)


def check_pair(name, value, lo, hi, ordered=True) -> None:
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    if not ok or (ordered and value[0] > value[1]):
        raise UserError(f"config: {name} must be {'(min, max) with ' if ordered else '(a, b) with '}{lo} <= "
                        f"{'min <= max' if ordered else 'a, b'} <= {hi}, got {value!r}")


# a Hugging Face hub id: owner/name, letters, digits, '-', '_', '.' (what the hub accepts)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def check_guidance_name(name: str, value) -> None:
    """sd, target:NAME, builtin:NAME, an existing folder or a plausible hub id (owner/name): a typo fails here, at
    once, instead of minutes of hub retries."""
    if isinstance(value, str) and (value == "sd" or value.startswith(("target:", "builtin:"))
                                   or Path(value).expanduser().is_dir()):
        return
    if isinstance(value, str) and (value.startswith((".", "/", "~")) or value.count("/") > 1):
        raise UserError(f"config: {name} {value!r}: no such folder (a local model is a folder with unet/, vae/, "
                        f"text_encoder/, tokenizer/ and scheduler/ in it)")
    if not (isinstance(value, str) and _HUB_ID.fullmatch(value)):
        fail(name, "sd, target:NAME, builtin:NAME, a model folder that exists or a hub id owner/name", value)


def _guidance(cfg) -> None:
    g = cfg.guidance
    if not isinstance(cfg.prompt, str):
        fail("prompt", "a string", cfg.prompt)
    check_guidance_name("guidance.spec", g.spec)
    check_guidance_name("guidance.model", g.model)
    check_range("guidance.guidance_scale", g.guidance_scale, 0.0, 1000.0)
    check_range("guidance.noise_samples", g.noise_samples, 1, 256, integer=True)
    check_range("guidance.elevation_guidance", g.elevation_guidance, 0.0, 1000.0)
    check_range("guidance.elevation_guidance_end", g.elevation_guidance_end, 0.0, 1000.0, optional=True)
    check_range("guidance.elevation_guidance_switch", g.elevation_guidance_switch, 0.0, 1.0)
    check_range("guidance.elevation_guidance_min_t", g.elevation_guidance_min_t, 0.0, 1.0)
    check_range("guidance.elevation_guidance_above", g.elevation_guidance_above, -90.0, 90.0, optional=True)
    check_range("guidance.elevation_guidance_above_factor", g.elevation_guidance_above_factor, 0.0, 10.0)
    check_range("guidance.t_min", g.t_min, 0.0, 1.0)
    check_range("guidance.t_max", g.t_max, 0.0, 1.0)
    if g.t_min >= g.t_max:
        fail("guidance.t_min", f"< guidance.t_max ({g.t_max})", g.t_min)
    check_range("guidance.t_max_end", g.t_max_end, g.t_min, g.t_max, optional=True)
    check_range("guidance.overhead_elevation", g.overhead_elevation, -90.0, 90.0)
    check_range("guidance.front_azimuth_range", g.front_azimuth_range, 0.0, 90.0)
    check_range("guidance.latent_warmup", g.latent_warmup, 0.0, 1.0)
    check_choice("guidance.encoder", g.encoder, ENCODERS)
    if not isinstance(g.tiny_encoder, str) or not g.tiny_encoder:
        fail("guidance.tiny_encoder", "a folder or hub id of a diffusers AutoencoderTiny", g.tiny_encoder)
    for name in ("compile", "channels_last"):
        check_bool(f"guidance.{name}", getattr(g, name))


def _camera_and_shading(cfg) -> None:
    try:
        cfg.camera.validate()
    except ValueError as exc:
        raise UserError(f"config: {exc}") from None
    s = cfg.shading
    for name in ("albedo_prob", "lambertian_prob", "textureless_prob"):
        check_range(f"shading.{name}", getattr(s, name), 0.0, 1.0)
    if s.albedo_prob + s.lambertian_prob + s.textureless_prob <= 0:
        fail("shading.albedo_prob + lambertian_prob + textureless_prob", "> 0", 0)
    check_range("shading.albedo_only_steps", s.albedo_only_steps, 0, integer=True)
    check_pair("shading.ambient_range", s.ambient_range, 0.0, 1.0)


def _render(cfg) -> None:
    r = cfg.render
    check_range("render.width", r.width, 8, 1024, integer=True)
    check_range("render.height", r.height, 8, 1024, integer=True)
    check_range("render.batch_size", r.batch_size, 1, 64, integer=True)
    check_choice("render.backend", r.backend, RENDER_BACKENDS)
    check_range("render.render_step_size", r.render_step_size, 1e-4, 1.0)
    check_range("render.max_samples", r.max_samples, 1, 1 << 30, integer=True, optional=True)
    check_range("render.grid_resolution", r.grid_resolution, 8, 512, integer=True)
    check_range("render.grid_update_every", r.grid_update_every, 1, 1 << 20, integer=True)
    check_range("render.grid_warmup_steps", r.grid_warmup_steps, 0, integer=True)
    check_range("render.grid_occ_threshold", r.grid_occ_threshold, 0.0, 1e6)
    check_range("render.grid_ema_decay", r.grid_ema_decay, 0.0, 1.0)


def _field(cfg) -> None:
    check_range("field.aabb_radius", cfg.field.aabb_radius, 0.0, 100.0, lo_open=True)
    o = cfg.field.options
    check_range("field.options.n_levels", o.n_levels, 1, 32, integer=True)  # hash_grid_levels' limits
    check_choice("field.options.n_features_per_level", o.n_features_per_level, (1, 2, 4, 8))
    check_range("field.options.log2_hashmap_size", o.log2_hashmap_size, 1, 30, integer=True)
    check_range("field.options.base_resolution", o.base_resolution, 1, 1 << 16, integer=True)
    check_range("field.options.finest_resolution", o.finest_resolution, o.base_resolution, 1 << 20, integer=True)
    check_range("field.options.per_level_scale", o.per_level_scale, 1.0, 16.0, optional=True)
    check_range("field.options.hidden_dim", o.hidden_dim, 1, 1024, integer=True)
    check_range("field.options.n_hidden_layers", o.n_hidden_layers, 1, 16, integer=True)
    check_choice("field.options.density_activation", o.density_activation, DENSITY_ACTIVATIONS)
    check_range("field.options.blob_density", o.blob_density, 0.0, 1e4)
    check_range("field.options.blob_radius", o.blob_radius, 0.0, 100.0, lo_open=True)
    check_choice("field.options.blob_shape", o.blob_shape, BLOB_SHAPES)
    check_range("field.options.normal_eps", o.normal_eps, 0.0, 1.0, lo_open=True)
    check_choice("field.options.backend", o.backend, ENCODING_BACKENDS)


def _optim_loss_background(cfg) -> None:
    o = cfg.optim
    for name in ("lr_encoding", "lr_mlp", "lr_background"):
        check_range(f"optim.{name}", getattr(o, name), 0.0, 10.0)
    check_pair("optim.betas", o.betas, 0.0, 1.0, ordered=False)
    check_range("optim.eps", o.eps, 0.0, 1.0)
    check_range("optim.grad_clip", o.grad_clip, 0.0, lo_open=True, optional=True)
    check_range("optim.lr_final", o.lr_final, 0.0, 1.0, lo_open=True)
    check_bool("optim.fused", o.fused)
    for name in ("orientation", "sparsity", "entropy", "normal_smoothness"):
        check_range(f"loss.{name}", getattr(cfg.loss, name), 0.0, 1e6)
    check_range("loss.normal_smoothness_start", cfg.loss.normal_smoothness_start, 0.0, 1.0)
    check_choice("background.kind", cfg.background.kind, BACKGROUND_KINDS)
    check_range("background.hidden", cfg.background.hidden, 1, 1024, integer=True)


def _train(cfg) -> None:
    t = cfg.train
    check_range("train.iters", t.iters, 1, 10_000_000, integer=True)
    check_range("train.seed", t.seed, 0, 2**63 - 1, integer=True)
    check_choice("train.precision", t.precision, PRECISIONS)
    if not isinstance(t.device, str) or not _DEVICE.fullmatch(t.device):
        fail("train.device", "auto, cpu, cuda or cuda:N", t.device)
    for name in ("log_every", "checkpoint_every", "preview_every", "eval_every"):
        check_range(f"train.{name}", getattr(t, name), 0, 10_000_000, integer=True)
    if t.log_every < 1:
        fail("train.log_every", "an integer in [1, 10000000]", t.log_every)
    check_range("train.eval_views", t.eval_views, 0, 64, integer=True)
    check_range("train.average_from", t.average_from, 0.0, 1.0)
    check_range("train.eval_resolution", t.eval_resolution, 8, 1024, integer=True)
    for name in ("cuda_graphs", "cudnn_benchmark"):
        check_bool(f"train.{name}", getattr(t, name))


def validate_config(cfg) -> None:
    """Check every section of a Config; UserError naming the first bad field and its allowed values."""
    for check in (_guidance, _camera_and_shading, _render, _field, _optim_loss_background, _train):
        check(cfg)
