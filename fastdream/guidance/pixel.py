"""Score distillation with a pixel-space diffusion model (no VAE): the embedded shapes prior or any diffusers
UNet2DConditionModel with 3 input channels.

Renders are resized to the model's resolution, mapped to [-1, 1], noised at a random timestep; the UNet predicts the
noise with classifier-free guidance and the loss is built so that d loss / d x = w(t)·(ε̂ − ε), w(t) = 1 − ᾱ_t, on the
model-space pixels x.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from fastdream.guidance.base import Guidance, SDSOutput, check_noise_samples, mean_over_draws, repeat_for_draws

__all__ = ["PixelDiffusionGuidance", "FAST_PRESET"]

# The embedded shapes prior (builtin:shapes) is a 32x32 pixel model trained at a low guidance scale: render at its
# resolution, guide at a scale it tolerates, and keep the field small so a CPU run takes minutes.
# Two terms keep the object the prior's size instead of a slab that fills the field box (issue #14):
# - loss.sparsity: the prior's denoising loss keeps falling as a cube outgrows the frame (0.0118 at the trained size
#   0.5, 0.0026 at 1.0: flat red frames are "likely"; bench/prior_size_bias.py), and SDS seeks that mode. The SDS
#   gradient on 32x32 pixels is ~0.25 per value, so threestudio's weight 1.0 on mean sqrt(opacity^2 + 0.01) does
#   nothing here (measured: identical runs); SPARSITY_WEIGHT holds the size near the prior's range.
# - background.kind white: the prior saw white (half its data) or a colour kept away from the object's; a random
#   solid colour close to the object's made growth cheaper (opacity 1.00 at step 250 with random, later with white).
# Measured on "a red cube", seed 0: bench/results/2026-12-02-cpu-builtin-recipe.md.
SPARSITY_WEIGHT = 100.0
# - guidance_scale 7.5, not 20: at 20 the cube's faces came out lumpy with spiky corners (49.5% of its area > 0.05 off
#   the true faces); at 7.5 they are nearly flat (18.5%), at 5 no better (21.2%). Same runs, bench/results/
#   2026-12-02-cpu-builtin-recipe.md.
GUIDANCE_SCALE = 7.5
# - guidance.noise_samples 4: seed 0 at 7.5 was lucky; seeds 1 and 2 gave 45-49% off. Started from an exact cube, the
#   recipe drifts it to 29% off, and to 4% at a tenth of the learning rate: the surface random-walks under the noise
#   of single-draw SDS, and the prior at 32x32 pulls it back too weakly to undo it. Averaging 4 (t, noise) draws per
#   render took seeds 1 and 2 to 23% and 15% (16 draws: no better than 4) for ~2x the step time on a CPU.
NOISE_SAMPLES = 4
# - loss.normal_smoothness 30: the cubes' faces came out cupped with flared edges, a shape error under one pixel of
#   the 32x32 prior that no guidance schedule fixed; smoothing the field's normals at surface points flattens them
#   (red cube 12.3% -> 1.6-10% off over the recipes tried). It closes the torus's hole with a membrane unless the
#   strong elevation guidance comes early, so the prior's folder (fastdream.json) switches it at a quarter of the run.
#   10 of 12 shapes pass every bar (was 9): bench/results/2026-12-04-cpu-normal-smoothness.md.
NORMAL_SMOOTHNESS = 30.0
FAST_PRESET = {
    "train.iters": 600, "render.width": 32, "render.height": 32, "render.grid_resolution": 32,
    "render.render_step_size": 0.03, "guidance.guidance_scale": GUIDANCE_SCALE,
    "guidance.noise_samples": NOISE_SAMPLES, "shading.albedo_prob": 0.5, "shading.lambertian_prob": 0.5,
    "shading.textureless_prob": 0.0, "loss.orientation": 0.0, "optim.lr_mlp": 1e-2,
    "train.checkpoint_every": 200, "train.preview_every": 200, "train.eval_every": 200, "train.log_every": 10,
    "background.kind": "white", "loss.sparsity": SPARSITY_WEIGHT,
    "loss.normal_smoothness": NORMAL_SMOOTHNESS,
    "field.options": {"log2_hashmap_size": 14, "n_levels": 8, "finest_resolution": 256, "hidden_dim": 32,
                      "n_hidden_layers": 1, "blob_shape": "cone"},
}

log = logging.getLogger(__name__)


def prompts_ok(cond: torch.Tensor, uncond: torch.Tensor) -> bool:
    return cond.dim() == 3 and uncond.dim() == 3 and cond.shape[1:] == uncond.shape[1:]


class PixelDiffusionGuidance(Guidance):
    """SDS guidance from a pixel-space text-conditioned UNet (epsilon prediction)."""

    def __init__(self, unet, text_encoder, tokenizer, alphas_cumprod: torch.Tensor, device="cpu", dtype=None,
                 elevation_classifier=None):
        if unet.config.in_channels != 3 or unet.config.out_channels != 3:
            raise ValueError(f"PixelDiffusionGuidance needs a pixel-space UNet with 3 in/out channels, got "
                             f"{unet.config.in_channels}/{unet.config.out_channels} (a latent model needs its VAE)")
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.unet = unet.to(self.device, self.dtype).eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(self.device, self.dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.alphas_cumprod = alphas_cumprod.to(self.device, torch.float32)
        self.num_train_timesteps = self.alphas_cumprod.shape[0]
        self.resolution = int(unet.config.sample_size)
        if elevation_classifier is not None:  # fastdream.priors.elevation; see Guidance.guide_elevation
            self.elevation_classifier = elevation_classifier.to(self.device)

    @classmethod
    def from_builtin(cls, name: str, device="cpu", dtype=None) -> "PixelDiffusionGuidance":
        """A prior shipped in fastdream/priors/weights/NAME (e.g. 'shapes'); loads with no network."""
        from fastdream.priors.model import builtin_path
        return cls.from_pretrained(builtin_path(name), device=device, dtype=dtype)

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype=None, elevation_classifier: bool = True
                        ) -> "PixelDiffusionGuidance":
        """A local diffusers folder with unet/, text_encoder/, tokenizer/ and optionally scheduler/ (no vae/);
        elevation_classifier=False ignores its elevation_classifier/ (train_elevation replaces it)."""
        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel
        from fastdream.priors.model import _quiet_diffusers
        _quiet_diffusers()
        folder = Path(folder)
        if not (folder / "unet").is_dir():
            raise ValueError(f"{folder} has no unet/ folder; expected a diffusers pixel-space model")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32, local_files_only=True)
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32, local_files_only=True)
        tok_dir = folder / "tokenizer"
        if (tok_dir / "tokenizer_config.json").exists() and '"ShapesTokenizer"' in (
                tok_dir / "tokenizer_config.json").read_text():
            from fastdream.priors.tokenizer import ShapesTokenizer
            tokenizer = ShapesTokenizer.from_pretrained(str(tok_dir))
        else:
            from transformers import AutoTokenizer
            hf_tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)

            def tokenizer(texts, _t=hf_tok):
                return _t(texts, padding="max_length", max_length=_t.model_max_length, truncation=True,
                          return_tensors="pt").input_ids
        if (folder / "scheduler").is_dir():
            sched = DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True)
        else:
            sched = DDPMScheduler(num_train_timesteps=1000)
        from fastdream.priors.elevation import load_classifier
        return cls(unet, text, tokenizer, sched.alphas_cumprod.float(), device=device, dtype=dtype,
                   elevation_classifier=load_classifier(folder) if elevation_classifier else None)

    def model_space(self) -> tuple[int, int]:
        return 3, self.resolution

    @torch.no_grad()
    def _embed(self, prompts: list[str]) -> torch.Tensor:
        unknown = getattr(self.tokenizer, "unknown_words", None)
        if unknown is not None:
            for p in prompts:
                if unknown(p):
                    log.warning("prompt %r has words outside the prior's vocabulary: %s", p, ", ".join(unknown(p)))
        ids = self.tokenizer(list(prompts)).to(self.device)
        return self.text_encoder(input_ids=ids).last_hidden_state

    def encode_prompts(self, prompts: list[str], negative_prompt: str = "") -> dict:
        """{"cond": [P,L,D], "uncond": [1,L,D]} text embeddings."""
        if not prompts:
            raise ValueError("prompts must be a non-empty list")
        return {"cond": self._embed(prompts), "uncond": self._embed([negative_prompt])}

    def to_model_input(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] in [0,1] -> model-space pixels [B,3,R,R] in [-1,1] (differentiable resize)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images * 2.0 - 1.0

    @torch.no_grad()
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                      guidance_scale: float) -> torch.Tensor:
        """CFG noise prediction ε̂ = ε_u + s·(ε_c − ε_u) for noisy model-space pixels x_t [B,3,R,R], t [B]."""
        b = x_t.shape[0]
        emb = torch.cat([uncond.expand(b, *uncond.shape[1:]), cond.expand(b, *cond.shape[1:])]).to(self.dtype)
        eps = self.unet(torch.cat([x_t, x_t]).to(self.dtype), torch.cat([t, t]), encoder_hidden_states=emb).sample
        e_u, e_c = eps.float().chunk(2)
        return e_u + guidance_scale * (e_c - e_u)

    def sds(self, images: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, *, guidance_scale: float = 20.0,
            t_range: tuple[float, float] = (0.02, 0.98), generator: torch.Generator | None = None,
            noise_samples: int = 1) -> SDSOutput:
        """SDS loss whose gradient w.r.t. the model-space pixels is exactly w(t)·(ε̂ − ε), w(t) = 1 − ᾱ_t, averaged
        over `noise_samples` draws of (t, ε) per image.

        images [B,3,H,W] in [0,1]; cond [B or 1,L,D]; uncond [1 or B,L,D]. Random draws use `generator` (on the
        CPU or on this guidance's device).
        """
        k = check_noise_samples(noise_samples)
        if not prompts_ok(cond, uncond):
            raise ValueError(f"cond [P,L,D] and uncond [1,L,D] must be 3-D with matching L and D, got "
                             f"{tuple(cond.shape)} and {tuple(uncond.shape)}")
        lo, hi = t_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"t_range must satisfy 0 <= min <= max <= 1, got {t_range}")
        if cond.shape[0] not in (1, images.shape[0]):
            raise ValueError(f"cond must have batch 1 or {images.shape[0]}, got {cond.shape[0]}")
        x = self.to_model_input(images.to(self.device))
        xs = repeat_for_draws(x.detach().float(), k)
        b = xs.shape[0]
        t_min = int(round(lo * (self.num_train_timesteps - 1)))
        t_max = max(t_min, int(round(hi * (self.num_train_timesteps - 1))))
        gdev = generator.device if generator is not None else self.device
        t = torch.randint(t_min, t_max + 1, (b,), generator=generator, device=gdev).to(self.device)
        noise = torch.randn(xs.shape, generator=generator, device=gdev, dtype=torch.float32).to(self.device)
        a = self.alphas_cumprod[t][:, None, None, None]
        x_t = a.sqrt() * xs + (1 - a).sqrt() * noise
        cond = cond if cond.shape[0] == 1 else repeat_for_draws(cond, k)
        eps_hat = self.predict_noise(x_t, t, cond.to(self.device), uncond.to(self.device), guidance_scale)
        eps_hat = self.guide_elevation(eps_hat, x_t, a, k, t)
        grad = mean_over_draws(torch.nan_to_num((1 - a) * (eps_hat - noise)), k)
        out = SDSOutput(loss=self.sds_loss(x, grad), t=t, grad_norm=grad.norm().detach())
        if hasattr(out, "extras"):
            out.extras.update(model_input=x.detach(), noise=noise, noise_pred=eps_hat)
        return out
