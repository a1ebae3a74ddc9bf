"""The analytic oracle guidance `target:NAME`: a procedural scene rendered exactly from the training camera.

It predicts ε̂ = (x_t − √ᾱ_t·x*)/√(1−ᾱ_t), where x* is the exact render of the target (same camera, shading, light
and background). Then w(t)·(ε̂ − ε) = w(t)·√ᾱ_t/√(1−ᾱ_t)·(x − x*), so SDS with this oracle must reconstruct the
target: a test of the whole loop against a known answer, with no diffusion weights.
"""
from __future__ import annotations

import torch

from fastdream import procedural
from fastdream.cameras import get_rays
from fastdream.errors import UserError
from fastdream.guidance.base import (Guidance, SDSOutput, ViewContext, check_noise_samples,
                                     ddpm_alphas_cumprod)

__all__ = ["TARGETS", "target_scene", "TargetGuidance", "FAST_PRESET"]

# The oracle needs no model and CPU users run it first (README): a small, fast recipe for it.
FAST_PRESET = {
    "train.iters": 250, "render.width": 24, "render.height": 24, "render.grid_resolution": 32,
    "render.render_step_size": 0.04, "shading.albedo_prob": 1.0, "shading.lambertian_prob": 0.0,
    "shading.textureless_prob": 0.0, "loss.orientation": 0.0, "optim.lr_mlp": 1e-2,
    "train.checkpoint_every": 125, "train.preview_every": 125, "train.eval_every": 125, "train.log_every": 10,
    "train.eval_resolution": 48,
    "field.options": {"log2_hashmap_size": 14, "n_levels": 8, "finest_resolution": 256, "hidden_dim": 32,
                      "n_hidden_layers": 1},
}



def _snowman() -> procedural.Scene:
    S = procedural.Shape
    return procedural.Scene([
        S("sphere", "white", (0.0, 0.0, -0.40), 0.38),
        S("sphere", "white", (0.0, 0.0, 0.18), 0.28),
        S("sphere", "white", (0.0, 0.0, 0.58), 0.20),
        S("sphere", "orange", (0.21, 0.0, 0.58), 0.06),
        S("sphere", "black", (0.16, 0.08, 0.66), 0.04),
        S("sphere", "black", (0.16, -0.08, 0.66), 0.04),
        S("sphere", "black", (0.27, 0.0, 0.22), 0.04),
    ])


def _rocket() -> procedural.Scene:
    S = procedural.Shape
    return procedural.Scene([
        S("cylinder", "white", (0.0, 0.0, -0.2), 0.3),
        S("cone", "red", (0.0, 0.0, 0.4), 0.3),
        S("cube", "blue", (0.0, 0.0, -0.6), 0.15),
    ])


TARGETS = {
    "sphere": lambda: procedural.Scene([procedural.Shape("sphere", "orange", (0.0, 0.0, 0.0), 0.5)]),
    "snowman": _snowman,
    "rocket": _rocket,
    # every primitive alone, coloured, for quick checks (target:cube, target:torus, ...)
    **{k: (lambda k=k: procedural.Scene([procedural.Shape(k, "blue", (0.0, 0.0, 0.0), 0.5)]))
       for k in procedural.PRIMITIVES if k != "sphere"},
}


def target_scene(name: str) -> procedural.Scene:
    """The named target scene; UserError listing the choices for an unknown name."""
    if name not in TARGETS:
        raise UserError(f"unknown oracle target {name!r}; choose one of {', '.join(sorted(TARGETS))} "
                        f"(e.g. --guidance target:sphere)")
    return TARGETS[name]()


class TargetGuidance(Guidance):
    """Oracle guidance in pixel space (x = 2·image − 1) against an exactly rendered procedural target."""

    def __init__(self, name: str, device="cpu"):
        self.name = name
        self.scene = target_scene(name)
        self.device = torch.device(device)
        self.alphas_cumprod = ddpm_alphas_cumprod().to(self.device)
        self.num_train_timesteps = self.alphas_cumprod.numel()
        self._view: ViewContext | None = None

    def encode_prompts(self, prompts: list[str], negative_prompt: str = "") -> dict:
        # The oracle ignores text; placeholders keep the trainer's code path identical.
        return {"cond": torch.zeros(len(prompts), 1, device=self.device), "uncond": torch.zeros(1, 1, device=self.device)}

    def set_view(self, view: ViewContext) -> None:
        super().set_view(view)
        self._view = view

    @torch.no_grad()
    def render_target(self, view: ViewContext) -> torch.Tensor:
        """Exact target images [B,3,H,W] in [0,1] for the cameras, shading, light and background of `view`."""
        cams = view.cameras
        out = []
        for b in range(cams.c2w.shape[0]):
            rays_o, rays_d = get_rays(cams.c2w[b].to(self.device), cams.fovy_deg[b].to(self.device), view.height,
                                      view.width)
            bg = view.background[b].to(self.device).reshape(-1, 3)
            rgb, _ = procedural.render(self.scene, rays_o.reshape(-1, 3), rays_d.reshape(-1, 3),
                                       light_position=cams.light_position[b].to(self.device),
                                       shading=view.shading[b], background=bg, ambient_ratio=view.ambient_ratio[b])
            out.append(rgb.reshape(view.height, view.width, 3).permute(2, 0, 1))
        return torch.stack(out)

    def sds(self, images, cond, uncond, *, guidance_scale: float = 1.0, t_range=(0.02, 0.98), generator=None,
            target: torch.Tensor | None = None, noise_samples: int = 1) -> SDSOutput:
        """SDS with the oracle. images [B,3,H,W] in [0,1]; `target` overrides the render of the current view."""
        # the oracle's prediction is exact: no text, no CFG, and ε cancels out of ε̂ − ε, so extra draws would only
        # average over t
        del cond, uncond, guidance_scale
        check_noise_samples(noise_samples)
        if target is None:
            if self._view is None:
                raise RuntimeError("TargetGuidance.sds needs the camera: call set_view() first (the trainer does)")
            if (self._view.height, self._view.width) != tuple(images.shape[-2:]):
                raise ValueError(f"images are {tuple(images.shape[-2:])} but the view is "
                                 f"{(self._view.height, self._view.width)}")
            target = self.render_target(self._view)
        B = images.shape[0]
        x = images.float() * 2.0 - 1.0
        x_star = target.to(x) * 2.0 - 1.0
        t = self.sample_timesteps(B, t_range, x.device, generator)
        abar = self.alphas_cumprod.to(x.device)[t].view(B, 1, 1, 1)
        gen_device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=gen_device).to(x.device)
        with torch.no_grad():
            x_t = abar.sqrt() * x + (1 - abar).sqrt() * noise
            noise_pred = (x_t - abar.sqrt() * x_star) / (1 - abar).sqrt()
            grad = (1 - abar) * (noise_pred - noise)
        loss = self.sds_loss(x, grad)
        return SDSOutput(loss=loss, t=t, grad_norm=grad.norm(), extras={"noise": noise, "noise_pred": noise_pred,
                                                                        "grad": grad, "target": target})
