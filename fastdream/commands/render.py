"""`fastdream render RUN_DIR`: turntable video (MP4, or GIF when MP4 encoding is unavailable) of a trained run."""
from __future__ import annotations

import argparse

from fastdream.commands._argtypes import positive_int as _positive_int

HELP = "render a turntable video (MP4, GIF fallback) of a trained run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `fastdream generate`")
    parser.add_argument("--frames", type=_positive_int, default=120, help="frames in one turn (default: 120)")
    parser.add_argument("--size", type=_positive_int, default=512, help="frame width and height (default: 512)")
    parser.add_argument("--fps", type=_positive_int, default=30, help="frames per second (default: 30)")
    parser.add_argument("--shading", choices=("albedo", "lambertian", "textureless"), default="albedo",
                        help="albedo colour, lit colour (headlight) or lit grey geometry (default: albedo)")
    parser.add_argument("--elevation", type=float, default=15.0, help="camera elevation in degrees (default: 15)")
    parser.add_argument("--radius", type=float, default=None,
                        help="camera distance in world units (default: the run's farthest training camera)")
    parser.add_argument("--fovy", type=float, default=None,
                        help="vertical field of view in degrees (default: the run's mean training fov)")
    parser.add_argument("--out", default=None, help="video path (default: RUN_DIR/video/turntable.mp4)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    import torch

    from fastdream.checkpoint import load_run
    from fastdream.errors import UserError
    from fastdream.export.runs import render_run

    if args.radius is not None and args.radius <= 0:
        raise UserError(f"--radius must be > 0, got {args.radius}")
    if args.fovy is not None and not 1.0 <= args.fovy <= 179.0:
        raise UserError(f"--fovy must be in [1, 179] degrees, got {args.fovy}")
    if not -90.0 <= args.elevation <= 90.0:
        raise UserError(f"--elevation must be in [-90, 90] degrees, got {args.elevation}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_run(args.run_dir, device=device)
    out = Path(args.out) if args.out else Path(args.run_dir) / "video" / "turntable.mp4"
    path = render_run(loaded, out, frames=args.frames, size=args.size, fps=args.fps, elevation_deg=args.elevation,
                      shading=args.shading, radius=args.radius, fovy_deg=args.fovy)
    logging.getLogger("fastdream").info("wrote %s", path)
    return 0
