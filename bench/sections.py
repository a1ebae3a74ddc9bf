"""Every benchmark section, imported so that each registers itself in bench.registry: kernels, step, e2e."""
from __future__ import annotations

from bench import kernels, step, e2e  # noqa: I001 - registration order is the report's order
from bench.registry import SECTIONS, merge_results, report, summarize

__all__ = ["SECTIONS", "NAMES", "merge_results", "report", "summarize"]

NAMES = tuple(m.SECTION.name for m in (kernels, step, e2e))
