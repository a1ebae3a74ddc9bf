"""Multiresolution hash-grid encoding (tiny-cuda-nn compatible) over the compiled kernels.

Input policy (all backends but tcnn): positions are clamped to [0, 1] and NaN reads as 0, so any
input gives finite features and no kernel ever reads outside the table; the input gradient is zero
where the clamp is active. Checking for NaN would need a host sync, so it is not an error here.
"""
from __future__ import annotations

import functools

import torch

from fastdream import _backend
from fastdream.ops._checks import check_same_device, check_tensor
from fastdream.ops.reference import encoding as _ref
from fastdream.ops.reference.encoding import HashGridLevels, hash_grid_levels

__all__ = ["hash_encode", "hash_grid_levels", "HashGridLevels"]

BACKENDS = ("auto", "cuda", "cpu", "torch")


@functools.lru_cache(maxsize=64)
def _level_tensors(levels: HashGridLevels) -> tuple[torch.Tensor, torch.Tensor]:
    return levels.meta_tensor(), levels.scale_tensor()


class _HashEncodeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, levels: HashGridLevels):
        meta, scale = _level_tensors(levels)
        out = _backend.load().hash_encode_forward(x, params, meta, scale, levels.n_features)
        ctx.save_for_backward(x, params)
        ctx.levels = levels
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, params = ctx.saved_tensors
        need_x, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_params):
            return None, None, None
        meta, scale = _level_tensors(ctx.levels)
        grad_out = grad_out.to(x.dtype).contiguous()
        grad_params, grad_x = _backend.load().hash_encode_backward(
            grad_out, x, params, meta, scale, ctx.levels.n_features, need_params, need_x)
        return (grad_x if need_x else None), (grad_params.to(params.dtype) if need_params else None), None


def resolve_auto_backend(device: torch.device) -> str:
    """What "auto" runs on `device`: our kernels when the extension has them, else the PyTorch reference."""
    if device.type == "cuda":
        return "cuda" if _backend.has_cuda_kernels() else "torch"
    if device.type != "cpu":
        return "torch"
    try:
        _backend.load()
    except _backend.ExtensionUnavailable:
        return "torch"
    return "cpu"


def hash_encode(x: torch.Tensor, params: torch.Tensor, levels: HashGridLevels, *, backend: str = "auto"
                ) -> torch.Tensor:
    """Encode positions with a hash grid.

    x: [N, 3] float32 (or float64 on the CPU) in [0, 1] (clamped, NaN -> 0); params: [levels.n_params] flat
    (level, entry, feature), same dtype as x (float16 allowed on CUDA); levels: from `hash_grid_levels`.
    Returns [N, L*F] in x's dtype, level-major (column l*F + f). backend: "auto" | "cuda" | "cpu" | "torch".
    Differentiable w.r.t. x and params (once; no double backward through the kernels).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(levels, HashGridLevels):
        raise ValueError(f"levels must be a HashGridLevels (from hash_grid_levels), got {type(levels).__name__}")
    check_tensor("x", x, shape=(None, 3))
    check_tensor("params", params, shape=(levels.n_params,))
    check_same_device(x=x, params=params)
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"x must be torch.float32 or torch.float64, got {x.dtype}")
    allowed = (x.dtype, torch.float16) if x.is_cuda and x.dtype == torch.float32 else (x.dtype,)
    if params.dtype not in allowed:
        raise ValueError(f"params must be {' or '.join(map(str, allowed))} (to match x), got {params.dtype}")
    if backend == "auto":
        backend = resolve_auto_backend(x.device)
    if backend == "torch":
        return _ref.hash_encode(x, params, levels)
    if backend == "cuda" and not x.is_cuda:
        raise ValueError(f"backend='cuda' needs x on a CUDA device, got {x.device}")
    if backend == "cpu" and x.device.type != "cpu":
        raise ValueError(f"backend='cpu' needs x on the CPU, got {x.device}")
    if backend == "cuda" and x.dtype != torch.float32:
        raise ValueError(f"the CUDA kernel needs float32 x, got {x.dtype}")
    return _HashEncodeFn.apply(x.contiguous(), params.contiguous(), levels)
