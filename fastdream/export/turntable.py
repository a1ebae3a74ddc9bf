"""Turntable videos: render a view per azimuth and encode MP4 (imageio-ffmpeg), or GIF when ffmpeg is unavailable."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from fastdream.errors import UserError

log = logging.getLogger(__name__)


def turntable_azimuths(frames: int, start_deg: float = 0.0) -> np.ndarray:
    """frames azimuths in degrees, evenly spaced over one full turn (the last frame stops short of the first)."""
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames}")
    return start_deg + np.arange(int(frames), dtype=np.float64) * (360.0 / int(frames))


def _to_uint8(image) -> np.ndarray:
    img = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"a frame must be [H, W, 3], got {list(img.shape)}")
    if img.dtype != np.uint8:
        img = (np.clip(np.nan_to_num(img.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return img[..., :3]


def write_video(frames: Iterable[np.ndarray], path, fps: int = 30, *, fmt: str | None = None) -> Path:
    """Encode frames ([H, W, 3] uint8 or float in [0, 1]) to path atomically; returns the path actually written.

    fmt "mp4" (H.264 via imageio-ffmpeg), "gif", or None: from path's suffix. When MP4 encoding is unavailable
    the video is written as GIF beside path (same stem) instead.
    """
    import imageio.v2 as imageio

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "mp4").lower()
    if fmt not in ("mp4", "gif"):
        raise ValueError(f"fmt must be 'mp4' or 'gif', got {fmt!r}")
    imgs = [_to_uint8(f) for f in frames]
    if not imgs:
        raise ValueError("no frames to write")
    shape = imgs[0].shape
    if any(i.shape != shape for i in imgs):
        raise ValueError("all frames must have the same size")
    if fmt == "mp4" and (shape[0] % 2 or shape[1] % 2):  # yuv420p needs even sizes
        imgs = [np.pad(i, ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0)), mode="edge") for i in imgs]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".{fmt}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write to {path.parent}: {exc.strerror or exc}; choose a writable folder") from exc
    try:
        if fmt == "mp4":
            try:
                with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                        pixelformat="yuv420p", macro_block_size=1) as writer:
                    for img in imgs:
                        writer.append_data(img)
            except (ImportError, RuntimeError, OSError, ValueError) as exc:
                log.warning("MP4 encoding failed (%s); writing a GIF instead", exc)
                os.unlink(tmp)
                return write_video(imgs, path.with_suffix(".gif"), fps, fmt="gif")
        else:
            imageio.mimsave(tmp, imgs, format="GIF", duration=1000.0 / fps, loop=0)
        final = path.with_suffix(f".{fmt}")
        os.replace(tmp, final)
        return final
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render_turntable(render_view: Callable[[float], np.ndarray], path, frames: int = 120, fps: int = 30, *,
                     start_deg: float = 0.0, progress: bool = False, fmt: str | None = None) -> Path:
    """Render render_view(azimuth_deg) -> [H, W, 3] image for one turn of azimuths and encode it to path.

    The renderer decides the camera (radius, elevation, fov, shading); this only drives the turn and the encoding,
    so it is testable with any fake renderer. Returns the written path (.mp4, or .gif as fallback).
    """
    from tqdm.auto import tqdm

    images = [_to_uint8(render_view(float(az)))
              for az in tqdm(turntable_azimuths(frames, start_deg), desc="turntable", unit="frame",
                             disable=not progress, leave=False)]
    return write_video(images, path, fps, fmt=fmt)
