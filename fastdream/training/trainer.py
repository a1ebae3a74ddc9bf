"""The Trainer: builds a run (scene, guidance, optimiser, prompts), runs the SDS step in a short loop with its hooks,
and saves and restores the whole state for exact resumes."""
from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdream._backend import resolve_device
from fastdream.cameras import CameraSampler
from fastdream.checkpoint import CHECKPOINT_VERSION, checkpoint_path, load_checkpoint, save_checkpoint
from fastdream.config import Config, from_dict, save_yaml, to_dict
from fastdream.errors import UserError, WriteError
from fastdream.files import RunLock
from fastdream.guidance import load_guidance
from fastdream.guidance.base import Guidance
from fastdream.guidance.view_prompts import view_prompts
from fastdream.ops.capacity import SampleCapacity
from fastdream.scene.scene import Scene
from fastdream.training import hooks, run_folder, schedules
from fastdream.training.averaging import WeightAverage, rebuild_occupancy
from fastdream.training.hooks import NonFiniteError
from fastdream.training.optim import Optimizer
from fastdream.training.losses import SMOOTHNESS_POINTS
from fastdream.training.step import cameras_to, mark, render_batch, sds_losses

__all__ = ["Trainer", "TrainResult", "NonFiniteError", "resolve_device"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """status: "done" | "interrupted"; step: the last completed step; checkpoint: where the state was saved."""

    status: str
    step: int
    run_dir: Path
    checkpoint: Path | None
    metrics: dict


def _load_guidance(config: Config, device: torch.device) -> Guidance:
    """The run's guidance with its speed options (encoder, channels_last, compile, CUDA graphs)."""
    g = config.guidance
    return load_guidance(g.spec, device=device, model=g.model, compile=g.compile,
                         dtype=None if g.half_precision else torch.float32, encoder=g.encoder,
                         tiny_encoder=g.tiny_encoder, channels_last=g.channels_last,
                         cuda_graphs=config.train.cuda_graphs)


def _sample_capacity(config: Config, device: torch.device):
    """The training renders' sample budget: render.max_samples, or on CUDA a SampleCapacity (no host sync) that
    starts at 96 samples per ray and then follows the scene's real demand."""
    r = config.render
    if r.max_samples is None and device.type == "cuda" and r.backend == "fastdream":
        return SampleCapacity(r.width * r.height * 96)
    return r.max_samples


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
        state = load_checkpoint(self.ckpt_path) if resume else None
        self.resumed_from = self.saved_step = None if state is None else self._check_resume(state)
        torch.manual_seed(tc.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = tc.cudnn_benchmark
        self.scene = Scene.from_config(config, self.device)
        self.guidance = guidance or _load_guidance(config, self.device)
        g = config.guidance  # checked at the schedule's strongest scale; train_step sets each step's own
        self.guidance.use_elevation_guidance(max(g.elevation_guidance, g.elevation_guidance_end or 0.0),
                                             config.camera.elevation_range)
        self.guidance.elevation_min_t = g.elevation_guidance_min_t  # which draws and views it guides, and how much
        self.guidance.elevation_above, self.guidance.elevation_above_factor = (g.elevation_guidance_above,
                                                                               g.elevation_guidance_above_factor)
        self.phase_clock = None  # profile() sets it; None keeps the step free of timing events
        self.sampler = CameraSampler(config.camera)
        self.cam_gen = torch.Generator().manual_seed(tc.seed)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(tc.seed + 1)
        self.optim = Optimizer(self.scene, config.optim, tc.precision, self.device)
        self.capacity = _sample_capacity(config, self.device)
        prompts = view_prompts(config.prompt) if config.guidance.view_dependent else [config.prompt]
        self.prompts = self.guidance.encode_prompts(prompts, config.guidance.negative_prompt)  # once per run
        if guidance is None and hasattr(self.guidance, "release_text_encoder"):
            self.guidance.release_text_encoder()  # ours alone: free its memory for the step
        self.step = 0
        self.average = (WeightAverage(self.scene.field, round(tc.average_from * tc.iters))
                        if tc.average_from < 1.0 else None)
        if state is not None:
            self._restore(state)

    # the scene's parts, for callers that hold a Trainer
    field = property(lambda self: self.scene.field)
    grid = property(lambda self: self.scene.grid)
    background = property(lambda self: self.scene.background)
    cond = property(lambda self: self.prompts["cond"])

    def t_range(self) -> tuple[float, float]:
        return schedules.t_range(self.cfg.guidance, self.step, self.cfg.train.iters)

    def profile(self, clock) -> None:
        """Mark the step's phases on `clock` (start() and mark(name), e.g. bench.common.PhaseClock), or stop with
        None: render_fwd, vae_encode and unet (SD guidance), vae_backward, render_backward, optimizer, grid_update."""
        self.phase_clock = clock
        if hasattr(type(self.guidance), "phase_clock"):
            self.guidance.phase_clock = clock

    # ---- one step --------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        """One SDS step; returns the losses as device tensors (no host sync on CUDA)."""
        cfg, clock = self.cfg, self.phase_clock
        r, iters = cfg.render, cfg.train.iters
        if clock is not None:
            clock.start()
        cams = self.sampler.sample(r.batch_size, self.cam_gen)
        shading, ambient = schedules.sample_shading(cfg.shading, self.step, r.batch_size, self.cam_gen)
        latent = schedules.in_latent_warmup(cfg.guidance, self.guidance, self.step, iters)
        if self.guidance.elevation_classifier is not None:
            self.guidance.elevation_scale = schedules.elevation_scale(cfg.guidance, self.step, iters)
        weights = schedules.loss_weights(cfg.loss, self.step, iters)
        self.scene.train()
        with self.optim.autocast():
            batch = render_batch(self.scene, cameras_to(cams, self.device), shading, ambient, r.height, r.width,
                                 stratified=r.stratified,
                                 need_samples=weights.orientation > 0 or weights.normal_smoothness > 0,
                                 generator=self.cam_gen, max_samples=self.capacity,
                                 probe_points=SMOOTHNESS_POINTS if weights.normal_smoothness > 0 else 0)
        mark(clock, "render_fwd")
        total, losses = sds_losses(self.guidance, batch, self.prompts, cfg, t_range=self.t_range(),
                                   generator=self.noise_gen, latent=latent, clock=clock, loss_weights=weights)
        self.optim.backward(total)
        mark(clock, "render_backward")
        self.optim.set_lr_scale(schedules.lr_scale(cfg.optim, self.step, iters))
        self.optim.apply()
        mark(clock, "optimizer")
        self._update_grid()
        mark(clock, "grid_update")
        self.step += 1
        if self.average is not None:
            self.average.after_step(self.step)
        losses["loss"] = total.detach()
        return {k: v.detach() for k, v in losses.items()}

    def _grid_density(self, x: torch.Tensor) -> torch.Tensor:
        """What the occupancy grid thresholds: the field's density times the march step."""
        return self.scene.field.density(x) * self.cfg.render.render_step_size

    def _update_grid(self) -> None:
        r = self.cfg.render
        self.scene.field.eval()
        with torch.no_grad():
            self.scene.grid.update(self.step, self._grid_density,
                                   occ_thre=r.grid_occ_threshold, ema_decay=r.grid_ema_decay,
                                   warmup_steps=r.grid_warmup_steps, n=r.grid_update_every)
        self.scene.field.train()

    def end_on_average(self) -> None:
        """Put the field's averaged weights in place and rebuild the occupancy grid for them (train.average_from)."""
        if self.average is None or not self.average.apply():
            return
        self.scene.field.eval()
        rebuild_occupancy(self.scene.grid, self._grid_density, occ_thre=self.cfg.render.grid_occ_threshold)
        self.scene.field.train()
        log.info("the field is the mean of its weights over the last %d steps", self.average.count)

    # ---- state -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "camera": self.cam_gen.get_state(),
               "noise": self.noise_gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"format": "fastdream", "version": CHECKPOINT_VERSION, "step": self.step, "prompt": self.cfg.prompt,
                "config": to_dict(self.cfg), **self.scene.state_dict(), **self.optim.state_dict(), "rng": rng,
                **({} if self.average is None else {"field_average": self.average.state_dict()})}

    def _check_resume(self, state: dict) -> int:
        """UserError unless the checkpoint can continue under this config (before anything slow is loaded);
        returns its step."""
        saved, step = from_dict(state["config"]), int(state["step"])
        for section in ("render", "field", "background"):
            if to_dict(getattr(saved, section)) != to_dict(getattr(self.cfg, section)):
                raise UserError(f"--resume: the {section} settings differ from the run's saved config; resume with "
                                f"the same settings or start a new --out folder")
        for key in ("spec", "model"):
            was, now = getattr(saved.guidance, key), getattr(self.cfg.guidance, key)
            if was != now:
                raise UserError(f"--resume: the run was trained with guidance.{key} {was!r}, not {now!r}; resume "
                                f"with the same guidance or start a new --out folder")
        if self.cfg.train.iters < step:
            raise UserError(f"--resume: the checkpoint is at step {step}, past train.iters={self.cfg.train.iters}; "
                            f"pass --iters {step} or more")
        log.info("resuming %s from step %d", self.run_dir, step)
        return step

    def _restore(self, state: dict) -> None:
        try:
            self.scene.load_state_dict(state)
            self.optim.load_state_dict(state)
            rng = state["rng"]
            torch.set_rng_state(rng["torch"])
            self.cam_gen.set_state(rng["camera"])
            self._restore_average(state.get("field_average"))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise UserError(f"--resume: {self.ckpt_path} does not match this run: "
                            f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        try:
            self.noise_gen.set_state(rng["noise"])
        except (RuntimeError, KeyError, TypeError):  # from another device type: reseed deterministically
            self.noise_gen.manual_seed(self.cfg.train.seed + 1 + int(state["step"]))
        self.step = int(state["step"])

    def _restore_average(self, saved: dict | None) -> None:
        """The saved running mean, when it was kept from the step this run's config averages from."""
        if self.average is None or saved is None:
            return
        if int(saved["start_step"]) != self.average.start_step:
            log.info("--resume: the weight average starts at step %d now (was %d); it starts over",
                     self.average.start_step, int(saved["start_step"]))
            return
        self.average.load_state_dict(saved)

    def params_finite(self) -> bool:
        """True when every field/background parameter is finite (one host sync)."""
        flags = [torch.isfinite(p).all() for m in (self.scene.field, self.scene.background) for p in m.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    def save(self) -> Path:
        """Atomically write checkpoints/last.pt (a full disk raises a WriteError and keeps the previous one)."""
        path = save_checkpoint(self.state_dict(), self.ckpt_path)
        self.saved_step = self.step
        return path

    def _kept(self) -> str:
        if self.saved_step is None:
            return "no checkpoint had been written yet"
        return (f"the checkpoint of step {self.saved_step} in {self.ckpt_path} is kept: free space and continue "
                f"with --resume")

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _open_run_folder(self) -> None:
        """Clean what a killed run left, drop metrics rows past the checkpoint, write config.yaml."""
        (self.run_dir / "previews").mkdir(exist_ok=True)
        run_folder.clean_temporaries(self.run_dir)
        run_folder.truncate_metrics(self.run_dir / "metrics.jsonl",
                                    self.resumed_from if self.resumed_from is not None else -1)
        save_yaml(self.cfg, self.run_dir / "config.yaml")

    def train(self) -> TrainResult:
        """Run until train.iters; returns how it ended. Raises NonFiniteError if the loss or parameters diverge,
        WriteError if an output cannot be written (the last checkpoint is kept). Holds the run folder's lock."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(self.run_dir):
            self._open_run_folder()
            try:
                return self._loop()
            except WriteError as exc:
                raise WriteError(f"{exc}; training stopped at step {self.step}; {self._kept()}") from None

    def _loop(self) -> TrainResult:
        from tqdm.auto import tqdm

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        results: dict = {}
        metrics = hooks.MetricsFile(self.run_dir / "metrics.jsonl")
        pbar = tqdm(total=self.cfg.train.iters, initial=self.step, dynamic_ncols=True, desc="fastdream",
                    disable=self.progress is False if self.progress is not None else None)
        guard = hooks.NanGuard(self, metrics, self.step if self.ckpt_path.is_file() else None)
        logger = hooks.MetricsHook(self, metrics, guard, pbar)
        side_work = [hooks.HeldoutEvalHook(self, metrics, results), hooks.PreviewHook(self),
                     hooks.CheckpointHook(self, guard)]
        try:
            with hooks.StopOnSignal() as stop:
                while self.step < self.cfg.train.iters and stop.signum is None:
                    losses = self.train_step()
                    pbar.update(1)
                    guard.after_step(losses)
                    logger.after_step(losses)
                    if any([h.after_step(losses) for h in side_work]):
                        logger.restart_clock()
                guard.check()
                if stop.signum is None:
                    self.end_on_average()
                for h in side_work:  # a signal during the final evaluation skips the rest; the checkpoint is saved
                    h.on_end("done" if stop.signum is None else "interrupted")
                if stop.signum is not None:
                    self._report_interrupt(metrics, stop.signum)
        finally:
            pbar.close()
            metrics.close()
        return TrainResult(status="done" if stop.signum is None else "interrupted", step=self.step,
                           run_dir=self.run_dir, checkpoint=self.ckpt_path, metrics={**logger.last, **results})

    def _report_interrupt(self, metrics: hooks.MetricsFile, signum: int) -> None:
        name = signal.Signals(signum).name
        metrics.emit({"step": self.step, "event": "interrupted", "signal": name})
        log.warning("%s: saved a checkpoint at step %d to %s; continue with --resume", name, self.step,
                    self.ckpt_path)
