"""The Guidance interface: something that scores renders with a diffusion model (or an oracle) for SDS."""
from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field

import torch

from fastdream.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["Guidance", "SDSOutput", "ViewContext", "ddpm_alphas_cumprod", "repeat_for_draws", "mean_over_draws"]


@dataclass
class SDSOutput:
    """loss: scalar whose gradient w.r.t. the model input is exactly w(t)·(ε̂ − ε); t: [B] int timesteps;
    grad_norm: detached scalar. `extras` holds intermediate tensors (latents, noise, noise_pred) for tests."""

    loss: torch.Tensor
    t: torch.Tensor
    grad_norm: torch.Tensor
    extras: dict = field(default_factory=dict)


@dataclass
class ViewContext:
    """What the trainer rendered this step, for guidances that need the camera (the oracle).

    cameras: fastdream.cameras.CameraBatch (B cameras, on the render device); height/width: render size (pixels);
    shading: one mode per camera; ambient_ratio: one per camera; background: [B,H,W,3] float in [0,1] (detached).
    """

    cameras: object
    height: int
    width: int
    shading: list[str]
    ambient_ratio: list[float]
    background: torch.Tensor


def ddpm_alphas_cumprod(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                        schedule: str = "scaled_linear") -> torch.Tensor:
    """ᾱ_t [T] float32 of the DDPM noise schedule (Stable Diffusion's scaled_linear by default)."""
    if schedule == "scaled_linear":
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float64) ** 2
    elif schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    else:
        raise ValueError(f"schedule must be scaled_linear or linear, got {schedule!r}")
    return torch.cumprod(1.0 - betas, 0).float()


def repeat_for_draws(x: torch.Tensor, draws: int) -> torch.Tensor:
    """[B, ...] -> [draws * B, ...], draw-major: one copy of the batch per (timestep, noise) draw."""
    return x if draws == 1 else x.repeat(draws, *([1] * (x.dim() - 1)))


def mean_over_draws(grad: torch.Tensor, draws: int) -> torch.Tensor:
    """[draws * B, ...] -> [B, ...]: the mean SDS gradient of each image over its draws."""
    return grad if draws == 1 else grad.reshape(draws, -1, *grad.shape[1:]).mean(0)


def check_noise_samples(noise_samples) -> int:
    """noise_samples itself when it is an int >= 1 (bool excluded); else ValueError naming it."""
    if isinstance(noise_samples, bool) or not isinstance(noise_samples, int) or noise_samples < 1:
        raise ValueError(f"noise_samples must be an integer >= 1, got {noise_samples!r}")
    return noise_samples


