"""Python-side argument checks shared by the ops (the kernels check again with TORCH_CHECK)."""
from __future__ import annotations

import torch


def check_tensor(name: str, t, *, shape: tuple | None = None, dtype: torch.dtype | None = None) -> None:
    """Raise ValueError naming `name` when t is not a tensor of the given shape (None = any size) and dtype."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {t.dtype}")
    if shape is not None:
        if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")


def check_same_device(**tensors: torch.Tensor) -> torch.device:
    """Raise ValueError when the tensors are not all on one device; return that device."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}; put them on one device")
    return first.device
