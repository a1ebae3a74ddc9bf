"""One full SDS step at a 64x64 render with SD-2.1-base-sized random-weight models (no download).

The step is composed here, phase by phase, from the public pieces the trainer uses (fastdream.render.rays.render_rays,
the Stable Diffusion guidance's encode_images / predict_noise / sds_loss, torch.optim.Adam, OccupancyGrid.update),
so that each phase can be timed; it is not fastdream.training.trainer's loop itself. Phases (CUDA events, one sync per run):
  render_fwd      rays -> render_rays(..., backend) -> image [1,3,H,W]
  vae_encode      resize to 512, VAE encoder (with gradient)
  unet            t, noise, UNet on [uncond, cond] (no grad), CFG, w(t)(eps_hat - eps), SDS loss
  vae_backward    loss.backward() until the gradient reaches the rendered image (a tensor hook marks it)
  render_backward the rest of backward: compositing, shading, field, encoding
  optimizer       Adam step + zero_grad
  grid_update     OccupancyGrid.update(step, field.density) (acts every 16th step; averaged over all steps)
The same step runs once per renderer backend ("fastdream", "torch", and "nerfacc" when importable on CUDA).
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F

from bench import common, sd_configs

log = logging.getLogger("fastdream.bench")

PHASES = ("render_fwd", "vae_encode", "unet", "vae_backward", "render_backward", "optimizer", "grid_update")
DIFFUSION_PHASES = ("vae_encode", "unet", "vae_backward")


def sizes(quick: bool) -> dict:
    if quick:
        return dict(render=16, warmup=1, steps=2, grid_res=32, step_size=2 * math.sqrt(3) / 32)
    return dict(render=64, warmup=5, steps=30, grid_res=64, step_size=0.01)


class _MinimalSDS:
    """Used only when fastdream.guidance.stable_diffusion is missing: the same math as its SDS step."""

    def __init__(self, unet, vae, scheduler, device, dtype):
        self.unet, self.vae, self.device, self.dtype = unet, vae, device, dtype
        self.alphas_cumprod = scheduler.alphas_cumprod.to(device, torch.float32)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.latent_size = int(unet.config.sample_size)
        self.image_size = self.latent_size * 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(vae.config.scaling_factor)

    def encode_images(self, images, generator=None):
        x = F.interpolate(images.float(), (self.image_size, self.image_size), mode="bilinear", align_corners=False)
        post = self.vae.encode((x * 2 - 1).to(self.dtype)).latent_dist
        return (post.mean + post.std * torch.randn_like(post.mean)) * self.scaling_factor

    def sample_timesteps(self, batch, t_range, device, generator=None):
        lo, hi = int(t_range[0] * self.num_train_timesteps), int(t_range[1] * self.num_train_timesteps)
        return torch.randint(lo, hi + 1, (batch,), device=device)

    def predict_noise(self, x_t, t, cond, uncond, guidance_scale):
        B = x_t.shape[0]
        emb = torch.cat([uncond.expand(B, *uncond.shape[1:]), cond]).to(self.dtype)
        out = self.unet(torch.cat([x_t, x_t]).to(self.dtype), torch.cat([t, t]), encoder_hidden_states=emb).sample
        eps_u, eps_c = out.float().chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    @staticmethod
    def sds_loss(x, grad):
        return 0.5 * F.mse_loss(x.float(), (x.float() - grad.float()).detach(), reduction="sum")


def build_guidance(quick: bool, device: torch.device):
    """SD-2.1-base-sized (or tiny, for --quick) UNet, VAE and text encoder with random weights, wrapped in the
    project's StableDiffusionGuidance when available. Returns (guidance, cond, uncond, info)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg = sd_configs.TINY_UNET if quick else sd_configs.SD21_BASE_UNET
    vae_cfg = sd_configs.TINY_VAE if quick else sd_configs.SD21_BASE_VAE
    text_cfg = sd_configs.TINY_TEXT if quick else sd_configs.SD21_BASE_TEXT
    dtype = torch.float32 if device.type == "cpu" else (
        torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):  # random init directly on the device: seconds instead of a minute on the CPU
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    scheduler = DDPMScheduler(**sd_configs.SD_SCHEDULER)
    build_s = time.perf_counter() - t0
    n_params = {"unet": sum(p.numel() for p in unet.parameters()),
                "vae_encoder": sum(p.numel() for p in vae.encoder.parameters()) +
                sum(p.numel() for p in vae.quant_conv.parameters()),
                "text_encoder": sum(p.numel() for p in text.parameters())}
    try:
        from fastdream.guidance.stable_diffusion import StableDiffusionGuidance
        guidance = StableDiffusionGuidance(unet, vae, text, None, scheduler, device=device, dtype=dtype)
        impl = "fastdream.guidance.stable_diffusion.StableDiffusionGuidance"
    except ImportError:
        unet.to(device, dtype).eval().requires_grad_(False)
        vae.to(device, dtype).eval().requires_grad_(False)
        text.to(device, dtype).eval().requires_grad_(False)
        guidance = _MinimalSDS(unet, vae, scheduler, device, dtype)
        impl = "bench.step._MinimalSDS (fastdream.guidance.stable_diffusion not importable)"
    text.to(device, dtype).eval().requires_grad_(False)
    # Prompt embeddings are computed once per run in training; time that once, here with random token ids.
    ids = torch.randint(3, text_cfg["vocab_size"], (2, 77), device=device)
    common.sync(device)
    t1 = time.perf_counter()
    with torch.no_grad():
        emb = text(ids)[0].to(dtype)
    common.sync(device)
    info = {"guidance_impl": impl, "dtype": str(dtype).replace("torch.", ""), "model_build_s": build_s,
            "prompt_encode_once_ms": (time.perf_counter() - t1) * 1e3, "parameters": n_params,
            "unet_config": "SD 2.1-base" if not quick else "tiny", "image_size": guidance.image_size,
            "latent_size": guidance.latent_size}
    return guidance, emb[1:2], emb[0:1], info


