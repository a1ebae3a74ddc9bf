"""`fastdream render RUN_DIR`: turntable video (MP4, or GIF when MP4 encoding is unavailable) of a trained run."""
from __future__ import annotations

import argparse

from fastdream.commands._argtypes import finite_float, positive_int
from fastdream.ops.rendering import SHADING_MODES

HELP = "render a turntable video (MP4, GIF fallback) of a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `fastdream generate`")
    parser.add_argument("--frames", type=positive_int, default=120,
                        help="frames in one turn, at most 3600 (default: 120)")
    parser.add_argument("--size", type=positive_int, default=512,
                        help="frame width and height in pixels, 8 to 4096 (default: 512)")
    parser.add_argument("--fps", type=positive_int, default=30, help="frames per second (default: 30)")
    parser.add_argument("--shading", choices=SHADING_MODES, default="albedo",
                        help="albedo colour, lit colour (headlight) or lit grey geometry (default: albedo)")
    parser.add_argument("--elevation", type=finite_float, default=15.0,
                        help="camera elevation in degrees (default: 15)")
    parser.add_argument("--radius", type=finite_float, default=None,
                        help="camera distance in world units (default: the run's farthest training camera)")
    parser.add_argument("--fovy", type=finite_float, default=None,
                        help="vertical field of view in degrees (default: the run's mean training fov)")
    parser.add_argument("--out", default=None,
                        help="video path, .mp4 or .gif (default: RUN_DIR/video/turntable.mp4)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def _check(args: argparse.Namespace) -> None:
    from fastdream.errors import UserError
    from fastdream.export.runs import MAX_SIZE
    from fastdream.export.turntable import MAX_FRAMES

    if args.frames > MAX_FRAMES:
        raise UserError(f"--frames must be at most {MAX_FRAMES}, got {args.frames}")
    if not 8 <= args.size <= MAX_SIZE:
        raise UserError(f"--size must be in [8, {MAX_SIZE}] pixels, got {args.size}")
    if args.fps > 240:
        raise UserError(f"--fps must be at most 240, got {args.fps}")
    if args.radius is not None and args.radius <= 0:
        raise UserError(f"--radius must be > 0, got {args.radius}")
    if args.fovy is not None and not 1.0 <= args.fovy <= 179.0:
        raise UserError(f"--fovy must be in [1, 179] degrees, got {args.fovy}")
    if not -90.0 <= args.elevation <= 90.0:
        raise UserError(f"--elevation must be in [-90, 90] degrees, got {args.elevation}")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from fastdream.checkpoint import load_run
    from fastdream.commands._argtypes import device, output_file
    from fastdream.export.runs import render_run
    from fastdream.export.turntable import VIDEO_FORMATS

    _check(args)
    out = Path(args.run_dir) / "video" / "turntable.mp4"
    if args.out:
        out = output_file(args.out, "--out", tuple(f".{f}" for f in VIDEO_FORMATS))
    loaded = load_run(args.run_dir, device=device(args.device))
    path = render_run(loaded, out, frames=args.frames, size=args.size, fps=args.fps, elevation_deg=args.elevation,
                      shading=args.shading, radius=args.radius, fovy_deg=args.fovy)
    logging.getLogger("fastdream").info("wrote %s", path)
    return 0
