"""`fastdream eval`: CLIP R-precision of runs at protocol views, per CLIP model, mean ± s.e.m. over seeds; and/or
(--procedural) retrieval against procedural ground-truth renders of every shape × colour prompt plus absolute truth
figures (Chamfer, volume and silhouette IoU, off-surface area, mesh validity) for runs with an exact truth, offline."""
from __future__ import annotations

import argparse

HELP = ("CLIP R-precision (R@1) of runs rendered at protocol views, per CLIP model, mean ± s.e.m. over seeds; "
        "or --procedural: R@1, shape and colour accuracy against procedural ground truth, and absolute truth figures "
        "with pass/fail bars for oracle (target:NAME) and builtin:shapes(-sd) runs (offline)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by fastdream generate")
    parser.add_argument("--clip", action="append", metavar="MODEL",
                        help="CLIP model: a local folder (transformers save_pretrained) or a hub id; repeat for "
                             "several models (--clip and/or --procedural is required)")
    parser.add_argument("--procedural", action="store_true",
                        help="score each run against procedural ground-truth renders of every shape × colour "
                             "prompt (albedo shading on white, no model, no network): retrieval R@1, shape "
                             "accuracy and colour accuracy, for prompts such as 'a red cube'. Runs with an exact "
                             "truth (--guidance target:NAME, or --model builtin:shapes(-sd) with a shape prompt; size "
                             "fitted within the prior's range) also get Chamfer distance both ways (%% of the box "
                             "diagonal), volume IoU, silhouette IoU of the rendered opacity, the fraction of mesh "
                             "area off the true surface and mesh validity, measured on mesh/model.glb (else "
                             "model.obj, else a mesh extracted in memory), with pass/fail bars; a run is "
                             "'correct' when its R@1 hits and every bar passes")
    parser.add_argument("--prompts", metavar="FILE",
                        help="candidate captions: one per line, or a JSON list / dict of lists "
                             "(default: the prompts of the evaluated runs)")
    parser.add_argument("--views", type=int, default=8, help="azimuths per run, evenly spaced (default 8)")
    parser.add_argument("--elevation", type=float, default=30.0, help="camera elevation in degrees (default 30)")
    parser.add_argument("--size", type=int, default=None,
                        help="render size in pixels (default 224 for --clip, 64 for --procedural)")
    parser.add_argument("--radius", type=float, help="camera distance (default: the run's own camera settings)")
    parser.add_argument("--fovy", type=float, help="vertical field of view in degrees (default: the run's own)")
    parser.add_argument("--modes", default="color,textureless",
                        help="shading modes to score with CLIP, comma-separated (default color,textureless; "
                             "--procedural always uses color)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--offline", action="store_true",
                        help="never contact the Hugging Face hub; use local folders and the cache only")
    parser.add_argument("--json", metavar="FILE",
                        help="also write the full report as JSON here (with both --clip and --procedural: the CLIP "
                             "report with the procedural one under \"procedural\")")


def _protocols(args):
    """(CLIP protocol at 224^2 and the colour+textureless modes, procedural protocol at 64^2 colour-only)."""
    from fastdream.errors import UserError
    from fastdream.eval.views import ViewProtocol

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    common = dict(views=args.views, elevation=args.elevation, radius=args.radius, fovy=args.fovy)
    try:
        return (ViewProtocol(size=args.size if args.size is not None else 224, modes=modes, **common),
                ViewProtocol(size=args.size if args.size is not None else 64, modes=("color",), **common))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _clip_report(args, protocol, device) -> dict:
    from fastdream.commands.prompt_list import read_prompt_list
    from fastdream.eval.clip import load_clip
    from fastdream.eval.report import evaluate_runs, format_table

    candidates = read_prompt_list(args.prompts) if args.prompts else None
    clips = [load_clip(name, device=device, local_files_only=True if args.offline else None)
             for name in dict.fromkeys(args.clip)]
    report = evaluate_runs(args.run_dirs, clips, protocol, candidates,
                           candidates_source=str(args.prompts) if args.prompts else None, device=device)
    print(format_table(report))
    return report


def _procedural_report(args, protocol, device) -> dict:
    from fastdream.errors import UserError
    from fastdream.eval.procedural_report import evaluate_procedural, format_procedural_table

    try:
        report = evaluate_procedural(args.run_dirs, protocol, device=device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(format_procedural_table(report))
    return report


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from fastdream.errors import UserError
    from fastdream.files import atomic_write

    if not args.clip and not args.procedural:
        raise UserError("say what to score with: --clip MODEL (CLIP R-precision) and/or --procedural "
                        "(procedural shape × colour ground truth, offline)")
    clip_protocol, proc_protocol = _protocols(args)
    for d in args.run_dirs:
        if not Path(d).is_dir():
            raise UserError(f"run folder {d} does not exist")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    report = _clip_report(args, clip_protocol, device) if args.clip else None
    if args.procedural:
        if report is not None:
            print()
        proc = _procedural_report(args, proc_protocol, device)
        report = proc if report is None else {**report, "procedural": proc}
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            f.write((json.dumps(report, indent=2) + "\n").encode("utf-8"))
    return 0