def build_scene(quick: bool, device: torch.device, grid_res: int):
    import fastdream

    kwargs: dict[str, Any] = {}
    if quick:  # a small hash table keeps the CPU smoke run fast, when Field exposes the knobs
        params = inspect.signature(fastdream.Field).parameters
        for k, v in (("log2_hashmap_size", 14), ("n_levels", 8)):
            if k in params:
                kwargs[k] = v
    field = fastdream.Field(**kwargs).to(device)
    grid = fastdream.OccupancyGrid(field.aabb.detach().clone(), resolution=grid_res, levels=1).to(device)
    with torch.no_grad():
        grid.update(0, field.density, n=1)
    return field, grid


def make_cameras(n: int, res: int, device: torch.device, seed: int = 0):
    """Pre-computed random views (rays, light, background) so that camera setup stays out of the step time."""
    from fastdream import cameras

    g = torch.Generator().manual_seed(seed)
    radius = 1.5 + 0.5 * torch.rand(n, generator=g)
    elev = -10 + 55 * torch.rand(n, generator=g)
    azim = -180 + 360 * torch.rand(n, generator=g)
    c2w = cameras.pose_spherical(radius, elev, azim)
    rays_o, rays_d = cameras.get_rays(c2w, 40.0, res, res)
    views = []
    for i in range(n):
        eye = c2w[i, :3, 3]
        views.append(dict(rays_o=rays_o[i].reshape(-1, 3).float().contiguous().to(device),
                          rays_d=rays_d[i].reshape(-1, 3).float().contiguous().to(device),
                          light=(eye * 1.2).float().to(device), bg=torch.rand(3, generator=g).to(device),
                          shading=("albedo", "lambertian", "textureless")[i % 3]))
    return views


