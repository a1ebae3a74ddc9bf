"""A run folder before a run starts in it: is it one of ours, may we write into it, and what a killed or replaced
run left behind (temporary files, metrics rows past the checkpoint, the outputs of a run being overwritten)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from fastdream.checkpoint import checkpoint_path, stale_temporaries
from fastdream.errors import UserError
from fastdream.files import RunLock, atomic_write

__all__ = ["is_run_folder", "check_out_folder", "clean_temporaries", "truncate_metrics", "remove_run_outputs"]

log = logging.getLogger(__name__)

# what `fastdream generate` writes into a run folder (relative paths and glob patterns)
RUN_OUTPUTS = ("checkpoints/last.pt", "metrics.jsonl", "previews/step_*.png", "mesh/model.obj", "mesh/model.mtl",
               "mesh/model_albedo.png", "mesh/model.glb", "video/turntable.mp4", "video/turntable.gif")
# files fastdream itself may put in a folder before a run starts there: the lock, `fastdream batch`'s attempt records
OURS = (RunLock.NAME, "batch.log", "batch_attempts.jsonl")
# the temporary files of its atomic writes (fastdream.files.atomic_path names them .<name>.<random>.tmp)
RUN_TEMPORARIES = (".config.yaml.*.tmp", ".metrics.jsonl.*.tmp", "previews/.step_*.png.*.tmp")


def is_run_folder(folder: Path) -> bool:
    """True for a folder `fastdream generate` made (its lock file or a checkpoint is there)."""
    return (folder / RunLock.NAME).exists() or checkpoint_path(folder).is_file()


def check_out_folder(folder: Path, *, resume: bool, overwrite: bool) -> None:
    """UserError unless `folder` may receive a run: not a file, and empty or a run folder unless --overwrite."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file, not a folder; choose a folder for the run")
    if resume or overwrite or not folder.is_dir() or is_run_folder(folder):
        return
    if any(p.name not in OURS for p in folder.iterdir()):
        raise UserError(f"--out {folder} holds other files and is not a fastdream run folder; choose an empty or new "
                        f"folder, or pass --overwrite to write the run into it anyway")


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files a killed run left (call it holding the folder's RunLock); returns them."""
    found = stale_temporaries(folder) + [p for pattern in RUN_TEMPORARIES for p in sorted(folder.glob(pattern))]
    for p in found:
        p.unlink(missing_ok=True)
    if found:
        log.info("removed %d temporary file(s) a stopped run left in %s", len(found), folder)
    return found


def truncate_metrics(path: Path, through_step: int) -> int:
    """Keep the metrics.jsonl rows up to `through_step` (the checkpoint a run resumes from; -1 for a new run) and
    drop later ones and torn lines, so that a resumed run does not repeat rows; returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            step = None
        if isinstance(step, int) and step <= through_step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        with atomic_write(path, "w") as fh:
            fh.write("".join(f"{line}\n" for line in kept))
    return dropped


def remove_run_outputs(folder: Path) -> list[Path]:
    """Delete what an earlier run wrote into `folder` (checkpoint, metrics, previews, mesh, video): --overwrite."""
    found = [p for pattern in RUN_OUTPUTS for p in sorted(folder.glob(pattern)) if p.is_file()]
    for p in found:
        p.unlink()
    if found:
        log.info("--overwrite: removed %d file(s) of the earlier run in %s", len(found), folder)
    return found
