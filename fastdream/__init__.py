"""fastdream: fast text-to-3D with Score Distillation Sampling."""
from __future__ import annotations

__version__ = "0.1.0"

# Public classes are imported lazily so that `import fastdream` stays cheap and never builds anything.
_LAZY = {
    "OccupancyGrid": "fastdream.scene.occupancy",
    "HashGridEncoding": "fastdream.scene.encoding",
    "Field": "fastdream.scene.field",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastdream' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
