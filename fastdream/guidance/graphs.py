"""CUDA-graph replay of a fixed-shape function of tensors (the UNet's CFG forward): one capture per input
signature, then each call copies its inputs into static buffers and replays the recorded kernels."""
from __future__ import annotations

import logging
from typing import Callable

import torch

__all__ = ["GraphedCall"]

log = logging.getLogger(__name__)


class GraphedCall:
    """fn(*tensors) -> tensor, replayed from a CUDA graph (no grad). The first call for a new signature (shapes,
    dtypes, strides) warms fn up on a side stream and captures it; a capture that fails (fn synchronises, or
    allocates in a way capture forbids) logs once and falls back to calling fn eagerly from then on."""

    def __init__(self, fn: Callable[..., torch.Tensor], warmup: int = 3):
        self.fn = fn
        self.warmup = warmup
        self._graphs: dict = {}
        self.disabled_reason: str | None = None

    @staticmethod
    def _key(args) -> tuple:
        return tuple((tuple(a.shape), a.dtype, a.device, a.stride()) for a in args)

    @torch.no_grad()
    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.disabled_reason is not None:
            return self.fn(*args)
        key = self._key(args)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(args)
            except RuntimeError as exc:  # capture-unsafe fn: keep running, eagerly
                self.disabled_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                log.warning("CUDA graph capture failed, running eagerly: %s", self.disabled_reason)
                return self.fn(*args)
            self._graphs[key] = entry
        graph, static_in, static_out = entry
        for buf, a in zip(static_in, args):
            buf.copy_(a)
        graph.replay()
        return static_out.clone()  # the next replay overwrites the static output

    def _capture(self, args) -> tuple:
        static_in = [a.clone() for a in args]  # clone keeps the strides (channels_last stays channels_last)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: cuBLAS/cuDNN choices and lazy allocations happen here
            for _ in range(self.warmup):
                self.fn(*static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(*static_in)
        return graph, static_in, static_out
