"""`fastdream eval --procedural`: score runs against procedural ground truth (no CLIP, no network).

Each run is rendered at the protocol views (albedo shading on white, fastdream.eval.views.render_run) and compared
with procedural renders of every shape × colour candidate at the same cameras (fastdream.eval.procedural). The
report gives, per run, the predicted shape and colour and the rank of the true prompt, and overall retrieval R@1,
shape accuracy and colour accuracy.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch

from fastdream.eval import views
from fastdream.eval.procedural import parse_prompt, procedural_scores, summarize
from fastdream.eval.views import RenderedRun, ViewProtocol

log = logging.getLogger("fastdream")

__all__ = ["evaluate_procedural", "format_procedural_table"]


def evaluate_procedural(run_dirs, protocol: ViewProtocol, device="cpu",
                        render: Callable[..., RenderedRun] | None = None, top: int = 5) -> dict:
    """Report {"metric", "protocol", "runs": [...], "skipped": [...], "summary": summarize(...)} for run_dirs.

    Runs whose prompt names no procedural shape and colour are skipped (listed under "skipped"); ValueError if no
    run is left. protocol.modes is ignored: the views are rendered with albedo ("color") shading on white.
    """
    import dataclasses

    render = render or views.render_run
    protocol = dataclasses.replace(protocol, modes=("color",))
    runs, skipped, results = [], [], []
    for run_dir in run_dirs:
        rendered = render(run_dir, protocol, device)
        try:
            shape, color = parse_prompt(rendered.prompt)
        except ValueError as exc:
            log.warning("skipping %s: %s", run_dir, exc)
            skipped.append({"run_dir": str(run_dir), "prompt": rendered.prompt, "reason": str(exc)})
            continue
        if rendered.c2w is None or rendered.fovy is None:
            raise ValueError(f"the renderer gave no cameras for {run_dir}")
        images = rendered.images["color"].permute(0, 3, 1, 2)  # [V,H,W,3] -> [V,3,H,W]
        r = procedural_scores(images, rendered.c2w, rendered.fovy, shape, color, shading="albedo", background=1.0)
        results.append(r)
        runs.append({"run_dir": str(run_dir), "prompt": rendered.prompt, "seed": rendered.seed,
                     "true_shape": shape, "true_color": color, "pred_shape": r["pred_shape"],
                     "pred_color": r["pred_color"], "rank": r["rank"],
                     "top": [{"shape": s, "color": c, "distance": d} for s, c, d in r["ranking"][:top]]})
    if not results:
        raise ValueError("no run has a prompt naming a procedural shape and colour (e.g. 'a red cube')")
    return {"metric": "procedural",
            "protocol": {"views": protocol.views, "elevation": protocol.elevation, "size": protocol.size,
                         "radius": protocol.radius, "fovy": protocol.fovy, "shading": "albedo", "background": 1.0},
            "runs": runs, "skipped": skipped, "summary": summarize(results)}


def format_procedural_table(report: dict) -> str:
    """A plain-text table: one line per run, then the summary."""
    rows = [("run", "prompt", "predicted", "rank")]
    for r in report["runs"]:
        rows.append((Path(r["run_dir"]).name, r["prompt"], f"{r['pred_color']} {r['pred_shape']}", str(r["rank"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    s = report["summary"]
    lines.append("")
    lines.append(f"procedural (n={s['n']}): R@1 {s['r_at_1']:.3f}  shape accuracy {s['shape_accuracy']:.3f}  "
                 f"colour accuracy {s['color_accuracy']:.3f}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} run(s) whose prompt names no procedural shape and colour")
    return "\n".join(lines)
