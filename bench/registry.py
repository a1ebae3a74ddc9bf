"""The benchmark sections by name. Each section module registers itself here when imported (bench/sections.py
imports them all); the report, the summary and the merge of per-section JSON files read the registry, so this
module imports no section."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import common

__all__ = ["Section", "SECTIONS", "register", "summarize", "report", "merge_results", "RATIO_NOTE"]

RATIO_NOTE = "ratios are fastdream throughput / peer throughput on the same inputs in the same run (> 1: faster)"


@dataclass(frozen=True)
class Section:
    """run(device, quick, **options) -> results; summary(results) -> flat key figures (None where not measured);
    rows(results) -> table rows under `header`; report_lines(results) -> extra lines for the printed report."""

    name: str
    run: Callable[..., dict]
    summary: Callable[[dict], dict]
    rows: Callable[[dict], list[list[str]]]
    header: tuple[str, ...]
    report_lines: Callable[[dict], list[str]] = lambda res: []


SECTIONS: dict[str, Section] = {}


def register(section: Section) -> Section:
    SECTIONS[section.name] = section
    return section


def summarize(results: dict) -> dict:
    """Every registered section's key figures, flat; a section absent from `results` gives its keys as None."""
    out: dict = {"note": RATIO_NOTE}
    for name, section in SECTIONS.items():
        res = results.get(name)
        out.update(section.summary(res if isinstance(res, dict) else {}))
    return out


def report(results: dict) -> str:
    """A short human-readable table of every section present."""
    env = results.get("environment", {})
    lines = [f"fastdream bench on {env.get('card')} ({env.get('device')}), torch {env.get('torch')}, "
             f"CUDA {env.get('cuda_runtime')}, commit {(env.get('commit') or '?')[:8]}"
             f"{' (dirty)' if env.get('commit_dirty') else ''}"
             f"{', QUICK: figures mean nothing' if results.get('quick') else ''}"]
    for name, section in SECTIONS.items():
        res = results.get(name)
        if not isinstance(res, dict):
            continue
        rows = section.rows(res)
        if rows:
            lines += ["", common.table(rows, list(section.header))]
        lines += section.report_lines(res)
        if res.get("status") in ("error", "unavailable"):
            lines.append(f"{name}: {res['status']}: {res.get('reason')}")
    s = results.get("summary") or summarize(results)
    lines += ["", "summary: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in s.items() if k != "note" and not isinstance(v, (dict, list)))]
    return "\n".join(lines)


def _deep_merge(into: dict, new: dict) -> None:
    """Merge `new` into `into`: nested dicts merge key by key, anything else is replaced."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def merge_results(paths: list[str], out_path: str) -> dict:
    """Merge the JSON files of several runs (one process per section or per group of step variants) into one
    results file; sections present in several files merge key by key (e.g. step variants)."""
    merged: dict = {}
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, ValueError) as exc:
            merged.setdefault("merge_errors", []).append(f"{p}: {exc}")
            continue
        for key, value in data.items():
            if key == "environment" and "environment" in merged:
                merged.setdefault("environments", []).append(value)
            elif key == "summary":
                continue
            elif isinstance(value, dict) and isinstance(merged.get(key), dict):
                _deep_merge(merged[key], value)
            else:
                merged[key] = value
    merged["summary"] = summarize(merged)
    common.write_json(out_path, merged)
    return merged
