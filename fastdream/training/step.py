"""One SDS step's forward: render the batch of random views, score it with the guidance, add the regularisers.

Nothing here synchronises with the host: cameras and shading are drawn on the CPU generator and the cameras reach
the GPU through pinned memory without blocking, renders use the fixed-capacity sampler on the GPU, and losses stay
on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastdream.cameras import CameraBatch, get_rays
from fastdream.guidance.base import ViewContext
from fastdream.guidance.view_prompts import view_indices
from fastdream.ops.transfer import to_device
from fastdream.training.losses import total_loss

__all__ = ["RenderedBatch", "cameras_to", "render_batch", "sds_losses", "mark"]


def mark(clock, name: str) -> None:
    """clock.mark(name) when profiling (a clock with start() and mark(name), e.g. CUDA events); else nothing."""
    if clock is not None:
        clock.mark(name)


def cameras_to(cams: CameraBatch, device: torch.device) -> CameraBatch:
    """The CPU-drawn cameras on `device`, copied through pinned memory without making the host wait."""
    return CameraBatch(*(to_device(getattr(cams, k), device) for k in CameraBatch.__dataclass_fields__))


@dataclass
class RenderedBatch:
    """The step's training views: cameras, per-view shading, backgrounds [B,H,W,3], per-view render outputs,
    ray directions [B,H,W,3], colour [B,H,W,3] and opacity [B,H,W] (float32); the field they were rendered from and,
    when asked for, `probe`: (u [M], offsets [M,3]) drawn on the CPU generator for regularisers that evaluate the
    field away from the rays (losses.normal_smoothness)."""

    cams: CameraBatch
    shading: list[str]
    ambient: list[float]
    background: torch.Tensor
    outs: list[dict]
    rays_d: torch.Tensor
    color: torch.Tensor
    opacity: torch.Tensor
    field: torch.nn.Module | None = None
    probe: tuple[torch.Tensor, torch.Tensor] | None = None


def render_batch(scene, cams: CameraBatch, shading: list[str], ambient: list[float], height: int, width: int, *,
                 stratified: bool, need_samples: bool, generator: torch.Generator, max_samples=None,
                 probe_points: int = 0) -> RenderedBatch:
    """Render each camera of `cams` (on the scene's device) over the scene's background (one call per view);
    probe_points > 0 also draws that many probe points' randoms (RenderedBatch.probe) on `generator`."""
    rays_o, rays_d = get_rays(cams.c2w, cams.fovy_deg, height, width)  # [B,H,W,3]
    bg = scene.background(rays_d, generator=generator)
    outs = []
    for b in range(cams.c2w.shape[0]):
        outs.append(scene.render_rays(rays_o[b].reshape(-1, 3).contiguous(), rays_d[b].reshape(-1, 3).contiguous(),
                                      shading=shading[b], light_position=cams.light_position[b],
                                      ambient_ratio=float(ambient[b]), background=bg[b].reshape(-1, 3),
                                      stratified=stratified, return_samples=need_samples,
                                      max_samples=max_samples))
    n = len(outs)
    color = torch.stack([o["color"] for o in outs]).float().reshape(n, height, width, 3)
    opacity = torch.stack([o["opacity"] for o in outs]).float().reshape(n, height, width)
    probe = None
    if probe_points > 0:  # drawn on the host generator, so a seed fixes them and the copy does not block
        probe = (to_device(torch.rand(probe_points, generator=generator), rays_d.device),
                 to_device(torch.randn(probe_points, 3, generator=generator), rays_d.device))
    return RenderedBatch(cams, shading, ambient, bg, outs, rays_d, color, opacity, scene.field, probe)


def _conditioning(prompts, batch: RenderedBatch, guidance_cfg) -> torch.Tensor:
    """The text embedding of each view: its view-dependent prompt (front/side/back/overhead), or the one prompt."""
    cond = prompts["cond"]
    if not guidance_cfg.view_dependent:
        return cond[:1].expand(batch.color.shape[0], *cond.shape[1:])
    idx = view_indices(batch.cams.elevation_deg, batch.cams.azimuth_deg, guidance_cfg.overhead_elevation,
                       guidance_cfg.front_azimuth_range)
    return cond[idx.to(cond.device)]


def sds_losses(guidance, batch: RenderedBatch, prompts: dict, cfg, *, t_range: tuple[float, float],
               generator: torch.Generator, latent: bool, clock=None,
               loss_weights=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The step's total loss and its terms ({"sds", regularisers..., "grad_norm"}) for a rendered batch, with the
    regulariser weights `loss_weights` (default cfg.loss; the trainer passes schedules.loss_weights).
    With a profiling `clock`, the backward marks "vae_backward" when the gradient reaches the images."""
    images = batch.color.permute(0, 3, 1, 2)
    if latent:
        images = torch.cat([images, batch.opacity[:, None]], 1)
    if clock is not None and images.requires_grad:
        images.register_hook(lambda grad: mark(clock, "vae_backward"))
    b, h, w = batch.opacity.shape
    guidance.set_view(ViewContext(cameras=batch.cams, height=h, width=w, shading=batch.shading,
                                  ambient_ratio=batch.ambient, background=batch.background.detach().float()))
    kwargs = {"as_latent": True} if latent else {}
    out = guidance.sds(images, _conditioning(prompts, batch, cfg.guidance), prompts["uncond"],
                       guidance_scale=cfg.guidance.guidance_scale, t_range=t_range, generator=generator,
                       noise_samples=cfg.guidance.noise_samples, **kwargs)
    total, losses = total_loss(out.loss, batch, cfg.loss if loss_weights is None else loss_weights)
    losses["grad_norm"] = out.grad_norm.float()
    losses["opacity_mean"] = batch.opacity.detach().mean()  # a frame-filling fog shows here first
    return total, losses
