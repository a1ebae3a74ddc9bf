"""`fastdream batch`: generate one run per prompt and seed, resumably, one worker per GPU."""
from __future__ import annotations

import argparse

HELP = "generate one run per (prompt, seed) into OUT/<slug>-s<seed>/, resumable, one worker per GPU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts_file", metavar="PROMPTS", help="prompt file: one per line, or a JSON list / dict")
    parser.add_argument("--out", required=True, metavar="DIR", help="batch folder (one sub-folder per run)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--gpus", default=None,
                        help="comma-separated GPU ids, one worker each (CUDA_VISIBLE_DEVICES); default: one "
                             "worker, environment unchanged")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds a generate process gets to stop after Ctrl-C before SIGTERM (default 60)")
    parser.epilog = ("Arguments after `--` go to every `fastdream generate` call, e.g. "
                     "`fastdream batch prompts.txt --out runs --seeds 0,1 -- --preset fast --iters 2000`.")
    parser.set_defaults(generate_args=[])

    # argparse cannot take options between a positional and `--extra args`, so split at the first `--` here.
    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(args) if args is not None else []
        extra = []
        if "--" in args:
            i = args.index("--")
            args, extra = args[:i], args[i + 1:]
        ns, rest = parse_known(args, namespace)
        ns.generate_args = extra
        return ns, rest

    parser.parse_known_args = parse_known_args


def run(args: argparse.Namespace) -> int:
    from fastdream.commands.batch_runner import parse_int_list, run_batch
    from fastdream.commands.prompt_list import read_prompt_list

    prompts = read_prompt_list(args.prompts_file)
    seeds = parse_int_list(args.seeds, "--seeds")
    gpus = None
    if args.gpus:
        gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
        if not gpus:
            from fastdream.errors import UserError

            raise UserError(f"--gpus must list GPU ids like 0,1, got {args.gpus!r}")
    results = run_batch(prompts, args.out, seeds, gpus=gpus, extra_args=args.generate_args,
                        grace_seconds=args.grace, on_event=lambda msg: print(f"fastdream batch: {msg}", flush=True))
    failed = [r for r in results if r.status != "done" and r.status != "skipped"]
    done = len(results) - len(failed)
    print(f"fastdream batch: {done}/{len(results)} runs finished; summary in {args.out}/summary.md", flush=True)
    return 1 if failed else 0
