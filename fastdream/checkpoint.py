"""The checkpoint format and run folders: atomic writes, safe loading (weights_only=True), load_run() for tools."""
from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdream.config import Config, from_dict
from fastdream.errors import UserError
from fastdream.files import atomic_write
from fastdream.scene.scene import Scene

__all__ = ["CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "checkpoint_path", "stale_temporaries",
           "LoadedRun", "load_run"]

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


def checkpoint_path(run_dir: str | Path) -> Path:
    """<run_dir>/checkpoints/last.pt."""
    return Path(run_dir) / "checkpoints" / "last.pt"


class _RecordingWriter:
    """A file wrapper for torch.save that keeps the OSError of a failed write: torch turns it into a RuntimeError
    ("unexpected pos") that no longer says the disk is full."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` with torch.save to a temporary file beside `path`, fsync it and rename it over `path` (atomic
    on POSIX). A full disk raises a WriteError and leaves the previous checkpoint as it was."""
    path = Path(path)
    with atomic_write(path) as fh:
        writer = _RecordingWriter(fh)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise
    return path


def stale_temporaries(folder: str | Path) -> list[Path]:
    """Temporary files a killed run left in its checkpoints/ folder (`.last.pt.*.tmp`)."""
    return sorted((Path(folder) / "checkpoints").glob(".last.pt.*.tmp"))


_ADVICE = ("weights_only", "weights only", "trusted source", "torch.load")


def _first_line(exc: Exception) -> str:
    """The first line of torch's message that is not its advice to load with weights_only=False (which would run
    whatever code the file holds), cut to its first sentence."""
    lines = [ln.strip() for ln in str(exc).splitlines()
             if ln.strip() and not any(a in ln.lower() for a in _ADVICE)]
    text = lines[0] if lines else type(exc).__name__
    return text.split(". ", 1)[0][:200]


def _check_state(state, path: Path) -> dict:
    if not isinstance(state, dict) or state.get("format") != "fastdream" or not isinstance(state.get("field"), dict):
        raise UserError(f"{path} is not a fastdream checkpoint")
    version = state.get("version", 0)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise UserError(f"{path} was written by a newer fastdream (checkpoint version {version!r}); upgrade")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UserError(f"checkpoint {path} is damaged: its step is {step!r}, not a count of steps")
    if not isinstance(state.get("config"), dict):
        raise UserError(f"checkpoint {path} is damaged: it holds no config")
    return state


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True (a stranger's file cannot run code); UserError if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes): it is not a fastdream checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in _first_line(exc).lower():  # not a refused class or function: damaged bytes
            raise UserError(f"checkpoint {path} is corrupt or not a fastdream checkpoint ({_first_line(exc)})") \
                from None
        raise UserError(f"checkpoint {path} was refused: it holds Python objects other than tensors and plain data, "
                        f"which could run code when loaded ({_first_line(exc)})") from None
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 -- torch.load raises many types for foreign bytes (IndexError, KeyError)
        raise UserError(f"checkpoint {path} is corrupt or not a fastdream checkpoint ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from None
    return _check_state(state, path)


@dataclass
class LoadedRun:
    """A trained run: its Scene (eval mode, on `device`), Config, step and prompt."""

    scene: Scene
    config: Config
    step: int
    prompt: str
    run_dir: Path

    @property
    def field(self) -> torch.nn.Module:
        return self.scene.field

    @property
    def grid(self) -> torch.nn.Module:
        return self.scene.grid

    @property
    def background(self) -> torch.nn.Module:
        return self.scene.background


def load_run(run_dir: str | Path, device="cpu") -> LoadedRun:
    """Load <run_dir>/checkpoints/last.pt (and its config); UserError for a missing or corrupt run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    ckpt = checkpoint_path(run_dir)
    if not ckpt.is_file():
        raise UserError(f"{run_dir} has no checkpoint (expected {ckpt}); run `fastdream generate ... --out {run_dir}`")
    state = load_checkpoint(ckpt)
    try:
        config = from_dict(state["config"]).validate()
    except (UserError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint {ckpt} holds an invalid config: {exc}") from None
    scene = Scene.from_config(config, torch.device(device))
    try:
        scene.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"checkpoint {ckpt} does not match this fastdream's models: {str(exc).splitlines()[0]}") \
            from None
    scene.eval()
    return LoadedRun(scene=scene, config=config, step=int(state["step"]),
                     prompt=str(state.get("prompt", config.prompt)), run_dir=run_dir)