def _render_fn(backend: str):
    if backend == "nerfacc":
        from fastdream.render.nerfacc_backend import render_rays_nerfacc
        return lambda *a, **k: render_rays_nerfacc(*a, **k)
    from fastdream.render.rays import render_rays
    return lambda *a, **k: render_rays(*a, backend=backend, **k)


def run_backend(backend: str, guidance, cond, uncond, device: torch.device, quick: bool) -> dict:
    s = sizes(quick)
    render = _render_fn(backend)
    torch.manual_seed(0)
    field, grid = build_scene(quick, device, s["grid_res"])
    opt = torch.optim.Adam(field.parameters(), lr=1e-2, eps=1e-15)
    n_total = s["warmup"] + s["steps"]
    views = make_cameras(n_total, s["render"], device)
    H = W = s["render"]
    clock = common.PhaseClock(device)
    max_samples = None
    if backend == "fastdream" and device.type == "cuda":
        # The no-host-sync path as training on a GPU uses it (fastdream.training.trainer): a SampleCapacity that starts at
        # 96 samples per ray and then follows the demand of the earlier steps.
        from fastdream.ops.capacity import SampleCapacity

        max_samples = SampleCapacity(H * W * 96)
    render_kw = {} if max_samples is None else {"max_samples": max_samples}

    def one_step(i: int, timed: bool):
        v = views[i]
        if timed:
            clock.start()
        out = render(field, grid, v["rays_o"], v["rays_d"], shading=v["shading"], light_position=v["light"],
                     ambient_ratio=0.1, background=v["bg"], render_step_size=s["step_size"], stratified=True, **render_kw)
        img = out["color"].reshape(1, H, W, 3).permute(0, 3, 1, 2)
        if timed:
            clock.mark("render_fwd")
            img.register_hook(lambda g: clock.mark("vae_backward"))
        latents = guidance.encode_images(img)
        if timed:
            clock.mark("vae_encode")
        t = guidance.sample_timesteps(1, (0.02, 0.98), device)
        noise = torch.randn(latents.shape, device=device)
        abar = guidance.alphas_cumprod[t].view(1, 1, 1, 1)
        with torch.no_grad():
            x_t = abar.sqrt() * latents.detach().float() + (1 - abar).sqrt() * noise
            eps = guidance.predict_noise(x_t, t, cond, uncond, 100.0)
            grad = (1 - abar) * (eps - noise)
        loss = guidance.sds_loss(latents, grad)
        if timed:
            clock.mark("unet")
        loss.backward()
        if timed:
            clock.mark("render_backward")
        opt.step()
        opt.zero_grad(set_to_none=True)
        if timed:
            clock.mark("optimizer")
        with torch.no_grad():
            grid.update(i + 1, field.density, n=16, warmup_steps=256)
        if timed:
            clock.mark("grid_update")

    for i in range(s["warmup"]):
        one_step(i, timed=False)
    common.sync(device)
    with common.count_host_syncs(device) as syncs:
        one_step(s["warmup"], timed=False)
    common.peak_memory_reset(device)
    common.sync(device)
    t0 = time.perf_counter()
    for i in range(s["warmup"], n_total):
        one_step(i, timed=True)
    common.sync(device)
    wall = time.perf_counter() - t0
    peak = common.peak_memory_bytes(device)
    totals = clock.totals_ms()
    n = s["steps"]
    phases = {k: totals.get(k, 0.0) / n for k in PHASES}
    step_ms = wall / n * 1e3
    diffusion_ms = sum(phases[k] for k in DIFFUSION_PHASES)
    # FLOP actually executed in one step (matmul/conv/attention, forward + backward), counted by PyTorch.
    flops = None
    try:
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as fc:
            one_step(n_total - 1, timed=False)
        flops = int(fc.get_total_flops())
    except Exception as exc:  # noqa: BLE001 - the count is informative, not essential
        log.warning("FLOP count failed: %s", exc)
    nominal = sd_configs.NOMINAL_STEP_TFLOP * 1e12 if not quick else None
    capacity = None if max_samples is None else {
        "final": max_samples.current(), "last_demand": max_samples.last_demand,
        "truncated_steps": max_samples.truncated_steps}
    return {"status": "ok", "steps": n, "render": f"{H}x{W}", "sample_capacity": capacity, "wall_s": wall,
            "step_ms": step_ms,
            "steps_per_s": 1e3 / step_ms, "phases_ms": phases, "phases_sum_ms": sum(phases.values()),
            "diffusion_share": diffusion_ms / max(sum(phases.values()), 1e-9), "peak_memory_bytes": peak,
            "counted_flop_per_step": flops,
            "achieved_tflops_counted": None if flops is None else flops / (step_ms * 1e-3) / 1e12,
            "achieved_tflops_nominal": None if nominal is None else nominal / (step_ms * 1e-3) / 1e12, **syncs}


