"""`fastdream export RUN_DIR`: textured mesh (GLB and/or OBJ+MTL+PNG) from a trained run."""
from __future__ import annotations

import argparse
import math

from fastdream.commands._argtypes import int_in
from fastdream.export.shell import DEFAULT_SEAL

HELP = "extract a textured mesh (GLB, OBJ+MTL+PNG) from a trained run"


def _threshold(text: str):
    """'silhouette', 'depth' or a finite density > 0 (densities are never negative: 0 or less has no surface)."""
    if text in ("silhouette", "depth"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be 'silhouette', 'depth' or a density value > 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction of the box in [0, 1), got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `fastdream generate`")
    parser.add_argument("--format", default="glb,obj", help="comma-separated: glb, obj (default: glb,obj)")
    parser.add_argument("--resolution", type=int_in(8, 2048), default=256,
                        help="marching-cubes grid points per axis, 8 to 2048 (default: 256)")
    parser.add_argument("--texture-size", type=int_in(8, 16384), default=1024,
                        help="albedo texture width and height in pixels, 8 to 16384 (default: 1024)")
    parser.add_argument("--faces", type=int_in(4, 100_000_000), default=100_000,
                        help="decimate to at most this many triangles, at least 4 (default: 100000)")
    parser.add_argument("--threshold", type=_threshold, default=None,
                        help="density level of the surface: 'silhouette' (default: matches the rendered "
                             "silhouettes), 'depth' (matches rendered depth) or a number")
    parser.add_argument("--fill-unseen", action="store_true",
                        help="fill empty space that no training camera could see first, removing the inner skin of "
                             "shells open towards the ground (slower: seconds per export)")
    parser.add_argument("--seal", type=_fraction, default=DEFAULT_SEAL,
                        help="openings in the outer shell narrower than this fraction of the box are sealed, so "
                             f"the inside of a leaky trained shell stays inside (default: {DEFAULT_SEAL})")
    parser.add_argument("--all-surfaces", action="store_true",
                        help="keep every surface at the density level, inner shells and foam too, instead of one "
                             "closed outer shell (the behaviour before the shell; not watertight)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/mesh)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from fastdream.checkpoint import load_run
    from fastdream.commands._argtypes import device
    from fastdream.errors import UserError
    from fastdream.export import parse_formats
    from fastdream.export.runs import export_run

    try:
        formats = parse_formats(args.format)
    except ValueError as exc:
        raise UserError(f"--format: {exc}") from None
    out = Path(args.out) if args.out else Path(args.run_dir) / "mesh"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the mesh files")
    loaded = load_run(args.run_dir, device=device(args.device))
    result = export_run(loaded, out, formats=formats, resolution=args.resolution, texture_size=args.texture_size,
                        max_faces=args.faces, threshold=args.threshold, fill_unseen=args.fill_unseen,
                        shell=not args.all_surfaces, seal=args.seal)
    log = logging.getLogger("fastdream")
    for paths in result.files.values():
        for p in paths:
            log.info("wrote %s", p)
    log.info("%d faces, %d vertices, texture %d^2, density threshold %.4g, %.1f s", result.n_faces,
             result.n_vertices, result.texture_size, result.threshold, result.seconds["total"])
    return 0
