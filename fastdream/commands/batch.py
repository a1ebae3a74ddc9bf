"""`fastdream batch`: generate one run per prompt and seed, resumably, one worker per GPU or on a Ray cluster; every
batch folder gets summary.json, summary.md and a gallery page, index.html."""
from __future__ import annotations

import argparse
import math
import re

from fastdream.commands._argtypes import positive_int

HELP = ("generate one run per (prompt, seed) into OUT/<slug>-s<seed>/, resumable, one worker per GPU or one Ray "
        "task per run; writes summary.md/.json and a gallery page OUT/index.html")
RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.\-]+:\d+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts_file", metavar="PROMPTS", nargs="?",
                        help="prompt file: one per line, or a JSON list / dict")
    parser.add_argument("--out", metavar="DIR", help="batch folder (one sub-folder per run); with --ray a folder "
                        "every node of the cluster mounts at the same path")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--gpus", default=None,
                        help="comma-separated GPU ids, one worker each (CUDA_VISIBLE_DEVICES); default: one "
                             "worker, environment unchanged")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds a generate process gets to stop after Ctrl-C before SIGTERM (default 60)")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run each (prompt, seed) as a Ray task (one GPU, or --cpus-per-run CPUs with "
                             "--device cpu) on the cluster at ADDRESS (auto, ray://host:port, host:port); without "
                             "ADDRESS, start Ray on this machine. --out must be on a filesystem every node sees. "
                             "Needs " + 'pip install "fastdream[ray]"')
    parser.add_argument("--ray-cpus", type=positive_int, default=None, metavar="N",
                        help="with --ray and no ADDRESS: CPUs of the local Ray instance (default: all)")
    parser.add_argument("--cpus-per-run", type=positive_int, default=1, metavar="N",
                        help="with --ray and --device cpu: CPUs each run asks Ray for (default 1)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="only rebuild the gallery page DIR/index.html of an existing batch folder")
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


def _check_args(args: argparse.Namespace) -> None:
    from fastdream.errors import UserError

    if args.ray is not None and args.prompts_file is None and not RAY_ADDRESS.match(args.ray):
        args.prompts_file, args.ray = args.ray, "local"  # `--ray PROMPTS --out DIR`: the file is no address
    if not args.prompts_file or not args.out:
        raise UserError("fastdream batch needs PROMPTS and --out DIR (or --report DIR to rebuild a batch's page)")
    if not math.isfinite(args.grace) or args.grace < 0:
        raise UserError(f"--grace must be a number of seconds >= 0, got {args.grace:g}")
    if args.ray is not None and args.gpus:
        raise UserError("--gpus is for a batch on this machine; with --ray each run gets its GPU from Ray")


def run(args: argparse.Namespace) -> int:
    from fastdream.commands.batch_jobs import check_out_dir, parse_int_list, plan_jobs, split_generate_args
    from fastdream.commands.batch_summary import failure_lines
    from fastdream.commands.prompt_list import read_prompt_list
    from fastdream.errors import UserError

    if args.report is not None:
        from fastdream.commands.gallery import rebuild_gallery

        print(f"fastdream batch: wrote {rebuild_gallery(args.report)}", flush=True)
        return 0
    _check_args(args)
    prompts = read_prompt_list(args.prompts_file)
    seeds = parse_int_list(args.seeds, "--seeds")
    split_generate_args(args.generate_args)  # refuses --out/--seed before anything starts
    check_out_dir(args.out)
    gpus = None
    if args.gpus:
        gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
        if not gpus:
            raise UserError(f"--gpus must list GPU ids like 0,1, got {args.gpus!r}")
    say = lambda msg: print(f"fastdream batch: {msg}", flush=True)  # noqa: E731
    if args.ray is not None:
        from fastdream.commands.batch_ray import RayBatch

        results = RayBatch(plan_jobs(prompts, seeds, args.out), args.out,
                           address=None if args.ray == "local" else args.ray, extra_args=args.generate_args,
                           grace_seconds=args.grace, cpus_per_run=args.cpus_per_run, local_cpus=args.ray_cpus,
                           on_event=say).run()
    else:
        from fastdream.commands.batch_runner import run_batch

        results = run_batch(prompts, args.out, seeds, gpus=gpus, extra_args=args.generate_args,
                            grace_seconds=args.grace, on_event=say)
    rows = [r.__dict__ for r in results]
    failed = [r for r in results if r.status not in ("done", "skipped")]
    say(f"{len(results) - len(failed)}/{len(results)} runs finished; summary in {args.out}/summary.md, gallery "
        f"{args.out}/index.html")
    for line in failure_lines(rows):
        say(line)
    return 1 if failed else 0
