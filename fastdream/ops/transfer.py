"""Host-to-device copies that do not make the host wait: pinned staging and a non-blocking copy on CUDA."""
from __future__ import annotations

import torch

__all__ = ["to_device"]


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`t` on `device`. A CPU tensor bound for CUDA is staged in pinned memory and copied without blocking (a
    pageable copy would be a host sync); PyTorch's pinned allocator keeps the staging buffer alive until the copy
    has run. Elsewhere a plain .to()."""
    device = torch.device(device)
    if t.device == device or device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
