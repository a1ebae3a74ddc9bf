"""The optimiser side of a step: parameter groups with their own learning rates, precision (autocast, scaler)."""
from __future__ import annotations

import torch

__all__ = ["Optimizer", "resolve_precision"]

_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 autocast on CUDA, fp32 elsewhere; other values as given."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def param_groups(scene, optim_cfg) -> list[dict]:
    """Adam groups: hash-grid tables, MLP weights and the background, each with its own learning rate."""
    enc, mlp = [], []
    for name, p in scene.field.named_parameters():
        (enc if ("encoding" in name or "grid" in name or "hash" in name) else mlp).append(p)
    groups = [{"params": enc, "lr": optim_cfg.lr_encoding, "name": "encoding"},
              {"params": mlp, "lr": optim_cfg.lr_mlp, "name": "mlp"},
              {"params": list(scene.background.parameters()), "lr": optim_cfg.lr_background, "name": "background"}]
    return [g for g in groups if g["params"]]


def use_fused(optim_cfg, device: torch.device) -> bool:
    """optim.fused applies on CUDA only (fused Adam: one kernel over every parameter, no host sync)."""
    return bool(getattr(optim_cfg, "fused", False)) and device.type == "cuda"


class Optimizer:
    """Adam over the scene's parameters under the run's precision: autocast() for the forward, step(loss)
    (= backward(loss) then apply())."""

    def __init__(self, scene, optim_cfg, precision: str, device: torch.device):
        self.cfg = optim_cfg
        self.precision = resolve_precision(precision, device)
        self.device = device
        self.fused = use_fused(optim_cfg, device)
        self.adam = torch.optim.Adam(param_groups(scene, optim_cfg), betas=optim_cfg.betas, eps=optim_cfg.eps,
                                     **({"fused": True} if self.fused else {}))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")

    def autocast(self):
        dtype = _AUTOCAST[self.precision]
        if dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=dtype)

    def step(self, loss: torch.Tensor) -> None:
        """Backward of `loss`, optional gradient clipping, one Adam step."""
        self.backward(loss)
        self.apply()

    def backward(self, loss: torch.Tensor) -> None:
        """Fresh gradients of `loss` (scaled under fp16)."""
        self.adam.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def set_lr_scale(self, scale: float) -> None:
        """Every group's lr = its configured lr x scale (a Python float: no device sync)."""
        for group in self.adam.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale

    def apply(self) -> None:
        """Optional gradient clipping, then one Adam step (and the fp16 scaler's update)."""
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.adam)
            params = [p for group in self.adam.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.scaler.step(self.adam)
        self.scaler.update()

    def state_dict(self) -> dict:
        return {"optimizer": self.adam.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
