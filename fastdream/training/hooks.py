"""What happens around the steps of a run: metrics, the NaN guard, held-out evaluation, previews, checkpoints and
signals. Each hook sees every step (after_step) and the end of the run (on_end); the Trainer only loops."""
from __future__ import annotations

import json
import logging
import signal
import threading
import time

import torch

from fastdream.errors import UserError
from fastdream.files import WRITE_ERRNOS, write_error
from fastdream.ops.capacity import SampleCapacity
from fastdream.training import views

__all__ = ["NonFiniteError", "MetricsFile", "NanGuard", "MetricsHook", "HeldoutEvalHook", "PreviewHook",
           "CheckpointHook", "StopOnSignal", "due"]

log = logging.getLogger(__name__)


class NonFiniteError(UserError):
    """The loss or the parameters became NaN/inf; training stopped and the last good checkpoint was kept."""


def due(every: int, step: int) -> bool:
    """True on the steps a period `every` (0: never) falls on."""
    return every > 0 and step % every == 0


class MetricsFile:
    """metrics.jsonl of the run, appended one JSON record a line, flushed at once (a full disk: WriteError)."""

    def __init__(self, path):
        self.path = path
        self.file = open(path, "a")

    def emit(self, record: dict) -> None:
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise write_error(exc, self.path) from None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:  # the buffered tail could not be written: emit() has already said so
            pass


class NanGuard:
    """Collects, without a host sync, whether every loss since the last check was finite; check() reads it."""

    def __init__(self, trainer, metrics: MetricsFile, last_good: int | None):
        self.trainer, self.metrics, self.last_good = trainer, metrics, last_good
        self.since = trainer.step
        self._reset()

    def _reset(self) -> None:
        self.finite = torch.ones((), dtype=torch.bool, device=self.trainer.device)

    def after_step(self, losses: dict) -> None:
        self.finite &= torch.isfinite(losses["loss"]) & torch.isfinite(losses["sds"])

    def check(self) -> None:
        """One host sync; NonFiniteError (logged to metrics.jsonl) if a loss or a parameter is NaN/inf."""
        t = self.trainer
        ok = bool(self.finite) and t.params_finite()
        if ok:
            self._reset()
            self.since = t.step
            return
        where = (f"the last good checkpoint (step {self.last_good}) is kept at {t.ckpt_path}; resume from it with "
                 f"--resume, perhaps with lower learning rates" if self.last_good is not None
                 else "no checkpoint had been written yet")
        msg = (f"training diverged: the loss or the parameters became NaN/inf between step {self.since} and step "
               f"{t.step}; stopped without saving; {where}")
        self.metrics.emit({"step": t.step, "event": "nonfinite", "message": msg})
        log.error(msg)
        raise NonFiniteError(msg)


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process (MiB), where the platform reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# Metrics reported as that row's step value rather than averaged since the last row.
INSTANT = ("opacity_mean",)


