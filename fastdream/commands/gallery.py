"""The batch's gallery page OUT/index.html: one self-contained static file (styles, script and data inline, no
network), one card per run with its turntable, prompt, seed, status, time, steps/s, the quality metrics its folder
holds, and links to the GLB, OBJ, config and log. Works from the file system and from `python -m http.server`."""
from __future__ import annotations

import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from fastdream.commands.batch_jobs import MARKER, RUN_LOG, read_marker, write_atomic
from fastdream.errors import UserError

log = logging.getLogger(__name__)

PAGE = "index.html"
STATIC = "gallery_static"
# media in order of preference: (path in the run folder, element, label)
MEDIA = (("video/turntable.mp4", "video", "turntable"), ("video/turntable.webm", "video", "turntable"),
         ("video/turntable.gif", "img", "turntable"), ("video/turntable.png", "img", "contact sheet"))
LINKS = (("GLB", "mesh/model.glb"), ("OBJ", "mesh/model.obj"), ("config", "config.yaml"), ("log", RUN_LOG),
         ("metrics", "metrics.jsonl"))
# metric names as eval reports spell them -> the label the page shows
METRIC_KEYS = ((re.compile(r"^(r_at_1|r@1)", re.I), "R@1"), (re.compile(r"chamfer", re.I), "Chamfer"),
               (re.compile(r"iou", re.I), "IoU"))


def _href(run_name: str, rel: str) -> str:
    return "/".join(quote(part) for part in (run_name, *rel.split("/")))


def _read_metrics_file(path: Path) -> list[dict]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def training_stats(run_dir: Path) -> dict:
    """From metrics.jsonl: last training step, mean steps/s over the logged rows, last held-out PSNR (dB)."""
    rows = _read_metrics_file(run_dir / "metrics.jsonl")
    steps = [r for r in rows if "loss" in r and isinstance(r.get("step"), int)]
    rates = [r["it_per_s"] for r in steps if isinstance(r.get("it_per_s"), (int, float))]
    psnr = [r["psnr_heldout"] for r in rows if isinstance(r.get("psnr_heldout"), (int, float))]
    return {"steps": steps[-1]["step"] if steps else None,
            "steps_per_s": sum(rates) / len(rates) if rates else None,
            "psnr": psnr[-1] if psnr else None}


def _metric_leaves(value, label: str, depth: int = 0) -> dict[str, float]:
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {label: float(value)}
    if isinstance(value, dict) and depth < 3:
        out = {}
        for k, v in value.items():
            out.update(_metric_leaves(v, f"{label} {k}" if len(value) > 1 or depth == 0 else label, depth + 1))
        return out
    return {}


def metrics_of_row(row: dict, procedural: bool = False) -> dict[str, float]:
    """The quality metrics of one run's row of an eval report: R@1, Chamfer, IoU (as labelled numbers)."""
    found: dict[str, float] = {}
    for key, value in row.items():
        for pattern, label in METRIC_KEYS:
            if pattern.search(str(key)):  # a flat number keeps its own name (its unit, e.g. chamfer_pct)
                flat = isinstance(value, (int, float)) and label != "R@1"
                found.update(_metric_leaves(value, str(key) if flat else label))
                break
    if procedural and isinstance(row.get("rank"), int):  # a procedural report ranks the true caption
        found["R@1 procedural"] = 1.0 if row["rank"] == 1 else 0.0
    return found


