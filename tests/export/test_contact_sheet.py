"""The turntable's contact sheet: SHEET_FRAMES evenly spaced frames of the turn on one PNG beside the video."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastdream.export.turntable import SHEET_FRAMES, render_turntable, write_contact_sheet


def _frame_of(azimuth: float, size=(40, 60)) -> np.ndarray:
    """A flat frame whose red channel encodes the azimuth (degrees / 360), so tiles can be told apart."""
    img = np.zeros((*size, 3), dtype=np.float32)
    img[..., 0] = azimuth / 360.0
    img[..., 1] = 0.5
    return img


def test_render_writes_a_sheet_of_evenly_spaced_frames_beside_the_video(tmp_path):
    video = render_turntable(_frame_of, tmp_path / "turntable.gif", frames=36, fps=10, fmt="gif")
    sheet = tmp_path / "turntable.png"
    assert video.is_file() and sheet.is_file()
    img = np.asarray(Image.open(sheet).convert("RGB"))
    assert img.shape == (2 * 40, 6 * 60, 3)  # 12 tiles, 6 per row, no scaling below the tile size
    reds = [int(img[(i // 6) * 40 + 20, (i % 6) * 60 + 30, 0]) for i in range(SHEET_FRAMES)]
    expected = [round(255 * (k * 3 * 10.0) / 360.0) for k in range(SHEET_FRAMES)]  # every 3rd of 36 frames: 30 deg
    assert np.abs(np.array(reds) - np.array(expected)).max() <= 1


def test_large_frames_are_scaled_down_and_a_short_turn_still_makes_a_sheet(tmp_path):
    path = write_contact_sheet([_frame_of(0.0, (512, 512))] * 3, tmp_path / "s.png")
    assert Image.open(path).size == (3 * 192, 192)
    render_turntable(_frame_of, tmp_path / "t.gif", frames=5, fps=5, fmt="gif")
    assert Image.open(tmp_path / "t.png").size == (5 * 60, 40)  # fewer frames than SHEET_FRAMES: each once


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_contact_sheet([], tmp_path / "s.png")
