"""The recipes against the exact truth: every builtin primitive in two colours, plus the oracle targets, each trained
with `--preset fast` on the CPU through `fastdream generate` (the path users run), then scored by
`fastdream eval --procedural` (Chamfer, volume and silhouette IoU, off-surface area, fitted size, watertightness)
and the Khronos glTF validator.

    python bench/recipe_truth.py --out runs/recipe-truth [--model builtin:shapes] [--jobs 2]
                                 [--only builtin|oracle|ceiling] [--colors red,blue] [--shapes cube,...] [--iters N]
                                 [--results bench/results] [--set KEY=VALUE ...] [--tag NAME]

--only ceiling trains each primitive against the exact oracle (`--guidance target:SHAPE`, the same primitive at size
0.5) under the builtin model's own fast recipe: same cameras, render size, shading, background, regularisers and
step count, with exact images in place of the prior. What it misses is the recipe's fault; what the builtin rows miss
beyond it is the prior's.

Runs that finished (their folder holds mesh/model.glb and metrics) are reused, so an interrupted table resumes.
Writes DIR/eval.json, and bench/results/<date>-cpu-recipe-truth[-<model>].{json,md} with the command, commit and
machine. --set passes config overrides to every run (a candidate recipe, measured before it ships); --tag names
such a table's results files apart from the shipped recipe's. --jobs N trains N runs at once, each with cores / N
threads (--threads sets it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from fastdream.procedural import PRIMITIVES  # noqa: E402

ORACLES = (("a ball", "sphere"), ("a snowman", "snowman"), ("a rocket", "rocket"))


def _flat(overrides: dict) -> list[str]:
    return [f"{key}.{sub}" for key, value in overrides.items() if isinstance(value, dict) for sub in value] + \
        [key for key, value in overrides.items() if not isinstance(value, dict)]


def recipe_overrides(model: str, oracle: str = "target:cube") -> list[str]:
    """`key=value` arguments of `fastdream generate` that give an oracle run `model`'s resolved fast recipe: every key
    either guidance's recipe sets, at the value it has in `model`'s config."""
    from fastdream.config import make_config, to_dict
    from fastdream.guidance.kinds import recipe
    config = to_dict(make_config("fast", **{"guidance.spec": model}))
    out = []
    keys = set(_flat(recipe(None, model, "fast"))) | set(_flat(recipe(oracle, None, "fast")))
    # the oracle has no elevation classifier to guide by (its images are exact at every elevation)
    for key in sorted(k for k in keys if not k.startswith("guidance.elevation_guidance")):
        value = config
        for part in key.split("."):
            value = value[part]
        out.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return out


def jobs(args) -> list[tuple[str, str, list[str]]]:
    """(folder name, prompt, generate arguments) for each run of the table."""
    out = []
    if args.only == "ceiling":
        overrides = [o for o in recipe_overrides(args.model) if not (args.iters and o.startswith("train.iters="))]
        for shape in args.shapes.split(","):
            out.append((f"ceiling-{shape}", f"a {shape}", ["--guidance", f"target:{shape}", *overrides]))
    if args.only in (None, "builtin"):
        for shape in args.shapes.split(","):
            for color in args.colors.split(","):
                out.append((f"{color}-{shape}", f"a {color} {shape}", ["--model", args.model]))
    if args.only in (None, "oracle"):
        for prompt, target in ORACLES:
            out.append((f"target-{target}", prompt, ["--guidance", f"target:{target}"]))
    return out


def _finished(run: Path) -> bool:
    return (run / "mesh" / "model.glb").is_file() and (run / "metrics.jsonl").is_file()


def train(job, args) -> dict:
    """Run `fastdream generate` for one job (unless finished); {name, prompt, command, seconds, rc}."""
    name, prompt, extra = job
    run = Path(args.out) / name
    # the job's own arguments last: generate takes key=value overrides after the options
    cmd = ["fastdream", "generate", prompt, "--preset", "fast", "--device", "cpu", "--seed", str(args.seed),
           "--out", str(run), *(["--iters", str(args.iters)] if args.iters else []), *extra, *args.set]
    row = {"name": name, "prompt": prompt, "command": shlex.join(cmd)}
    if _finished(run):
        timing = Path(args.out) / f"{name}.seconds"  # written when it trained, so a resumed table keeps its time
        seconds = float(timing.read_text()) if timing.is_file() else None
        return {**row, "seconds": seconds, "rc": 0, "reused": True}
    env = dict(os.environ)
    # N runs at once share the cores; two tables side by side need --threads 1, or each oversubscribes the machine
    threads = str(args.threads or max(1, (os.cpu_count() or 1) // max(1, args.jobs)))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    start = time.monotonic()
    with open(Path(args.out) / f"{name}.log", "w") as log:
        rc = subprocess.run(cmd + (["--resume"] if (run / "checkpoints" / "last.pt").is_file() else []),
                            stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = round(time.monotonic() - start, 1)
    why = "" if rc == 0 else f": {_last_line(Path(args.out) / f'{name}.log')}"
    print(f"{name}: exit {rc} after {seconds} s{why}", flush=True)
    if rc == 0:
        (Path(args.out) / f"{name}.seconds").write_text(f"{seconds}\n")
    return {**row, "seconds": seconds, "rc": rc}


def _last_line(log: Path) -> str:
    """The last non-empty line of a run's log: generate's one-line error when it refused to start."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    return lines[-1].strip() if lines else "(no output)"


