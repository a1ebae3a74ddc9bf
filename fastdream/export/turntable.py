"""Turntable videos: render a view per azimuth and encode MP4 (imageio-ffmpeg), or GIF when ffmpeg is unavailable."""
from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from fastdream.errors import WriteError
from fastdream.files import atomic_path

log = logging.getLogger(__name__)

VIDEO_FORMATS = ("mp4", "gif")
MAX_FRAMES = 3600  # two minutes at 30 fps: a turntable, not a film


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


def _ffmpeg_exe() -> str | None:
    """The ffmpeg binary imageio-ffmpeg provides, or None when MP4 encoding is unavailable."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return None


def _frames_uint8(frames: Iterable, even: bool) -> Iterator[np.ndarray]:
    """[H, W, 3] uint8 frames, one at a time, all of the first frame's size (padded to even sizes when `even`)."""
    shape = None
    for frame in frames:
        img = _to_uint8(frame)
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise ValueError("all frames must have the same size")
        if even and (shape[0] % 2 or shape[1] % 2):  # yuv420p needs even sizes
            img = np.pad(img, ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0)), mode="edge")
        yield img


def _encode_mp4(frames: Iterator[np.ndarray], tmp: Path, fps: int) -> int:
    """Stream frames into ffmpeg (H.264); returns how many were sent, -1 if ffmpeg died. Its own messages are
    hidden unless debug logging is on: _check_mp4 reports a failure in one line."""
    import imageio.v2 as imageio

    level = "warning" if log.isEnabledFor(logging.DEBUG) else "quiet"
    n = 0
    try:
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level=level) as writer:
            for img in frames:
                writer.append_data(img)
                n += 1
    except OSError as exc:  # ffmpeg died (its pipe broke): _check_mp4 says why in one line
        log.debug("ffmpeg failed: %s", exc)
        return -1
    return n


def _encode_gif(frames: Iterator[np.ndarray], tmp: Path, fps: int) -> int:
    """GIF through Pillow; returns the frame count. (Pillow keeps the palette frames, a third of RGB, until the end.)"""
    from PIL import Image

    count = [0]

    def images():
        for img in frames:
            count[0] += 1
            yield Image.fromarray(img)

    it = images()
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    first.save(tmp, format="GIF", save_all=True, append_images=it, duration=1000.0 / fps, loop=0)
    return count[0]


def _check_mp4(tmp: Path, n: int, final: Path) -> None:
    """ffmpeg does not fail loudly (a full disk leaves an empty file and exit status 0 in imageio): read the file
    back and raise a one-line error unless it holds the n frames sent."""
    import imageio_ffmpeg

    try:
        got = imageio_ffmpeg.count_frames_and_secs(str(tmp))[0] if tmp.stat().st_size else 0
    except (RuntimeError, OSError):
        got = 0
    if got == n:
        return
    free = shutil.disk_usage(tmp.parent).free
    why = (f"no space left on the device of {final.parent} ({free} bytes free)" if free < 1 << 20 else
           f"ffmpeg wrote {got} of {n} frames (run with -v to see its messages)")
    kept = f"the previous {final.name} is unchanged" if final.exists() else "nothing was written"
    raise WriteError(f"encoding {final} failed: {why}; {kept}")


def write_video(frames: Iterable[np.ndarray], path, fps: int = 30, *, fmt: str | None = None) -> Path:
    """Encode frames ([H, W, 3] uint8 or float in [0, 1]), streamed one at a time, to path atomically; returns the
    path actually written.

    fmt "mp4" (H.264 via imageio-ffmpeg), "gif", or None: from path's suffix. When no ffmpeg is available the
    video is written as GIF beside path (same stem) instead. The previous file at path is replaced only by a
    complete video: an encoder failure or a full disk raises a WriteError and leaves it as it was.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "mp4").lower()
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(VIDEO_FORMATS)}, got {fmt!r}")
    if fmt == "mp4" and _ffmpeg_exe() is None:
        log.warning("MP4 encoding is unavailable (no ffmpeg from imageio-ffmpeg); writing a GIF instead")
        fmt = "gif"
    final = path.with_suffix(f".{fmt}")
    stream = _frames_uint8(frames, even=True)
    first = next(stream, None)
    if first is None:
        raise ValueError("no frames to write")
    stream = itertools.chain([first], stream)
    with atomic_path(final, suffix=f".{fmt}") as tmp:
        if fmt == "mp4":
            n = _encode_mp4(stream, tmp, fps)
            _check_mp4(tmp, n, final)
        else:
            _encode_gif(stream, tmp, fps)
    return final


SHEET_FRAMES = 12  # frames in a turntable's contact sheet (every 30 degrees), 6 per row
SHEET_TILE = 192  # the longest side of a tile, in pixels


def write_contact_sheet(frames: list[np.ndarray], path, columns: int = 6) -> Path:
    """One PNG of frames ([H, W, 3]) tiled `columns` per row, each scaled to at most SHEET_TILE px; written
    atomically. People look at it before they open the video or the mesh."""
    from PIL import Image

    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    tiles = [Image.fromarray(_to_uint8(f)) for f in frames]
    scale = min(1.0, SHEET_TILE / max(tiles[0].size))
    size = (max(1, round(tiles[0].width * scale)), max(1, round(tiles[0].height * scale)))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (size[0] * min(columns, len(tiles)), size[1] * rows), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile.resize(size, Image.LANCZOS), ((i % columns) * size[0], (i // columns) * size[1]))
    final = Path(path)
    with atomic_path(final, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return final


def _keep_sheet_frames(images: Iterable[np.ndarray], frames: int, kept: list) -> Iterator[np.ndarray]:
    """Pass the frames through, keeping SHEET_FRAMES evenly spaced ones for the contact sheet."""
    picks = set(np.linspace(0, frames, SHEET_FRAMES, endpoint=False).astype(int).tolist())
    for i, image in enumerate(images):
        if i in picks:
            kept.append(np.asarray(image).copy())
        yield image


def render_turntable(render_view: Callable[[float], np.ndarray], path, frames: int = 120, fps: int = 30, *,
                     start_deg: float = 0.0, progress: bool = False, fmt: str | None = None,
                     contact_sheet: bool = True) -> Path:
    """Render render_view(azimuth_deg) -> [H, W, 3] image for one turn of azimuths and encode it to path.

    The renderer decides the camera (radius, elevation, fov, shading); this only drives the turn and the encoding,
    so it is testable with any fake renderer. Frames go to the encoder as they are rendered (at most MAX_FRAMES).
    contact_sheet: also write `<path>.png`, SHEET_FRAMES frames of the turn on one image (after the video).
    Returns the written path (.mp4, or .gif as fallback).
    """
    from tqdm.auto import tqdm

    if int(frames) != frames or not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be an integer in [1, {MAX_FRAMES}], got {frames}")
    images = (render_view(float(az)) for az in tqdm(turntable_azimuths(frames, start_deg), desc="turntable",
                                                     unit="frame", disable=not progress, leave=False))
    kept: list[np.ndarray] = []
    video = write_video(_keep_sheet_frames(images, int(frames), kept) if contact_sheet else images, path, fps,
                        fmt=fmt)
    if contact_sheet:
        sheet = write_contact_sheet(kept, Path(path).with_suffix(".png"))
        log.info("contact sheet %s", sheet)
    return video
