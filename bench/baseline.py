"""The threestudio-equivalent baseline step (the `baseline` row of the step section).

What it is, exactly: one SDS step written the way threestudio's dreamfusion-sd system runs it under PyTorch
Lightning with precision "16-mixed", on the same scene, cameras, models and losses as ours:
  - the scene: fastdream's Field (hash grid + MLP, fp32 master weights), occupancy grid and background, rendered by
    fastdream's PyTorch render backend (render.backend=torch: dense-lattice marching with boolean masks, PyTorch
    shading and compositing, exact sample counts) under torch.autocast(float16). threestudio renders with nerfacc and
    tinycudann; the hash encoding here is fastdream's CUDA kernel (the kernels section compares it with tcnn), and
    normals are our 4-point tetrahedral differences (threestudio's analytic normals cost more);
  - cameras drawn on the CPU and moved with blocking .to(device) copies;
  - the diffusers calls threestudio makes, with autocast off around them: vae.encode(2x-1).latent_dist.sample() *
    scaling_factor on the 512x512 resize, scheduler.add_noise, unet(cat([x_t]*2), cat([t]*2) in the weights' dtype,
    encoder_hidden_states=[uncond, view-dependent cond]).sample, CFG, w = 1 - alphas_cumprod[t],
    grad = nan_to_num(w * (eps_hat - eps)), loss = 0.5 * mse(latents, (latents - grad).detach(), sum) / B; the
    weights in the same dtype as ours (bf16 on H100/H200; threestudio uses fp16, the same tensor-core rate), default
    memory format, SDPA attention;
  - the same regularisers as ours (fastdream.training.losses.total_loss);
  - torch.optim.Adam (foreach, not fused) behind torch.amp.GradScaler (fp16 loss scaling, which reads found-inf
    on the host every step), as Lightning's 16-mixed does; cudnn.benchmark off (Lightning's default);
  - the occupancy grid refreshed every render.grid_update_every steps with the same rule as ours;
  - no CUDA graphs, no torch.compile, no logging in the loop (Lightning's per-step progress bar would add a sync).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.step_models import Models
from bench.step_timing import count_syncs, sizes, time_steps
from bench.step_trainer import bench_config, release
from fastdream.cameras import CameraSampler
from fastdream.guidance.view_prompts import view_indices
from fastdream.scene.scene import Scene
from fastdream.training import schedules
from fastdream.training.losses import total_loss
from fastdream.training.optim import param_groups
from fastdream.training.step import render_batch

__all__ = ["BaselineStep", "run_baseline", "OVERRIDES"]

OVERRIDES = {"render.backend": "torch"}


class BaselineStep:
    """train_step(): one threestudio-style SDS step on the bench config (see the module docstring)."""

    def __init__(self, cfg, models: Models, device: torch.device):
        self.cfg, self.models, self.device = cfg, models, device
        torch.manual_seed(cfg.train.seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
        for m in (models.unet, models.vae):
            m.to(memory_format=torch.contiguous_format)
        self.scene = Scene.from_config(cfg, device)
        self.sampler = CameraSampler(cfg.camera)
        self.cam_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.adam = torch.optim.Adam(param_groups(self.scene, cfg.optim), betas=cfg.optim.betas, eps=cfg.optim.eps)
        self.amp = device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.scheduler = models.scheduler()
        self.alphas = self.scheduler.alphas_cumprod.to(device)
        self.step = cfg.render.grid_warmup_steps

    def _sds(self, batch) -> torch.Tensor:
        g, m = self.cfg.guidance, self.models
        images = batch.color.permute(0, 3, 1, 2)
        B, size = images.shape[0], m.unet.config.sample_size * 2 ** (len(m.vae.config.block_out_channels) - 1)
        x = F.interpolate(images, (size, size), mode="bilinear", align_corners=False)
        with torch.autocast(self.device.type, enabled=False):
            latents = m.vae.encode((x * 2.0 - 1.0).to(m.dtype)).latent_dist.sample() * m.vae.config.scaling_factor
            latents = latents.float()
            t = torch.randint(int(g.t_min * 1000), int(g.t_max * 1000) + 1, [B], dtype=torch.long,
                              device=self.device)
            idx = view_indices(batch.cams.elevation_deg, batch.cams.azimuth_deg, g.overhead_elevation,
                               g.front_azimuth_range)
            emb = torch.cat([m.prompts["uncond"].expand(B, -1, -1), m.prompts["cond"][idx]])
            with torch.no_grad():
                noise = torch.randn_like(latents)
                x_t = self.scheduler.add_noise(latents, noise, t)
                eps = m.unet(torch.cat([x_t] * 2).to(m.dtype), torch.cat([t] * 2).to(m.dtype),
                             encoder_hidden_states=emb).sample.float()
                eps_u, eps_c = eps.chunk(2)
                eps_hat = eps_u + g.guidance_scale * (eps_c - eps_u)
            w = (1 - self.alphas[t]).view(-1, 1, 1, 1)
            grad = torch.nan_to_num(w * (eps_hat - noise))
            return 0.5 * F.mse_loss(latents, (latents - grad).detach(), reduction="sum") / B

    def train_step(self) -> None:
        cfg, r = self.cfg, self.cfg.render
        cams = self.sampler.sample(r.batch_size, self.cam_gen).to(self.device)  # blocking copies
        shading, ambient = schedules.sample_shading(cfg.shading, self.step, r.batch_size, self.cam_gen)
        self.scene.train()
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            batch = render_batch(self.scene, cams, shading, ambient, r.height, r.width, stratified=r.stratified,
                                 need_samples=cfg.loss.orientation > 0, generator=self.cam_gen)
        total, _ = total_loss(self._sds(batch), batch, cfg.loss)
        self.adam.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.adam)
        self.scaler.update()
        self.update_grid()
        self.step += 1

    @torch.no_grad()
    def update_grid(self) -> None:
        r, field = self.cfg.render, self.scene.field
        field.eval()
        self.scene.grid.update(self.step, lambda x: field.density(x) * r.render_step_size,
                               occ_thre=r.grid_occ_threshold, ema_decay=r.grid_ema_decay,
                               warmup_steps=r.grid_warmup_steps, n=r.grid_update_every)
        field.train()


def run_baseline(models: Models, device: torch.device, quick: bool, workdir: str) -> dict:
    """Steps/s, per-step ms, host syncs per step and peak memory of the baseline step."""
    del workdir
    s = sizes(quick)
    cfg = bench_config(device, quick, OVERRIDES)
    base = BaselineStep(cfg, models, device)
    try:
        base.step = 0
        base.update_grid()  # the warm-up update (every cell), then on as past the grid's warm-up
        base.step = cfg.render.grid_warmup_steps
        for _ in range(s["warmup"]):
            base.train_step()
        out = {"status": "ok", "driver": "bench.baseline.BaselineStep.train_step", "overrides": OVERRIDES,
               "note": "threestudio-equivalent: see bench/baseline.py's docstring", "phases_ms": None,
               "render": f"{s['render']}x{s['render']}"}
        out.update(time_steps(base.train_step, device, s["steps"]))
        out.update(count_syncs(base.train_step, device, s["sync_steps"]))
        return out
    finally:
        del base
        release(device)