def run(device: torch.device, quick: bool) -> dict:
    out: dict[str, Any] = {"note": "step composed in bench/step.py from render_rays + the SD guidance's encode_images/"
                                   "predict_noise/sds_loss + Adam + OccupancyGrid.update (not fastdream.training.trainer's loop)",
                           "nominal_step_tflop": sd_configs.NOMINAL_STEP_TFLOP, "backends": {}}
    try:
        guidance, cond, uncond, info = build_guidance(quick, device)
        out["models"] = info
    except Exception as exc:  # noqa: BLE001
        log.warning("step: building the diffusion models failed: %s", exc)
        out["backends"] = {"fastdream": common.failed(exc), "torch": common.failed(exc)}
        out["ratios"] = {"vs_torch_renderer": None, "vs_nerfacc_renderer": None}
        return out
    # Warm the diffusion models once (kernel selection, allocator) so that the first backend is not penalised.
    try:
        img = torch.rand(1, 3, 64, 64, device=device, requires_grad=True)
        for _ in range(2):
            lat = guidance.encode_images(img)
            with torch.no_grad():
                guidance.predict_noise(lat.detach().float(), torch.full((1,), 500, device=device), cond, uncond,
                                       100.0)
            lat.float().sum().backward()
        common.sync(device)
    except Exception as exc:  # noqa: BLE001 - the per-backend runs will report the real error
        log.warning("step: diffusion warm-up failed: %s", exc)
    backends = ["fastdream", "torch"]
    if device.type == "cuda":
        backends.append("nerfacc")
    for backend in backends:
        if backend == "nerfacc":
            try:
                import nerfacc  # noqa: F401
            except ImportError as exc:
                out["backends"][backend] = common.unavailable(f"nerfacc not importable ({exc})")
                continue
        try:
            out["backends"][backend] = run_backend(backend, guidance, cond, uncond, device, quick)
        except Exception as exc:  # noqa: BLE001
            log.warning("step with renderer backend %s failed: %s", backend, exc)
            out["backends"][backend] = common.failed(exc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type != "cuda":
        out["backends"]["nerfacc"] = common.unavailable("nerfacc's sampler is CUDA-only")

    def sps(name):
        return out["backends"].get(name, {}).get("steps_per_s")
    out["ratios"] = {"vs_torch_renderer": common.ratio(sps("fastdream"), sps("torch")),
                     "vs_nerfacc_renderer": common.ratio(sps("fastdream"), sps("nerfacc"))}
    return out


def summary_rows(res: dict) -> list[list[str]]:
    rows = []
    for name, r in res.get("backends", {}).items():
        ph = r.get("phases_ms", {})
        rows.append(["sds step", name, r.get("status", "?"), common.fmt(r.get("steps_per_s"), " it/s"),
                     common.fmt(r.get("step_ms"), " ms"),
                     " ".join(f"{k}={v:.1f}" for k, v in ph.items()) if ph else r.get("reason", "")[:60],
                     common.fmt(r.get("peak_memory_bytes"), "B"), str(r.get("host_syncs", "-"))])
    return rows
