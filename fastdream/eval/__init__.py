"""Judging runs: CLIP R-precision, procedural R@1 and absolute truth metrics against the exact procedural shapes.

The retrieval metric (metric.py), CLIP embedding (clip.py), protocol views (views.py) and the per-model report over
runs and seeds (report.py); procedural R@1 (procedural.py, procedural_report.py) and the absolute truth figures
(truth.py metrics, truth_target.py truths and bars, truth_report.py per run). Only the metric is imported eagerly;
the rest pull in torch models, transformers or the renderer and are imported where used."""
from __future__ import annotations

from fastdream.eval.metric import r_precision, retrieval_hits

__all__ = ["r_precision", "retrieval_hits"]