class Guidance(abc.ABC):
    """Scores images for Score Distillation Sampling.

    resolution: pixel-space models want renders at exactly this size; None means any size (SD resizes itself).
    num_train_timesteps and alphas_cumprod ([T], on the guidance device) define the noise schedule.
    """

    resolution: int | None = None
    num_train_timesteps: int = 1000
    alphas_cumprod: torch.Tensor
    #: True when sds(..., as_latent=True) accepts 4-channel [rgb, opacity] images as latents (latent warm-up).
    supports_latent: bool = False

    @abc.abstractmethod
    def encode_prompts(self, prompts: list[str], negative_prompt: str = "") -> dict:
        """{"cond": [P, ...], "uncond": [1, ...]} embeddings, computed once per run."""

    @abc.abstractmethod
    def sds(self, images: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, *, guidance_scale: float,
            t_range: tuple[float, float], generator: torch.Generator | None = None,
            noise_samples: int = 1) -> SDSOutput:
        """One SDS evaluation of images [B,3,H,W] in [0,1] (requiring grad). noise_samples: (timestep, noise)
        draws per image whose gradients are averaged: one render, a lower-variance update."""

    # Classifier guidance toward each view's camera elevation (fastdream.priors.elevation): a model folder that
    # ships an elevation_classifier/ sets elevation_classifier; guidance.elevation_guidance sets the scale.
    elevation_classifier = None
    elevation_scale = 0.0
    elevation_min_t = 0.0  # guidance.elevation_guidance_min_t: draws at lower t are left unguided
    elevation_above, elevation_above_factor = None, 1.0  # guidance.elevation_guidance_above(_factor)
    _view_elevations = None

    def set_view(self, view: ViewContext) -> None:
        """Called by the trainer before each sds(); the base keeps the cameras' elevations for elevation guidance."""
        self._view_elevations = view.cameras.elevation_deg.detach().float().reshape(-1)

    def use_elevation_guidance(self, scale: float, elevation_range: tuple[float, float] | None = None) -> None:
        """Guide toward each view's camera elevation at `scale` (guidance.elevation_guidance); needs a model whose
        folder ships an elevation classifier. elevation_range (the run's cameras) is checked against the elevations
        the classifier knows: it reads a camera outside them as its nearest end, which a warning says."""
        if scale > 0 and self.elevation_classifier is None:
            raise UserError(f"guidance.elevation_guidance needs a model folder with an elevation_classifier/ "
                            f"(builtin:shapes has one; python -m fastdream.priors.train_elevation trains one), "
                            f"which this {type(self).__name__} has not")
        if scale > 0:
            c, want = self.elevation_classifier.config, self.model_space()
            reads = (c.get("in_channels", 3), c["resolution"])
            if reads != want:
                raise UserError(f"the elevation classifier reads {reads[0]} x {reads[1]}² inputs, this model's space "
                                f"is {want[0]} x {want[1]}²: retrain it with python -m "
                                f"fastdream.priors.train_elevation --prior FOLDER")
            if elevation_range is not None and (min(elevation_range) < c["lo"] or max(elevation_range) > c["hi"]):
                log.warning("camera elevations %g..%g reach outside the %g..%g the elevation classifier was trained "
                            "on; it guides those views as if they were at its nearest end", *elevation_range,
                            c["lo"], c["hi"])
        self.elevation_scale = float(scale)

    def model_space(self) -> tuple[int, int]:
        """(channels, resolution) of what the diffusion model denoises; guidances with an elevation classifier say."""
        raise NotImplementedError

    def guide_elevation(self, eps_hat: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, draws: int,
                        t: torch.Tensor) -> torch.Tensor:
        """ε̂ − s·σ_t·∇_{x_t} log p(elevation | x_t) with the elevations set_view announced (the classifier adds the
        condition a prior's captions lack; by Bayes the sum is the score of p(x_t | c, e)). x_t [D·B,...] is
        draw-major over the B views (D = draws), abar [D·B,1,1,1] its ᾱ_t, t [D·B] its timesteps: draws below
        elevation_min_t·T stay unguided, views above elevation_above degrees get elevation_above_factor of the scale.
        Unchanged when the scale is 0."""
        if self.elevation_scale <= 0:
            return eps_hat
        views = self._view_elevations
        if views is None or views.shape[0] * draws != x_t.shape[0]:
            raise ValueError("elevation guidance needs set_view() with the cameras of the rendered batch")
        elevation = views.to(x_t.device).repeat(draws)
        sigma = (1 - abar).sqrt()
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            log_p = self.elevation_classifier.log_prob(x, sigma.reshape(-1), elevation).sum()
            (grad,) = torch.autograd.grad(log_p, x)
        guided = (t >= self.elevation_min_t * (self.num_train_timesteps - 1)).to(grad.dtype)
        if self.elevation_above is not None:
            guided = guided * torch.where(elevation > self.elevation_above, self.elevation_above_factor, 1.0)
        guided = guided.reshape(-1, 1, 1, 1)
        return eps_hat - self.elevation_scale * sigma * grad * guided

    def sample_timesteps(self, batch: int, t_range: tuple[float, float], device,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """t ~ U{⌊t_min·T⌋, …, ⌊t_max·T⌋} [B] int64 on `device`, drawn without a host sync."""
        lo = max(int(t_range[0] * self.num_train_timesteps), 0)
        hi = min(int(t_range[1] * self.num_train_timesteps), self.num_train_timesteps - 1)
        hi = max(hi, lo)
        gen_device = generator.device if generator is not None else device
        t = torch.randint(lo, hi + 1, (batch,), generator=generator, device=gen_device)
        return t.to(device)

    @staticmethod
    def sds_loss(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """0.5·‖x − sg(x − grad)‖² / B: its gradient w.r.t. x [B,...] is `grad` / B, the batch average, as in
        threestudio and stable-dreamfusion (a larger batch is a better estimate, not a larger step)."""
        target = (x.float() - grad.float()).detach()
        return 0.5 * torch.nn.functional.mse_loss(x.float(), target, reduction="sum") / x.shape[0]
