"""The run configuration's dataclass tree; every field has a default, and config.yaml holds a resolved copy."""
from __future__ import annotations

from dataclasses import dataclass, fields
from dataclasses import field as _field

from fastdream.cameras import CameraConfig
from fastdream.config.validate import validate_config
from fastdream.guidance.encoders import DEFAULT_TINY_ENCODER
from fastdream.guidance.stable_diffusion import DEFAULT_MODEL as DEFAULT_SD_MODEL
from fastdream.guidance.view_prompts import FRONT_AZIMUTH_RANGE, OVERHEAD_ELEVATION

__all__ = ["Config", "GuidanceConfig", "ShadingConfig", "RenderConfig", "FieldConfig", "FieldOptions",
           "OptimConfig", "LossConfig", "BackgroundConfig", "TrainConfig", "DEFAULT_SD_MODEL"]


@dataclass
class GuidanceConfig:
    """What scores the renders: "sd" (Stable Diffusion from `model`), "target:NAME" (oracle) or "builtin:NAME"."""

    spec: str = "sd"
    model: str = DEFAULT_SD_MODEL
    guidance_scale: float = 100.0
    noise_samples: int = 1  # (t, noise) draws per render whose SDS gradients are averaged: one render, less variance
    t_min: float = 0.02
    t_max: float = 0.98
    t_max_end: float | None = None  # anneal t_max linearly to this value over training (None: no annealing)
    negative_prompt: str = ""
    view_dependent: bool = True
    overhead_elevation: float = OVERHEAD_ELEVATION  # degrees; above this the view prompt is "overhead"
    front_azimuth_range: float = FRONT_AZIMUTH_RANGE  # |azimuth| below this is "front"; above 180 - this is "back"
    # classifier guidance toward the camera's elevation (a pixel prior whose folder has an elevation_classifier/)
    elevation_guidance: float = 0.0
    # a schedule: the scale becomes elevation_guidance_end once elevation_guidance_switch of the run has passed (a
    # gentle scale while the shape forms, a strong one to settle its height; None keeps elevation_guidance throughout)
    elevation_guidance_end: float | None = None
    elevation_guidance_switch: float = 0.5
    # guide only the draws with t >= this fraction of the noise schedule (where the noisy image no longer shows the
    # elevation); 0 guides every draw
    elevation_guidance_min_t: float = 0.0
    # views whose camera is above elevation_guidance_above degrees are guided at elevation_guidance_above_factor times
    # the scale (a strong scale settles bottoms from the low views but flares a cube's top from the high ones)
    elevation_guidance_above: float | None = None
    elevation_guidance_above_factor: float = 1.0
    half_precision: bool = True  # fp16/bf16 weights on GPU; always fp32 on CPU
    compile: bool = False  # torch.compile the image encoder and the UNet (CUDA; the first steps compile)
    latent_warmup: float = 0.0  # fraction of steps that feed [rgb, opacity] as latents and skip the VAE
    encoder: str = "vae"  # vae (SD's own VAE encoder) | tiny (TAESD: much cheaper, approximate latents)
    tiny_encoder: str = DEFAULT_TINY_ENCODER  # folder or hub id of the AutoencoderTiny used by encoder=tiny
    channels_last: bool = True  # channels_last memory format for the encoder and the UNet (CUDA only)


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
class FieldOptions:
    """fastdream.Field's keyword arguments (tiny-cuda-nn's HashGrid key names), typed; defaults are Field's."""

    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    finest_resolution: int = 2048
    per_level_scale: float | None = None  # None: derived from base and finest resolution
    hidden_dim: int = 64
    n_hidden_layers: int = 2
    density_activation: str = "trunc_exp"  # one of fastdream.scene.field.DENSITY_ACTIVATIONS
    blob_density: float = 10.0
    blob_radius: float = 0.5
    blob_shape: str = "gaussian"  # one of fastdream.scene.field.BLOB_SHAPES
    normal_eps: float = 1e-2
    backend: str = "auto"  # hash-encoding backend: auto | cuda | cpu | torch | tcnn

    def to_kwargs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class FieldConfig:
    """Scene field: the aabb half-size and the options of fastdream.Field."""

    aabb_radius: float = 1.0
    options: FieldOptions = _field(default_factory=FieldOptions)


@dataclass
class OptimConfig:
    """Adam with one learning rate per parameter group."""

    lr_encoding: float = 1e-2
    lr_mlp: float = 1e-3
    lr_background: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-15
    grad_clip: float | None = None
    lr_final: float = 1.0  # every group's lr falls to this fraction of its own by the last step (cosine); 1 = constant
    fused: bool = True  # torch's fused Adam (one kernel for every parameter) on CUDA; ignored elsewhere


@dataclass
class LossConfig:
    """Regulariser weights (0 disables)."""

    orientation: float = 1e-2
    sparsity: float = 0.0  # mean sqrt(opacity² + 0.01): pushes empty space empty
    entropy: float = 0.0  # binary entropy of the opacity: pushes rays to fully opaque or fully empty
    normal_smoothness: float = 0.0  # |normal change| over ~0.03 world units at surface points: flattens faces
    normal_smoothness_start: float = 0.0  # the fraction of train.iters before which normal_smoothness is off


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
    # from this share of the run on, keep the running mean of the field's weights and end the run on it (1 = off)
    average_from: float = 1.0
    cuda_graphs: bool = False  # replay the UNet's CFG forward from a CUDA graph (CUDA only)
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest convolution algorithms for the fixed shapes (CUDA)


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
        validate_config(self)
        return self
