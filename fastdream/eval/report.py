"""R@1 of each run's prompt among a candidate caption set, per CLIP model and shading mode, as mean ± s.e.m. over
seeds; JSON-ready dict and a printable table."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from fastdream.errors import UserError
from fastdream.eval.metric import r_precision
from fastdream.eval import views
from fastdream.eval.views import RenderedRun, ViewProtocol

log = logging.getLogger(__name__)


def normalize_prompt(p: str) -> str:
    return " ".join(str(p).split())


def mean_sem(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample std / sqrt(n)); s.e.m. is None for fewer than two values."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_sem needs at least one value")
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _render_and_embed(run_dirs, clips, protocol, device, render) -> list:
    """[(rendered run without images, {clip: {mode: image embeds}})], each run rendered once."""
    runs = []
    for run_dir in run_dirs:
        rendered = render(Path(run_dir), protocol, device)
        embeds = {c.name: {m: c.embed_images(rendered.images[m]) for m in protocol.modes} for c in clips}
        rendered.prompt = normalize_prompt(rendered.prompt)
        rendered.images = {}
        runs.append((rendered, embeds))
        log.info("rendered %s (%r, seed %s)", run_dir, rendered.prompt, rendered.seed)
    return runs


def _candidate_index(runs, candidates, candidates_source):
    """(candidates, source, {caption: index}); every run's prompt must be a candidate."""
    run_prompts = [r.prompt for r, _ in runs]
    if candidates is None:
        candidates = list(dict.fromkeys(run_prompts))
        candidates_source = "prompts of the evaluated runs"
    else:
        candidates = list(dict.fromkeys(normalize_prompt(c) for c in candidates))
    index = {c: i for i, c in enumerate(candidates)}
    missing = sorted({p for p in run_prompts if p not in index})
    if missing:
        raise UserError(f"{len(missing)} run prompt(s) are not among the {len(candidates)} candidate captions "
                        f"(first: {missing[0]!r}); add them to the prompt file or evaluate without --prompts")
    seen_pairs = defaultdict(list)
    for r, _ in runs:
        seen_pairs[(r.prompt, r.seed)].append(str(r.run_dir))
    for (p, s), dirs in seen_pairs.items():
        if len(dirs) > 1:
            log.warning("%d runs share prompt %r and seed %s: %s", len(dirs), p, s, ", ".join(dirs))
    return candidates, candidates_source, index


def _summarise(clip_name: str, mode: str, run_rows: list) -> dict:
    """R@1 of one CLIP model and mode: mean over runs per seed, then mean ± s.e.m. over seeds; per prompt too."""
    by_seed, by_prompt = defaultdict(list), defaultdict(list)
    for row in run_rows:
        by_seed[row["seed"]].append(row["r_at_1"][clip_name][mode])
        by_prompt[row["prompt"]].append(row["r_at_1"][clip_name][mode])
    per_seed = {s: sum(v) / len(v) for s, v in by_seed.items()}
    mean, sem = mean_sem(list(per_seed.values()))
    per_prompt = []
    for p, vals in by_prompt.items():
        pm, ps = mean_sem(vals)
        per_prompt.append({"prompt": p, "mean": pm, "sem": ps, "n_seeds": len(vals)})
    return {"clip": clip_name, "mode": mode, "r_at_1_mean": mean, "r_at_1_sem": sem, "n_seeds": len(per_seed),
            "n_runs": len(run_rows), "per_seed": {("none" if s is None else str(s)): v for s, v in per_seed.items()},
            "per_prompt": per_prompt}


def evaluate_runs(run_dirs: Sequence[str | Path], clips: Sequence, protocol: ViewProtocol,
                  candidates: Sequence[str] | None = None, *, candidates_source: str | None = None,
                  device: str | torch.device = "cpu",
                  render: Callable[..., RenderedRun] | None = None) -> dict:
    """Render every run once, embed with every CLIP model, and score R@1 of each run's prompt among candidates.

    clips: loaded models with .name, .embed_images(images [N,H,W,3]) and .embed_texts(list[str]) (unit rows).
    candidates: caption set; None = the distinct prompts of the evaluated runs. Every run's prompt must be in it.
    render(run_dir, protocol, device) -> RenderedRun; default fastdream.eval.views.render_run.
    """
    if not run_dirs:
        raise UserError("no run folders given")
    if not clips:
        raise UserError("no CLIP model given (--clip)")
    runs = _render_and_embed(run_dirs, clips, protocol, device, render or views.render_run)
    candidates, candidates_source, index = _candidate_index(runs, candidates, candidates_source)
    text_embeds = {c.name: c.embed_texts(candidates) for c in clips}
    run_rows = []
    for r, embeds in runs:
        scores = {c.name: {m: r_precision(embeds[c.name][m], text_embeds[c.name],
                                          torch.full((embeds[c.name][m].shape[0],), index[r.prompt],
                                                     dtype=torch.int64))
                           for m in protocol.modes} for c in clips}
        run_rows.append({"run_dir": str(r.run_dir), "prompt": r.prompt, "seed": r.seed, "r_at_1": scores})
    proto = asdict(protocol)
    proto.pop("chunk", None)
    proto["modes"] = list(protocol.modes)
    return {
        "metric": "R@1: fraction of a run's protocol views whose top-1 caption by CLIP cosine similarity is the run's "
                  "prompt; ties with a wrong caption count as misses; mean over runs per seed, then mean ± s.e.m. "
                  "over seeds",
        "protocol": proto,
        "candidates": {"source": candidates_source or "given list", "count": len(candidates)},
        "results": [_summarise(c.name, m, run_rows) for c in clips for m in protocol.modes],
        "runs": run_rows,
    }


def _pm(mean: float, sem: float | None) -> str:
    return f"{mean:.3f} ± {sem:.3f}" if sem is not None else f"{mean:.3f} ± n/a"


def format_table(report: dict) -> str:
    """The report as a plain-text table: one row per CLIP model and mode, then per-prompt rows."""
    p = report["protocol"]
    n_runs = len(report["runs"])
    lines = [f"CLIP R@1 of {n_runs} run(s) among {report['candidates']['count']} candidate caption(s) "
             f"({report['candidates']['source']}); {p['views']} views at {p['elevation']:g}° elevation, "
             f"{p['size']}px, white background"]
    w = max([len("clip")] + [len(r["clip"]) for r in report["results"]])
    lines.append(f"{'clip':<{w}}  {'mode':<11}  {'R@1 mean ± s.e.m.':<19}  seeds  runs")
    for r in report["results"]:
        lines.append(f"{r['clip']:<{w}}  {r['mode']:<11}  {_pm(r['r_at_1_mean'], r['r_at_1_sem']):<19}  "
                     f"{r['n_seeds']:>5}  {r['n_runs']:>4}")
    lines.append("")
    lines.append(f"{'clip':<{w}}  {'mode':<11}  {'R@1 mean ± s.e.m.':<19}  seeds  prompt")
    for r in report["results"]:
        for pp in r["per_prompt"]:
            lines.append(f"{r['clip']:<{w}}  {r['mode']:<11}  {_pm(pp['mean'], pp['sem']):<19}  "
                         f"{pp['n_seeds']:>5}  {pp['prompt']}")
    return "\n".join(lines)
