"""Scene: the field, occupancy grid and background being optimised, built from a config, saved and loaded as one,
and rendered through render_camera, the one way any code renders a view of it."""
from __future__ import annotations

import torch

from fastdream.cameras import get_rays
from fastdream.errors import UserError
from fastdream.render.rays import render_image, render_rays
from fastdream.scene.background import Background
from fastdream.scene.field import Field
from fastdream.scene.occupancy import OccupancyGrid

__all__ = ["Scene"]

PARTS = ("field", "grid", "background")


class Scene:
    """field (density, albedo), grid (occupancy, for skipping empty space) and background, plus how they render:
    `render_step_size` (world units per sample) and the render `backend` (fastdream.render.registry)."""

    def __init__(self, field: torch.nn.Module, grid: torch.nn.Module, background: torch.nn.Module, *,
                 render_step_size: float = 0.01, backend: str = "fastdream"):
        self.field, self.grid, self.background = field, grid, background
        self.render_step_size = float(render_step_size)
        self.backend = backend

    @classmethod
    def from_config(cls, config, device: torch.device | str = "cpu") -> "Scene":
        """The scene a Config describes (field.aabb_radius, field.options, render.*, background.*), on `device`."""
        r = float(config.field.aabb_radius)
        aabb = torch.tensor([-r, -r, -r, r, r, r], dtype=torch.float32)
        options = config.field.options
        options = options.to_kwargs() if hasattr(options, "to_kwargs") else dict(options)
        try:
            field = Field(aabb=aabb, **options)
        except TypeError as exc:
            raise UserError(f"config: field.options: {exc}") from None
        except ValueError as exc:
            raise UserError(f"config: field.options: {exc}") from None
        grid = OccupancyGrid(aabb, resolution=config.render.grid_resolution)
        background = Background(config.background.kind, config.background.hidden)
        return cls(field.to(device), grid.to(device), background.to(device),
                   render_step_size=config.render.render_step_size, backend=config.render.backend)

    # ---- state -------------------------------------------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self, name) for name in PARTS}

    def state_dict(self) -> dict:
        """{"field": ..., "grid": ..., "background": ...}: the checkpoint's scene entries."""
        return {name: m.state_dict() for name, m in self.modules().items()}

    def load_state_dict(self, state: dict) -> None:
        """Load the entries of state_dict(); a missing background (older checkpoints) keeps the fresh one."""
        for name, module in self.modules().items():
            if name == "background" and state.get(name) is None:
                continue
            module.load_state_dict(state[name])

    def train(self, mode: bool = True) -> "Scene":
        for m in self.modules().values():
            m.train(mode)
        return self

    def eval(self) -> "Scene":
        return self.train(False)

    @property
    def device(self) -> torch.device:
        return self.field.aabb.device

    # ---- rendering ---------------------------------------------------------------------------------------------
    def render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, **kw) -> dict:
        """fastdream.render.render_rays with this scene's field, grid, step size and backend."""
        kw.setdefault("render_step_size", self.render_step_size)
        kw.setdefault("backend", self.backend)
        return render_rays(self.field, self.grid, rays_o, rays_d, **kw)

    @torch.no_grad()
    def render_camera(self, c2w: torch.Tensor, fovy_deg: float, height: int, width: int, *, shading: str = "albedo",
                      light_position=None, ambient_ratio: float = 0.1, background=None, backend: str | None = None,
                      chunk: int = 1 << 16) -> dict:
        """Render one camera (c2w [4,4], OpenGL convention) with exact sampling, in eval mode, without gradients:
        {"color" [H,W,3] in [0,1], "opacity" [H,W], "depth" [H,W]}, float32 on the scene's device.

        background: [3], [H*W,3], a Background module (called on the rays) or None for white. The light defaults
        to the camera position (a head light)."""
        was_training = self.field.training
        self.eval()
        try:
            c2w = torch.as_tensor(c2w, dtype=torch.float32).to(self.device)
            bg = self._background_for(background, c2w, fovy_deg, height, width)
            light = c2w[:3, 3] if light_position is None else light_position
            out = render_image(self.field, self.grid, c2w, float(fovy_deg), height, width, chunk=chunk,
                               shading=shading, light_position=light, ambient_ratio=ambient_ratio, background=bg,
                               render_step_size=self.render_step_size, backend=backend or self.backend)
        finally:
            self.train(was_training)
        out["color"] = out["color"].float().clamp(0.0, 1.0)
        return {k: v.float() for k, v in out.items()}

    def _background_for(self, background, c2w, fovy_deg, height, width):
        if background is None:
            return torch.ones(3, device=self.device)
        if isinstance(background, torch.nn.Module):
            _, rays_d = get_rays(c2w, float(fovy_deg), height, width)
            return background(rays_d.reshape(-1, 3)).float().reshape(-1, 3)
        return torch.as_tensor(background, dtype=torch.float32, device=self.device)
