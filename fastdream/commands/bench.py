"""`fastdream bench [kernels|step|e2e|all] [--quick] [--json FILE] [--device DEV] [--variants LIST]`: throughput
benchmarks.

Every figure is measured in the same run against the alternatives (nerfacc, tinycudann when importable, the
pure-PyTorch baseline, a threestudio-equivalent step); the JSON carries the card, torch, CUDA, commit, command and
date. The sections live in the source checkout's bench/ folder (bench/sections.py lists them).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fastdream.errors import UserError

HELP = "throughput benchmarks (kernels, the Trainer's SDS step, end to end) against peers and baselines, as JSON"
SECTIONS = ("kernels", "step", "e2e")  # bench/sections.py registers these; listed here so --help stays fast

log = logging.getLogger("fastdream.bench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", default="all", choices=(*SECTIONS, "all"),
                        help="which benchmark to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats on the CPU (a smoke test, figures mean nothing)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE (after each row)")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when available, cpu with --quick)")
    parser.add_argument("--variants", default=None, metavar="LIST",
                        help="step rows to run: comma list of names or groups eager, compiled, all (default: all; "
                             "rows a device cannot run are reported as unavailable)")


def _import_sections():
    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "sections.py").is_file():
        raise UserError("`fastdream bench` runs from a source checkout (it needs the bench/ folder beside "
                        f"fastdream/); none found at {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench import common, sections

    return common, sections


def _device(args):
    import torch

    if args.device is None:
        return torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"--device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA GPU is visible to PyTorch")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def _command(args) -> list[str]:
    if sys.argv[1:2] == ["bench"]:
        return ["fastdream", "bench", *sys.argv[2:]]
    # called in-process (tests, scripts): record the equivalent command line
    return ["fastdream", "bench", args.what, *(["--quick"] if args.quick else []),
            *(["--json", str(args.json)] if args.json else []), *(["--device", str(args.device)] if args.device else []),
            *(["--variants", args.variants] if args.variants else [])]


def run(args: argparse.Namespace) -> int:
    common, sections = _import_sections()
    device = _device(args)
    names = SECTIONS if args.what == "all" else (args.what,)
    if device.type == "cpu" and not args.quick:
        log.warning("full-size benchmarks on the CPU (SD-2.1-base-sized models) take a long time; "
                    "--quick runs the smoke-test sizes")
    env = common.environment(device, _command(args))
    results: dict = {"schema": common.SCHEMA, "quick": bool(args.quick), "environment": env}
    if device.type == "cuda" and not args.quick:
        results["suggested_path"] = common.results_name(env)

    def save():
        results["summary"] = sections.summarize(results)
        if args.json:
            common.write_json(args.json, results)

    for name in names:
        log.info("bench %s on %s%s ...", name, device, " (quick)" if args.quick else "")

        def progress(partial, _name=name):
            results[_name] = partial
            save()
        try:
            results[name] = sections.SECTIONS[name].run(device, args.quick, variants=args.variants,
                                                        on_progress=progress)
        except ValueError as exc:  # e.g. an unknown --variants name
            raise UserError(f"bench {name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - record and go on to the next section
            log.warning("bench %s failed: %s", name, exc)
            results[name] = common.failed(exc)
        save()  # after each section, so a later hang or kill keeps what was measured
    print(sections.report(results))
    if args.json:
        log.info("wrote %s", args.json)
    return 0
