"""The one registry of render backends by name; config validation and render_rays read it."""
from __future__ import annotations

from fastdream.render.backends import FastdreamBackend, RenderBackend, TorchBackend
from fastdream.render.nerfacc_backend import NerfaccBackend

__all__ = ["BACKENDS", "get_backend"]

BACKENDS: dict[str, RenderBackend] = {b.name: b for b in (FastdreamBackend(), TorchBackend(), NerfaccBackend())}


def get_backend(name: str) -> RenderBackend:
    """The backend registered as `name`; ValueError naming the choices otherwise."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}") from None
