"""Weight averaging of the field over the end of a run (stochastic weight averaging).

Under single-draw SDS noise the surface random-walks around the shape the prior asks for: the last iterate is one
sample of that walk. The running mean of the field's parameters over the last part of the run is the walk's centre,
and the run ends on it (the final checkpoint, previews, evaluation and export all see the mean).
"""
from __future__ import annotations

import torch

__all__ = ["WeightAverage", "rebuild_occupancy"]


class WeightAverage:
    """The uniform running mean of `module`'s parameters over every step from `start_step` on."""

    def __init__(self, module: torch.nn.Module, start_step: int):
        self.module = module
        self.start_step = int(start_step)
        self.count = 0
        self.mean: list[torch.Tensor] | None = None

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Fold the parameters into the mean once `step` (the number of steps taken) is past start_step."""
        if step <= self.start_step:
            return
        params = [p.detach() for p in self.module.parameters()]
        if self.mean is None:
            self.mean, self.count = [p.clone() for p in params], 1
            return
        self.count += 1
        for m, p in zip(self.mean, params):
            m.lerp_(p, 1.0 / self.count)

    @torch.no_grad()
    def apply(self) -> bool:
        """Copy the mean into the module; False (module untouched) when no step has been averaged yet."""
        if self.mean is None:
            return False
        for p, m in zip(self.module.parameters(), self.mean):
            p.copy_(m)
        return True

    def state_dict(self) -> dict:
        return {"start_step": self.start_step, "count": self.count,
                "mean": None if self.mean is None else [m.clone() for m in self.mean]}

    def load_state_dict(self, state: dict) -> None:
        mean = state["mean"]
        if mean is not None:
            params = list(self.module.parameters())
            if len(mean) != len(params) or any(m.shape != p.shape for m, p in zip(mean, params)):
                raise ValueError("the saved weight average does not match the field's parameters")
            mean = [m.to(p.device, p.dtype) for m, p in zip(mean, params)]
        self.start_step, self.count, self.mean = int(state["start_step"]), int(state["count"]), mean


@torch.no_grad()
def rebuild_occupancy(grid, density_fn, passes: int = 4, **update_kwargs) -> None:
    """Forget the grid's occupancy and re-derive it from `density_fn` alone (the max over `passes` jittered
    evaluations of every cell): after the field's weights are replaced, the old occupancy describes another field."""
    grid.occs.zero_()
    for _ in range(passes):
        grid.update(0, density_fn, ema_decay=1.0, warmup_steps=1, n=1, **update_kwargs)
