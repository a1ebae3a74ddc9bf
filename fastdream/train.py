"""The SDS training loop: random cameras and shading, render, guidance, regularisers, Adam; checkpoints, resume,
NaN guard, signals, previews and metrics.

The step itself never synchronises with the host (no .item(), no nonzero in this file); losses are accumulated on
the device and read every `train.log_every` steps, when the NaN guard also looks at them.
"""
from __future__ import annotations

import inspect
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdream.background import Background
from fastdream.cameras import CameraBatch, CameraSampler, get_rays, pose_spherical
from fastdream.capacity import SampleCapacity
from fastdream.checkpoint import CHECKPOINT_VERSION, checkpoint_path, load_checkpoint, save_checkpoint
from fastdream.config import Config, from_dict, save_yaml, to_dict
from fastdream.errors import UserError
from fastdream.guidance.base import Guidance, ViewContext
from fastdream.prompts import view_indices, view_prompts

__all__ = ["Trainer", "TrainResult", "NonFiniteError", "build_models", "resolve_device", "SHADINGS"]

log = logging.getLogger(__name__)
SHADINGS = ("albedo", "lambertian", "textureless")


class NonFiniteError(UserError):
    """The loss or the parameters became NaN/inf; training stopped and the last good checkpoint was kept."""


@dataclass
class TrainResult:
    """status: "done" | "interrupted"; step: the last completed step; checkpoint: where the state was saved."""

    status: str
    step: int
    run_dir: Path
    checkpoint: Path | None
    metrics: dict


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; UserError for a device that is not there."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    return device


