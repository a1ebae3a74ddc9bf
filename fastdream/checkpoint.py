"""The checkpoint format and run folders: atomic writes, safe loading (weights_only=True), load_run() for tools."""
from __future__ import annotations

import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdream.config import Config, from_dict
from fastdream.errors import UserError
from fastdream.scene.scene import Scene

__all__ = ["CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "checkpoint_path", "LoadedRun", "load_run"]

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


def checkpoint_path(run_dir: str | Path) -> Path:
    """<run_dir>/checkpoints/last.pt."""
    return Path(run_dir) / "checkpoints" / "last.pt"


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` with torch.save to a temporary file, fsync it and rename over `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with weights_only=True (a stranger's file cannot run code); UserError if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"checkpoint {path} is corrupt or not a fastdream checkpoint ({str(exc).splitlines()[0]})") \
            from None
    if not isinstance(state, dict) or state.get("format") != "fastdream" or "field" not in state:
        raise UserError(f"{path} is not a fastdream checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"{path} was written by a newer fastdream (checkpoint version {state['version']}); upgrade")
    return state


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