class MetricsHook:
    """Averages the step's losses and writes one metrics.jsonl row every train.log_every steps (and whenever an
    evaluation or a checkpoint falls due, at the run's first step and at the last step); the NaN guard is checked
    at each row."""

    def __init__(self, trainer, metrics: MetricsFile, guard: NanGuard, pbar):
        self.trainer, self.metrics, self.guard, self.pbar = trainer, metrics, guard, pbar
        self.sums: dict[str, torch.Tensor] = {}
        self.latest: dict[str, torch.Tensor] = {}
        self.first_step = trainer.step + 1 if trainer.step == 0 else None  # a resumed run has had its first row
        self.n = 0
        self.last: dict = {}
        self.restart_clock()

    def restart_clock(self) -> None:
        """Time from here on counts as training (after evaluations, previews and checkpoints)."""
        self.t0, self.step0 = time.perf_counter(), self.trainer.step

    def after_step(self, losses: dict) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.latest = losses
        self.n += 1
        t, tc = self.trainer, self.trainer.cfg.train
        if any(due(every, t.step) for every in (tc.log_every, tc.checkpoint_every, tc.eval_every)) or \
                t.step in (tc.iters, self.first_step):  # the run's first step too: early feedback on the init
            self.write_row()

    def write_row(self) -> None:
        t = self.trainer
        self.guard.check()
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
        now = time.perf_counter()
        rec = {"step": t.step, **{k: float(v) / self.n for k, v in self.sums.items() if k not in INSTANT},
               **{k: float(self.latest[k]) for k in INSTANT if k in self.latest},
               "step_time_s": (now - self.t0) / max(t.step - self.step0, 1), "t_max": t.t_range()[1]}
        rec["it_per_s"] = 1.0 / rec["step_time_s"] if rec["step_time_s"] > 0 else None
        if t.device.type == "cuda":
            rec["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(t.device) / 2**20
        rec["peak_rss_mb"] = _peak_rss_mb()
        if isinstance(t.capacity, SampleCapacity):  # what the no-sync sample budget did
            rec.update(sample_capacity=t.capacity.current(), sample_demand=t.capacity.last_demand,
                       truncated_renders=t.capacity.truncated_steps)
        self.metrics.emit(rec)
        self.last = rec
        self.pbar.set_postfix(loss=f"{rec['loss']:.4g}", refresh=False)
        self.sums, self.n = {}, 0
        self.t0, self.step0 = now, t.step


class HeldoutEvalHook:
    """Every train.eval_every steps, and once at the end: held-out PSNR against an oracle's exact target."""

    def __init__(self, trainer, metrics: MetricsFile, results: dict):
        self.trainer, self.metrics, self.results = trainer, metrics, results

    def _evaluate(self, final: bool) -> None:
        t = self.trainer
        value = views.heldout_psnr(t.scene, t.guidance, t.cfg.camera, t.cfg.train.eval_views,
                                   t.cfg.train.eval_resolution)
        if value is not None:
            self.metrics.emit({"step": t.step, "psnr_heldout": value, **({"final": True} if final else {})})
            self.results["psnr_heldout"] = value
            log.debug("step %d: held-out PSNR %.2f dB", t.step, value)

    def after_step(self, losses: dict) -> bool:
        if due(self.trainer.cfg.train.eval_every, self.trainer.step):
            self._evaluate(final=False)
            return True
        return False

    def on_end(self, status: str) -> None:
        every = self.trainer.cfg.train.eval_every
        if status == "done" and every > 0 and self.trainer.step % every != 0:  # 0 disables evaluation
            self._evaluate(final=True)


class PreviewHook:
    """previews/step_NNNNNN.png every train.preview_every steps and at the end."""

    def __init__(self, trainer):
        self.trainer = trainer

    def _write(self) -> None:
        t = self.trainer
        views.write_preview(t.scene, t.cfg.camera, t.cfg.train.eval_resolution,
                            t.run_dir / "previews" / f"step_{t.step:06d}.png")

    def after_step(self, losses: dict) -> bool:
        if due(self.trainer.cfg.train.preview_every, self.trainer.step):
            self._write()
            return True
        return False

    def on_end(self, status: str) -> None:
        every = self.trainer.cfg.train.preview_every
        if status == "done" and every > 0 and self.trainer.step % every != 0:
            self._write()


class CheckpointHook:
    """checkpoints/last.pt every train.checkpoint_every steps and at the end (after the NaN guard passes)."""

    def __init__(self, trainer, guard: NanGuard):
        self.trainer, self.guard = trainer, guard

    def after_step(self, losses: dict) -> bool:
        if due(self.trainer.cfg.train.checkpoint_every, self.trainer.step):
            self.trainer.save()
            self.guard.last_good = self.trainer.step
            return True
        return False

    def on_end(self, status: str) -> None:
        self.trainer.save()


class StopOnSignal:
    """While active, SIGINT/SIGTERM set `signum` instead of killing the run; the loop then saves and stops."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del frame
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