def gltf_errors(glb: Path) -> int | None:
    """Errors the Khronos validator reports for a GLB (None when the validator cannot run here)."""
    try:
        from tests.helpers.gltf_validator import validate
        return int(validate(glb)["issues"]["numErrors"])
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the helper fails pytest-style (not an Exception) where node/npm are missing
        print(f"glTF validator unavailable: {exc}", file=sys.stderr)
        return None


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short=8", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def table_rows(report: dict, trained: dict) -> list[dict]:
    rows = []
    for r in report["runs"]:
        t, name = r.get("truth") or {}, Path(r["run_dir"]).name
        v = t.get("validity") or {}
        rows.append({"name": name, "prompt": r.get("prompt"), "truth": t.get("truth"), "fit": t.get("fit"),
                     "chamfer_mesh_to_truth_pct": t.get("chamfer_mesh_to_truth_pct"),
                     "chamfer_truth_to_mesh_pct": t.get("chamfer_truth_to_mesh_pct"),
                     "volume_iou": t.get("volume_iou"), "silhouette_iou": t.get("silhouette_iou"),
                     "off_surface": t.get("off_surface"), "off_surface_by_height": t.get("off_surface_by_height"),
                     "watertight": v.get("watertight"),
                     "components": v.get("components"), "rank": r.get("rank"), "predicted": r.get("predicted"),
                     "gltf_errors": gltf_errors(Path(r["run_dir"]) / "mesh" / "model.glb"),
                     "train_seconds": (trained.get(name) or {}).get("seconds")})
        rows[-1].update(passed_and_failures(t, rows[-1]["rank"], rows[-1]["gltf_errors"]))
    return rows


def passed_and_failures(truth: dict, rank: int | None, gltf_errors: int | None) -> dict:
    """A row passes when eval's truth bars pass, R@1 names the prompt (builtin rows; oracle rows have no rank) and
    the Khronos validator found no errors (None: it could not run here, which the row's column shows)."""
    failures = list(truth.get("failures") or ([] if truth else ["no truth"]))
    if rank not in (None, 1):
        failures.append(f"R@1 ranked it {rank}")
    if gltf_errors:
        failures.append(f"{gltf_errors} glTF validator errors")
    return {"passed": bool(truth.get("passed")) and not failures, "failures": failures}