def build_models(config: Config, device) -> tuple[torch.nn.Module, torch.nn.Module, Background]:
    """The field, occupancy grid and background described by `config`, on `device`."""
    from fastdream.field import Field
    from fastdream.occupancy import OccupancyGrid

    r = float(config.field.aabb_radius)
    aabb = torch.tensor([-r, -r, -r, r, r, r], dtype=torch.float32)
    options = dict(config.field.options)
    params = inspect.signature(Field).parameters
    unknown = [k for k in options if k not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise UserError(f"config: field.options has keys fastdream.Field does not accept: {', '.join(unknown)}")
    field = Field(aabb=aabb, **options).to(device)
    grid = OccupancyGrid(aabb, resolution=config.render.grid_resolution).to(device)
    background = Background(config.background.kind, config.background.hidden).to(device)
    return field, grid, background


def _param_groups(field: torch.nn.Module, background: torch.nn.Module, cfg: Config) -> list[dict]:
    enc, mlp = [], []
    for name, p in field.named_parameters():
        (enc if ("encoding" in name or "grid" in name or "hash" in name) else mlp).append(p)
    groups = [{"params": enc, "lr": cfg.optim.lr_encoding, "name": "encoding"},
              {"params": mlp, "lr": cfg.optim.lr_mlp, "name": "mlp"}]
    bg = list(background.parameters())
    if bg:
        groups.append({"params": bg, "lr": cfg.optim.lr_background, "name": "background"})
    return [g for g in groups if g["params"]]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between images in [0,1]."""
    mse = torch.mean((a.float() - b.float()) ** 2).clamp_min(1e-12)
    return float(-10.0 * torch.log10(mse))


class Trainer:
    """Runs SDS for one prompt into a run folder (config.yaml, checkpoints/last.pt, previews/, metrics.jsonl)."""

    def __init__(self, config: Config, out_dir: str | Path, guidance: Guidance | None = None, *, resume: bool = False,
                 progress: bool | None = None):
        self.cfg = config.validate()
        self.run_dir = Path(out_dir)
        self.progress = progress
        tc = config.train
        self.device = resolve_device(tc.device)
        self.ckpt_path = checkpoint_path(self.run_dir)
        state = None
        if resume:
            state = load_checkpoint(self.ckpt_path)
            log.info("resuming %s from step %d", self.run_dir, state["step"])
        torch.manual_seed(tc.seed)
        self.field, self.grid, self.background = build_models(config, self.device)
        if guidance is None:
            from fastdream.guidance import load_guidance

            guidance = load_guidance(config.guidance.spec, device=self.device, model=config.guidance.model,
                                     compile=config.guidance.compile,
                                     dtype=None if config.guidance.half_precision else torch.float32)
        self.guidance = guidance
        self.sampler = CameraSampler(config.camera)
        self.cam_gen = torch.Generator().manual_seed(tc.seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(tc.seed + 1)
        self.optimizer = torch.optim.Adam(_param_groups(self.field, self.background, config), betas=config.optim.betas,
                                          eps=config.optim.eps)
        self.precision = tc.precision
        if self.precision == "auto":
            self.precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        # Text embeddings: once per run.
        prompts = view_prompts(config.prompt) if config.guidance.view_dependent else [config.prompt]
        emb = self.guidance.encode_prompts(prompts, config.guidance.negative_prompt)
        self.cond, self.uncond = emb["cond"], emb["uncond"]
        self.step = 0
        self._render_kwargs = self._renderer_options()
        self._stop_signal: int | None = None
        if state is not None:
            self._restore(state)

    # ---- rendering -------------------------------------------------------------------------------------------
    def _renderer_options(self) -> dict:
        from fastdream.renderer import render_rays

        params = inspect.signature(render_rays).parameters
        r = self.cfg.render
        opts = {"backend": r.backend}
        max_samples = r.max_samples
        if max_samples is None and self.device.type == "cuda" and r.backend == "fastdream":
            # fixed capacity (no host sync), one view per call: starts at 96 samples per ray, then follows the
            # scene's real demand so that the field is not evaluated on mostly padding
            max_samples = SampleCapacity(r.width * r.height * 96)
        if max_samples is not None and "max_samples" in params:
            opts["max_samples"] = max_samples
        return opts

    def render(self, rays_o: torch.Tensor, rays_d: torch.Tensor, *, shading: str, light_position, ambient_ratio,
               background, stratified: bool, return_samples: bool = False, exact: bool = False) -> dict:
        """Render rays [R,3] with the current field and grid (see fastdream.renderer.render_rays).

        exact=True: exact sample count (one host sync) instead of the training step's fixed capacity, for renders
        of other sizes (previews, evaluation) that must not be truncated by, or resize, the training budget."""
        from fastdream.renderer import render_rays

        kwargs = dict(self._render_kwargs)
        if exact:
            kwargs.pop("max_samples", None)
        return render_rays(self.field, self.grid, rays_o, rays_d, shading=shading, light_position=light_position,
                           ambient_ratio=float(ambient_ratio), background=background,
                           render_step_size=self.cfg.render.render_step_size, stratified=stratified,
                           return_samples=return_samples, **kwargs)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ---- one step --------------------------------------------------------------------------------------------
    def t_range(self) -> tuple[float, float]:
        g = self.cfg.guidance
        t_max = g.t_max
        if g.t_max_end is not None:
            frac = min(self.step / max(self.cfg.train.iters, 1), 1.0)
            t_max = g.t_max + (g.t_max_end - g.t_max) * frac
        return (g.t_min, max(t_max, g.t_min))

    def _sample_shading(self, batch: int) -> tuple[list[str], list[float]]:
        s = self.cfg.shading
        probs = torch.tensor([s.albedo_prob, s.lambertian_prob, s.textureless_prob], dtype=torch.float64)
        idx = torch.multinomial(probs, batch, replacement=True, generator=self.cam_gen).tolist()  # CPU tensor
        amb = (s.ambient_range[0] + (s.ambient_range[1] - s.ambient_range[0]) *
               torch.rand(batch, generator=self.cam_gen, dtype=torch.float64)).tolist()
        modes = [SHADINGS[i] for i in idx]
        if self.step < s.albedo_only_steps:
            modes = ["albedo"] * batch
        return modes, amb

    def train_step(self) -> dict:
        """One SDS step; returns device tensors (no host sync)."""
        cfg, dev = self.cfg, self.device
        B, H, W = cfg.render.batch_size, cfg.render.height, cfg.render.width
        cams = self.sampler.sample(B, self.cam_gen)
        shading, ambient = self._sample_shading(B)
        cams = cams.to(dev)
        rays_o, rays_d = get_rays(cams.c2w, cams.fovy_deg, H, W)  # [B,H,W,3]
        self.field.train()
        self.background.train()
        g = cfg.guidance
        latent_mode = (g.latent_warmup > 0 and getattr(self.guidance, "supports_latent", False)
                       and self.step < g.latent_warmup * cfg.train.iters)
        need_samples = cfg.loss.orientation > 0
        with self._autocast():
            bg = self.background(rays_d, generator=self.cam_gen)  # [B,H,W,3]
            outs = [self.render(rays_o[b].reshape(-1, 3).contiguous(), rays_d[b].reshape(-1, 3).contiguous(),
                                shading=shading[b],
                                light_position=cams.light_position[b], ambient_ratio=ambient[b],
                                background=bg[b].reshape(-1, 3), stratified=cfg.render.stratified,
                                return_samples=need_samples) for b in range(B)]
        color = torch.stack([o["color"] for o in outs]).float().reshape(B, H, W, 3)
        opacity = torch.stack([o["opacity"] for o in outs]).float().reshape(B, H, W)
        images = color.permute(0, 3, 1, 2)
        if latent_mode:
            images = torch.cat([images, opacity[:, None]], 1)
        self.guidance.set_view(ViewContext(cameras=cams, height=H, width=W, shading=shading, ambient_ratio=ambient,
                                           background=bg.detach().float()))
        if cfg.guidance.view_dependent:
            idx = view_indices(cams.elevation_deg, cams.azimuth_deg, g.overhead_elevation, g.front_azimuth_range)
            cond = self.cond[idx.to(self.cond.device)]
        else:
            cond = self.cond[:1].expand(B, *self.cond.shape[1:])
        kwargs = {"as_latent": True} if latent_mode else {}
        out = self.guidance.sds(images, cond, self.uncond, guidance_scale=g.guidance_scale, t_range=self.t_range(),
                                generator=self.noise_gen, **kwargs)
        losses = {"sds": out.loss.float()}
        lc = cfg.loss
        if lc.orientation > 0:
            terms = []
            for b, o in enumerate(outs):
                if "normals" in o and o["normals"] is not None and o["ray_indices"].numel() > 0:
                    ri = o["ray_indices"]
                    valid = ri >= 0  # fixed-capacity buffers pad with -1
                    d = rays_d[b].reshape(-1, 3)[ri.clamp_min(0)]
                    dot = (torch.nan_to_num(o["normals"].float()) * d).sum(-1).clamp_min(0.0)
                    w = torch.where(valid, o["weights"].detach().float(), 0.0)
                    terms.append((w * dot ** 2).sum() / (H * W))
            if terms:
                losses["orientation"] = torch.stack(terms).mean()
        if lc.sparsity > 0:
            losses["sparsity"] = torch.sqrt(opacity ** 2 + 0.01).mean()
        if lc.entropy > 0:
            o = opacity.clamp(1e-5, 1 - 1e-5)
            losses["entropy"] = -(o * torch.log(o) + (1 - o) * torch.log(1 - o)).mean()
        total = losses["sds"]
        for name in ("orientation", "sparsity", "entropy"):
            if name in losses:
                total = total + getattr(lc, name) * losses[name]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if cfg.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for grp in self.optimizer.param_groups for p in grp["params"]],
                                           cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._update_grid()
        self.step += 1
        losses["loss"] = total.detach()
        losses["grad_norm"] = out.grad_norm.float()
        return {k: v.detach() for k, v in losses.items()}

    def _update_grid(self) -> None:
        r = self.cfg.render
        step_size = r.render_step_size
        self.field.eval()
        with torch.no_grad():
            self.grid.update(self.step, lambda x: self.field.density(x) * step_size, occ_thre=r.grid_occ_threshold,
                             ema_decay=r.grid_ema_decay, warmup_steps=r.grid_warmup_steps, n=r.grid_update_every)
        self.field.train()

    # ---- evaluation and previews -------------------------------------------------------------------------------
    def eval_cameras(self, n: int | None = None) -> CameraBatch:
        """Fixed held-out cameras: elevation 15°, azimuths 45° + k·360°/n, mid radius and fovy; light at the eye."""
        n = n or max(self.cfg.train.eval_views, 1)
        c = self.cfg.camera
        az = torch.tensor([45.0 + 360.0 * k / n for k in range(n)])
        el = torch.full((n,), 15.0)
        radius = torch.full((n,), 0.5 * (c.radius_range[0] + c.radius_range[1]))
        fovy = torch.full((n,), 0.5 * (c.fovy_range[0] + c.fovy_range[1]))
        c2w = pose_spherical(radius, el, az)
        return CameraBatch(c2w, fovy, el, az, radius, c2w[:, :3, 3].clone())

    @torch.no_grad()
    def render_views(self, cams: CameraBatch, size: int, shading: str = "albedo") -> torch.Tensor:
        """Images [B,3,size,size] of the field from `cams` on a white background."""
        self.field.eval()
        cams = cams.to(self.device)
        imgs = []
        for b in range(cams.c2w.shape[0]):
            ro, rd = get_rays(cams.c2w[b], cams.fovy_deg[b], size, size)
            bg = torch.ones(size * size, 3, device=self.device)
            grad_ctx = torch.enable_grad() if shading != "albedo" else torch.no_grad()
            with grad_ctx:  # analytic normals may need autograd
                out = self.render(ro.reshape(-1, 3).contiguous(), rd.reshape(-1, 3).contiguous(), shading=shading,
                                  light_position=cams.light_position[b], ambient_ratio=0.1, background=bg,
                                  stratified=False, exact=True)
            imgs.append(out["color"].detach().float().clamp(0, 1).reshape(size, size, 3).permute(2, 0, 1))
        self.field.train()
        return torch.stack(imgs)

    def heldout_psnr(self) -> float | None:
        """PSNR (dB) of albedo renders against the oracle's exact target on held-out views (None: no oracle)."""
        render_target = getattr(self.guidance, "render_target", None)
        if render_target is None or self.cfg.train.eval_views == 0:
            return None
        size = self.cfg.train.eval_resolution
        cams = self.eval_cameras()
        n = cams.c2w.shape[0]
        pred = self.render_views(cams, size, "albedo")
        view = ViewContext(cameras=cams, height=size, width=size, shading=["albedo"] * n, ambient_ratio=[0.1] * n,
                           background=torch.ones(n, size, size, 3))
        return psnr(pred, render_target(view).to(pred.device))

    def write_preview(self) -> Path:
        """previews/step_NNNNNN.png: the held-out views in albedo (top row) and lambertian shading (bottom)."""
        import imageio.v3 as iio

        size = self.cfg.train.eval_resolution
        cams = self.eval_cameras(4)
        rows = [self.render_views(cams, size, s) for s in ("albedo", "lambertian")]
        grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # [3, 2S, 4S]
        img = (grid.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
        path = self.run_dir / "previews" / f"step_{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, img)
        return path

    # ---- state -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "camera": self.cam_gen.get_state(),
               "noise": self.noise_gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": "fastdream", "version": CHECKPOINT_VERSION, "step": self.step, "prompt": self.cfg.prompt,
            "config": to_dict(self.cfg), "field": self.field.state_dict(), "grid": self.grid.state_dict(),
            "background": self.background.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng,
        }

    def _restore(self, state: dict) -> None:
        saved = from_dict(state["config"])
        for section in ("render", "field", "background"):
            if to_dict(getattr(saved, section)) != to_dict(getattr(self.cfg, section)):
                raise UserError(f"--resume: the {section} settings differ from the run's saved config; resume with "
                                f"the same settings or start a new --out folder")
        try:
            self.field.load_state_dict(state["field"])
            self.grid.load_state_dict(state["grid"])
            self.background.load_state_dict(state["background"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"--resume: {self.ckpt_path} does not match this run: {str(exc).splitlines()[0]}") \
                from None
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.cam_gen.set_state(rng["camera"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        try:
            self.noise_gen.set_state(rng["noise"])
        except RuntimeError:  # a checkpoint from another device type: reseed deterministically
            self.noise_gen.manual_seed(self.cfg.train.seed + 1 + int(state["step"]))
        self.step = int(state["step"])

    def params_finite(self) -> bool:
        """True when every field/background parameter is finite (one host sync)."""
        flags = [torch.isfinite(p).all() for m in (self.field, self.background) for p in m.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    def save(self) -> Path:
        """Atomically write checkpoints/last.pt."""
        return save_checkpoint(self.state_dict(), self.ckpt_path)

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        del frame
        self._stop_signal = signum

    def train(self) -> TrainResult:
        """Run until train.iters; returns how it ended. Raises NonFiniteError if the loss or parameters diverge."""
        from tqdm.auto import tqdm

        cfg, tc = self.cfg, self.cfg.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "previews").mkdir(exist_ok=True)
        save_yaml(cfg, self.run_dir / "config.yaml")
        metrics_path = self.run_dir / "metrics.jsonl"
        old_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        pbar = tqdm(total=tc.iters, initial=self.step, disable=self.progress is False if self.progress is not None
                    else None, dynamic_ncols=True, desc="fastdream")
        last_good = self.step if self.ckpt_path.is_file() else None
        sums: dict[str, torch.Tensor] = {}
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        n_acc, t_last, step_last = 0, time.perf_counter(), self.step
        last_metrics: dict = {}
        status = "done"
        try:
            with open(metrics_path, "a") as mf:
                def emit(record: dict) -> None:
                    mf.write(json.dumps(record) + "\n")
                    mf.flush()

                def check_finite() -> None:
                    if bool(finite) and self.params_finite():
                        return
                    where = (f"the last good checkpoint (step {last_good}) is kept at {self.ckpt_path}; "
                             f"resume from it with --resume, perhaps with lower learning rates"
                             if last_good is not None else "no checkpoint had been written yet")
                    msg = (f"training diverged: the loss or the parameters became NaN/inf between step "
                           f"{step_last} and step {self.step}; stopped without saving; {where}")
                    emit({"step": self.step, "event": "nonfinite", "message": msg})
                    log.error(msg)
                    raise NonFiniteError(msg)

                while self.step < tc.iters:
                    if self._stop_signal is not None:
                        status = "interrupted"
                        break
                    losses = self.train_step()
                    for k, v in losses.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    finite &= torch.isfinite(losses["loss"]) & torch.isfinite(losses["sds"])
                    n_acc += 1
                    pbar.update(1)
                    step = self.step
                    due = lambda every: every > 0 and step % every == 0  # noqa: E731
                    if due(tc.log_every) or step == tc.iters or due(tc.checkpoint_every) or due(tc.eval_every):
                        check_finite()  # one host sync, every log_every steps
                        if self.device.type == "cuda":
                            torch.cuda.synchronize(self.device)
                        now = time.perf_counter()
                        rec = {"step": step, **{k: float(v) / n_acc for k, v in sums.items()},
                               "step_time_s": (now - t_last) / max(step - step_last, 1),
                               "t_max": self.t_range()[1]}
                        rec["it_per_s"] = 1.0 / rec["step_time_s"] if rec["step_time_s"] > 0 else None
                        if self.device.type == "cuda":
                            rec["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
                        rec["peak_rss_mb"] = _peak_rss_mb()
                        capacity = self._render_kwargs.get("max_samples")
                        if isinstance(capacity, SampleCapacity):  # what the no-sync budget did
                            rec["sample_capacity"] = capacity.current()
                            rec["sample_demand"] = capacity.last_demand
                            rec["truncated_renders"] = capacity.truncated_steps
                        emit(rec)
                        last_metrics = rec
                        pbar.set_postfix(loss=f"{rec['loss']:.4g}", refresh=False)
                        sums, n_acc = {}, 0
                        finite = torch.ones((), dtype=torch.bool, device=self.device)
                        t_last, step_last = now, step
                    if due(tc.eval_every):
                        value = self.heldout_psnr()
                        if value is not None:
                            emit({"step": step, "psnr_heldout": value})
                            last_metrics["psnr_heldout"] = value
                            log.debug("step %d: held-out PSNR %.2f dB", step, value)
                    if due(tc.preview_every):
                        self.write_preview()
                    if due(tc.checkpoint_every):
                        self.save()
                        last_good = step
                    t_last = time.perf_counter() if (due(tc.eval_every) or due(tc.preview_every)
                                                     or due(tc.checkpoint_every)) else t_last
                if status == "interrupted":
                    check_finite()
                    self.save()
                    signame = signal.Signals(self._stop_signal).name
                    emit({"step": self.step, "event": "interrupted", "signal": signame})
                    log.warning("%s: saved a checkpoint at step %d to %s; continue with --resume", signame,
                                self.step, self.ckpt_path)
                else:
                    check_finite()
                    if tc.eval_every > 0 and self.step % tc.eval_every != 0:  # 0 disables evaluation
                        value = self.heldout_psnr()
                        if value is not None:
                            emit({"step": self.step, "psnr_heldout": value, "final": True})
                            last_metrics["psnr_heldout"] = value
                    if tc.preview_every > 0 and self.step % tc.preview_every != 0:
                        self.write_preview()
                    self.save()
        finally:
            pbar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        return TrainResult(status=status, step=self.step, run_dir=self.run_dir, checkpoint=self.ckpt_path,
                           metrics=last_metrics)


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process (MiB), where the platform reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