def _eval_reports(folder: Path) -> list[dict]:
    reports = []
    for path in sorted(folder.glob("eval*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("gallery: skipping %s: %s", path, exc)
            continue
        if isinstance(data, dict):
            reports.append(data)
            if isinstance(data.get("procedural"), dict):
                reports.append(data["procedural"])
    return reports


def quality_metrics(run_dir: Path, batch_reports: Sequence[dict]) -> dict[str, float]:
    """Metrics for a run from eval JSON files (RUN/eval*.json, OUT/eval*.json), matched by run folder name."""
    found: dict[str, float] = {}
    own = _eval_reports(run_dir)
    for report in [*own, *batch_reports]:
        rows = report.get("runs") if isinstance(report.get("runs"), list) else None
        procedural = report.get("metric") == "procedural"
        if rows is None:  # a flat per-run file: {"chamfer": ..., "iou": ...}
            if any(report is r for r in own):
                found.update(metrics_of_row(report))
            continue
        for row in rows:
            if isinstance(row, dict) and Path(str(row.get("run_dir", ""))).name == run_dir.name:
                found.update(metrics_of_row(row, procedural))
    return found


def _media(run_dir: Path, name: str) -> dict | None:
    for rel, element, label in MEDIA:
        if (run_dir / rel).is_file():
            return {"element": element, "src": _href(name, rel), "label": label}
    previews = sorted((run_dir / "previews").glob("*.png")) if (run_dir / "previews").is_dir() else []
    if previews:
        return {"element": "img", "src": _href(name, f"previews/{previews[-1].name}"), "label": "preview"}
    return None


def run_card(out: Path, row: dict, batch_reports: Sequence[dict]) -> dict:
    """Everything the page shows for one summary row (paths relative to the batch folder)."""
    name = Path(str(row["run_dir"])).name
    run_dir = out / name
    status = row.get("status", "pending")
    if status not in ("done", "skipped") and read_marker(run_dir) is not None:
        status = "done"  # finished after the summary was written
    metrics = quality_metrics(run_dir, batch_reports)
    stats = training_stats(run_dir)
    psnr = stats.pop("psnr")
    if psnr is not None:  # the oracle's held-out PSNR, logged by training
        metrics["PSNR held-out (dB)"] = psnr
    links = {label: _href(name, rel) for label, rel in LINKS if (run_dir / rel).is_file()}
    if (run_dir / "video/turntable.png").is_file():
        links["contact sheet"] = _href(name, "video/turntable.png")
    return {"name": name, "prompt": row.get("prompt", ""), "seed": row.get("seed"), "status": status,
            "seconds": row.get("seconds"), "node": row.get("node"), "media": _media(run_dir, name), "links": links,
            "metrics": metrics, **stats}


def _asset(name: str) -> str:
    return resources.files("fastdream.commands").joinpath(STATIC, name).read_text(encoding="utf-8")


def _script_json(data) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(cards: Sequence[dict], title: str) -> str:
    """The page's HTML for these cards."""
    page = _asset("page.html")
    parts = {"TITLE": title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
             "CSS": _asset("gallery.css"), "JS": _asset("gallery.js"), "DATA": _script_json(list(cards))}
    return re.sub(r"/\*@(\w+)@\*/", lambda m: parts[m.group(1)], page)


def write_gallery(out: str | Path, rows: Sequence[dict]) -> Path:
    """Write OUT/index.html for the summary rows; returns its path."""
    out = Path(out)
    reports = _eval_reports(out)
    cards = [run_card(out, r, reports) for r in rows]
    path = out / PAGE
    write_atomic(path, render_page(cards, f"fastdream batch: {out.resolve().name}"))
    return path


def rebuild_gallery(out: str | Path) -> Path:
    """Rebuild OUT/index.html of an existing batch folder from its summary.json (or its run folders)."""
    out = Path(out)
    if not out.is_dir():
        raise UserError(f"--report {out} is not a folder; give the --out folder of a batch")
    try:
        rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["runs"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        rows = None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "run_dir" in r for r in rows):
        rows = _scan_runs(out)
    if not rows:
        raise UserError(f"--report {out} holds no batch (no summary.json and no run folders with {MARKER} or "
                        f"config.yaml)")
    return write_gallery(out, rows)


def _scan_runs(out: Path) -> list[dict]:
    rows = []
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        marker = read_marker(d)
        if marker is None and not (d / "config.yaml").is_file():
            continue
        rows.append({"run_dir": str(d), "prompt": (marker or {}).get("prompt", d.name),
                     "seed": (marker or {}).get("seed"), "status": "done" if marker else "unknown",
                     "seconds": (marker or {}).get("seconds")})
    return rows
