"""`fastdream eval --procedural`: score runs against procedural ground truth (no CLIP, no network).

Each run is rendered at the protocol views (albedo shading on white, fastdream.eval.views.render_run) and compared
with procedural renders of every shape × colour candidate at the same cameras (fastdream.eval.procedural). The
report gives, per run, the predicted shape and colour and the rank of the true prompt, and overall retrieval R@1,
shape accuracy and colour accuracy. R@1 only ranks candidates against each other (a red box filling the field box
wins "a red cube"), so runs with an exact truth also get absolute figures (fastdream.eval.truth_report) and count
as correct only when those pass their bars too.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch

from fastdream.eval import views
from fastdream.eval.procedural import parse_prompt, procedural_scores, summarize
from fastdream.eval.truth_report import score_run_truth
from fastdream.eval.views import RenderedRun, ViewProtocol

log = logging.getLogger("fastdream")

__all__ = ["evaluate_procedural", "format_procedural_table"]


def _score_prompt(rendered: RenderedRun, top: int) -> tuple[dict | None, dict | None]:
    """(procedural_scores result, row fields) of a run whose prompt names a shape and colour, else (None, None)."""
    try:
        shape, color = parse_prompt(rendered.prompt)
    except ValueError:
        return None, None
    if rendered.c2w is None or rendered.fovy is None:
        raise ValueError(f"the renderer gave no cameras for {rendered.run_dir}")
    images = rendered.images["color"].permute(0, 3, 1, 2)  # [V,H,W,3] -> [V,3,H,W]
    r = procedural_scores(images, rendered.c2w, rendered.fovy, shape, color, shading="albedo", background=1.0)
    return r, {"true_shape": shape, "true_color": color, "pred_shape": r["pred_shape"], "pred_color": r["pred_color"],
               "rank": r["rank"], "top": [{"shape": s, "color": c, "distance": d} for s, c, d in r["ranking"][:top]]}


def _correct(row: dict) -> bool | None:
    """R@1 hit (where the prompt allows R@1) and every truth bar passed; None without a truth."""
    truth = row.get("truth") or {}
    if truth.get("truth") is None:
        return None
    return bool(truth["passed"]) and row.get("rank") in (None, 1)


def evaluate_procedural(run_dirs, protocol: ViewProtocol, device="cpu",
                        render: Callable[..., RenderedRun] | None = None, top: int = 5,
                        score_truth: Callable[..., dict] | None = None) -> dict:
    """Report {"metric", "protocol", "runs": [...], "skipped": [...], "summary", "truth_summary"} for run_dirs.

    A run is scored when its prompt names a procedural shape and colour (R@1 against every candidate) and/or it has
    an exact truth (oracle target or builtin:shapes(-sd); fastdream.eval.truth_report): then each row carries "truth"
    (the absolute figures and bars) and "correct" (R@1 hit where it applies, and every bar passed). Other runs are
    skipped; ValueError if none is left. protocol.modes is ignored: views use albedo ("color") shading on white.
    """
    import dataclasses

    render = render or views.render_run
    score_truth = score_truth or score_run_truth
    protocol = dataclasses.replace(protocol, modes=("color",))
    runs, skipped, results = [], [], []
    for run_dir in run_dirs:
        rendered = render(run_dir, protocol, device)
        r, fields = _score_prompt(rendered, top)
        truth = score_truth(run_dir, rendered, device)
        if r is None and truth.get("truth") is None:
            reason = f"prompt {rendered.prompt!r} names no procedural shape and colour; {truth.get('reason')}"
            log.warning("skipping %s: %s", run_dir, reason)
            skipped.append({"run_dir": str(run_dir), "prompt": rendered.prompt, "reason": reason})
            continue
        if r is not None:
            results.append(r)
        row = {"run_dir": str(run_dir), "prompt": rendered.prompt, "seed": rendered.seed, "rank": None,
               **(fields or {}), "truth": truth}
        row["correct"] = _correct(row)
        runs.append(row)
    if not runs:
        raise ValueError("no run has a prompt naming a procedural shape and colour (e.g. 'a red cube') or an exact "
                         "truth (--guidance target:NAME or --model builtin:shapes(-sd))")
    judged = [row["correct"] for row in runs if row["correct"] is not None]
    return {"metric": "procedural",
            "protocol": {"views": protocol.views, "elevation": protocol.elevation, "size": protocol.size,
                         "radius": protocol.radius, "fovy": protocol.fovy, "shading": "albedo", "background": 1.0},
            "runs": runs, "skipped": skipped, "summary": summarize(results) if results else None,
            "truth_summary": {"n": len(judged), "passed": sum(bool(row["truth"].get("passed")) for row in runs),
                              "correct": sum(judged), "correct_fraction": sum(judged) / len(judged) if judged
                              else None}}


def _truth_cells(t: dict) -> tuple[str, ...]:
    """Table cells: chamfer % (mesh->truth/truth->mesh), volume IoU, silhouette IoU, off-surface %, watertight,
    components, fitted size."""
    if t.get("truth") is None or "validity" not in t:
        return ("n/a",) * 7
    sil = "n/a" if t["silhouette_iou"] is None else f"{t['silhouette_iou']:.3f}"
    size = f"{t['fit']['fitted_size']:.2f}" if t.get("fit") else "exact"
    return (f"{t['chamfer_mesh_to_truth_pct']:.2f}/{t['chamfer_truth_to_mesh_pct']:.2f}", f"{t['volume_iou']:.3f}",
            sil, f"{100 * t['off_surface']:.1f}", "yes" if t["validity"]["watertight"] else "no",
            str(t["validity"]["components"]), size)


def format_procedural_table(report: dict) -> str:
    """A plain-text table: one line per run, the failing truth figures, then the summary."""
    rows = [("run", "prompt", "predicted", "rank", "chamfer%", "volIoU", "silIoU", "off%", "closed", "parts", "size",
             "verdict")]
    notes = []
    for r in report["runs"]:
        pred = f"{r['pred_color']} {r['pred_shape']}" if r.get("rank") is not None else "-"
        verdict = {None: "n/a", True: "correct", False: "WRONG"}[r["correct"]]
        rows.append((Path(r["run_dir"]).name, r["prompt"], pred, str(r.get("rank") or "-"),
                     *_truth_cells(r["truth"]), verdict))
        t = r["truth"]
        if t.get("truth") is None:
            notes.append(f"  {Path(r['run_dir']).name}: no truth ({t.get('reason')})")
        elif t["failures"]:
            notes.append(f"  {Path(r['run_dir']).name} vs {t['truth']}: " + "; ".join(t["failures"]))
        if r.get("rank") not in (None, 1):
            notes.append(f"  {Path(r['run_dir']).name}: R@1 miss (true prompt ranked {r['rank']})")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if notes:
        lines += ["", "failing figures:", *notes]
    lines.append("")
    s = report["summary"]
    if s is not None:
        lines.append(f"procedural (n={s['n']}): R@1 {s['r_at_1']:.3f}  shape accuracy {s['shape_accuracy']:.3f}  "
                     f"colour accuracy {s['color_accuracy']:.3f}")
    ts = report["truth_summary"]
    if ts["n"]:
        lines.append(f"truth (n={ts['n']}): bars passed {ts['passed']}/{ts['n']}  correct (R@1 hit and bars pass) "
                     f"{ts['correct']}/{ts['n']}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} run(s) whose prompt names no procedural shape and colour "
                     f"and that have no exact truth")
    return "\n".join(lines)
