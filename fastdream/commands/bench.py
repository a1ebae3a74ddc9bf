"""`fastdream bench [kernels|step|e2e|all] [--quick] [--json FILE] [--device DEV]`: throughput benchmarks.

Every figure is measured in the same run against the alternatives (nerfacc, tinycudann when importable, the
pure-PyTorch baseline); the JSON carries the card, torch, CUDA, commit, command and date.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastdream.errors import UserError

HELP = "throughput benchmarks (kernels, SDS step, end to end) against nerfacc/tinycudann/PyTorch, as JSON"
SECTIONS = ("kernels", "step", "e2e")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", nargs="?", default="all", choices=(*SECTIONS, "all"),
                        help="which benchmark to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats on the CPU (a smoke test, figures mean nothing)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when available, cpu with --quick)")


def _import_bench():
    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "common.py").is_file():
        raise UserError("`fastdream bench` runs from a source checkout (it needs the bench/ folder beside "
                        f"fastdream/); none found at {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import bench.common  # noqa: F401


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    _import_bench()
    from bench import common

    if args.device is None:
        device = torch.device("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    else:
        try:
            device = torch.device(args.device)
        except RuntimeError as exc:
            raise UserError(f"--device {args.device!r}: {exc}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA GPU is visible to PyTorch")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    sections = SECTIONS if args.what == "all" else (args.what,)
    log = logging.getLogger("fastdream.bench")
    if device.type == "cpu" and not args.quick:
        log.warning("full-size benchmarks on the CPU (SD-2.1-base-sized models) take a long time; "
                    "--quick runs the smoke-test sizes")
    if sys.argv[1:2] == ["bench"]:
        command = ["fastdream", "bench", *sys.argv[2:]]
    else:  # called in-process (tests, scripts): record the equivalent command line
        command = ["fastdream", "bench", args.what, *(["--quick"] if args.quick else []),
                   *(["--json", str(args.json)] if args.json else []), *(["--device", str(args.device)] if args.device else [])]
    env = common.environment(device, command)
    results: dict = {"schema": common.SCHEMA, "quick": bool(args.quick), "environment": env}
    if device.type == "cuda" and not args.quick:
        results["suggested_path"] = common.results_name(env)

    def save():
        results["summary"] = common.summarize(results)
        if args.json:
            common.write_json(args.json, results)

    for name in sections:
        log.info("bench %s on %s%s ...", name, device, " (quick)" if args.quick else "")
        module = __import__(f"bench.{name}", fromlist=["run"])
        try:
            results[name] = module.run(device, args.quick)
        except Exception as exc:  # noqa: BLE001 - record and go on to the next section
            log.warning("bench %s failed: %s", name, exc)
            results[name] = common.failed(exc)
        save()  # after each section, so a later hang or kill keeps what was measured
    print(common.report(results))
    if args.json:
        log.info("wrote %s", args.json)
    return 0