def _fmt(x, spec):
    return "—" if x is None else format(x, spec)


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Recipes against the exact truth ({meta['date']}, {meta['machine']})", "",
             f"Command: `{meta['command']}` at commit {meta['commit']}. Each run: `{rows[0]['command'] if rows else ''}`"
             " (the prompt and guidance vary). Scored by `fastdream eval RUNS --procedural`; bars: builtin runs "
             "size within the prior's range ±25%, Chamfer ≤ 2.5% of the box diagonal, silhouette IoU ≥ 0.8, "
             "off-surface ≤ 5%, watertight; target:sphere Chamfer ≤ 1%, off-surface ≤ 2%, watertight, one "
             "component; the other oracle runs (ceiling rows too) the builtin bars without the size.",
             "", "| run | size | chamfer % (mesh→truth / truth→mesh) | vol IoU | sil IoU | off-surface % | "
             "of which bottom / middle / top | watertight | parts | glTF errors | R@1 rank | passed | train s |",
             "|" + "---|" * 13]
    for r in rows:
        fit = (r.get("fit") or {}).get("fitted_size")
        cham = (f"{_fmt(r['chamfer_mesh_to_truth_pct'], '.2f')} / {_fmt(r['chamfer_truth_to_mesh_pct'], '.2f')}")
        off = None if r["off_surface"] is None else 100 * r["off_surface"]
        bands = r.get("off_surface_by_height")
        split = " / ".join(f"{100 * bands[k]:.1f}" for k in ("bottom", "middle", "top")) if bands else "—"
        lines.append(f"| {r['name']} | {_fmt(fit, '.2f')} | {cham} | {_fmt(r['volume_iou'], '.3f')} | "
                     f"{_fmt(r['silhouette_iou'], '.3f')} | {_fmt(off, '.1f')} | {split} | {r['watertight']} | "
                     f"{r['components']} | {r['gltf_errors']} | {r['rank']} | {'yes' if r['passed'] else 'NO'} | "
                     f"{_fmt(r['train_seconds'], '.0f')} |")
    failing = [r for r in rows if not r["passed"]]
    lines += ["", f"Passed {len(rows) - len(failing)} of {len(rows)}."]
    lines += [f"- {r['name']}: " + "; ".join(r.get("failures") or ["no truth"]) for r in failing]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the runs")
    p.add_argument("--model", default="builtin:shapes", help="the builtin prior of the builtin rows")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", choices=("builtin", "oracle", "ceiling"))
    p.add_argument("--shapes", default=",".join(PRIMITIVES))
    p.add_argument("--colors", default="red,blue")
    p.add_argument("--iters", type=int, default=None, help="override the fast preset's step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / jobs)")
    p.add_argument("--results", default=str(REPO_ROOT / "bench" / "results"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run (repeatable)")
    p.add_argument("--tag", default=None, help="appended to the results files' names")
    args = p.parse_args(argv)
    bad = [kv for kv in args.set if "=" not in kv or kv.startswith("=")]
    if bad:
        p.error(f"--set takes KEY=VALUE, got {bad[0]!r}")
    # the commit that trains the runs (HEAD may move while they run)
    meta = {"date": dt.date.today().isoformat(), "machine": f"cpu ({os.cpu_count()} cores, {platform.machine()})",
            "commit": _commit(), "command": shlex.join(["python", "bench/recipe_truth.py", *(argv or sys.argv[1:])])}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.results).mkdir(parents=True, exist_ok=True)
    todo = jobs(args)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        trained = {r["name"]: r for r in pool.map(lambda j: train(j, args), todo)}
    runs = [str(Path(args.out) / name) for name, _, _ in todo if trained[name]["rc"] == 0]
    if not runs:
        print(f"recipe_truth: every run failed to train (see {args.out}/*.log)", file=sys.stderr)
        return 2
    eval_json = Path(args.out) / "eval.json"
    subprocess.run(["fastdream", "eval", *runs, "--procedural", "--device", "cpu", "--json", str(eval_json)],
                   check=True)
    rows = table_rows(json.loads(eval_json.read_text()), trained)
    for name in (n for n, r in trained.items() if r["rc"] != 0):
        rows.append({"name": name, "passed": False, "failures": [f"generate exited {trained[name]['rc']}"],
                     **{k: None for k in ("fit", "chamfer_mesh_to_truth_pct", "chamfer_truth_to_mesh_pct",
                                          "volume_iou", "silhouette_iou", "off_surface", "off_surface_by_height",
                                          "watertight", "components",
                                          "rank", "gltf_errors", "train_seconds")}, "command": trained[name]["command"]})
    for r in rows:
        r.setdefault("command", (trained.get(r["name"]) or {}).get("command"))
    stem = f"{meta['date']}-cpu-recipe-truth" + ("" if args.model == "builtin:shapes" else
                                                  "-" + args.model.split(":")[-1].replace("/", "_"))
    if args.only:
        stem += f"-{args.only}"
    if args.tag:
        stem += f"-{args.tag}"
    Path(args.results, stem + ".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    Path(args.results, stem + ".md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
