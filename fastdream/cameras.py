"""Cameras: poses, rays and the random camera/light sampler used by training.

Conventions: the world is z-up; a camera at azimuth 0 sits on +x looking at the origin; azimuth grows
counter-clockwise seen from above (towards +y); elevation is degrees above the xy-plane. Camera-to-world
matrices follow OpenGL: the camera looks along its -z axis with +y up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["look_at", "pose_spherical", "get_rays", "CameraConfig", "CameraBatch", "CameraSampler"]


def _as_tensor(v, dtype=torch.float32) -> torch.Tensor:
    return v.to(dtype) if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=dtype)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """Camera-to-world [4,4] (or [B,4,4] for eye [B,3]) for a camera at `eye` looking at `target`."""
    eye = _as_tensor(eye)
    batched = eye.dim() == 2
    eye = eye.reshape(-1, 3)
    target = _as_tensor(target).to(eye.device).expand_as(eye)
    up = _as_tensor(up).to(eye.device).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up, dim=-1)
    # Looking straight along `up` (overhead views): any horizontal right-vector will do; pick +y-based.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    alt_up = torch.tensor([0.0, 1.0, 0.0], device=eye.device).expand_as(eye)
    right = torch.where(degenerate, torch.linalg.cross(forward, alt_up, dim=-1), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    cam_up = torch.linalg.cross(right, forward, dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, device=eye.device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = cam_up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = eye
    c2w[:, 3, 3] = 1.0
    return c2w if batched else c2w[0]


def spherical_to_cartesian(radius, elevation_deg, azimuth_deg) -> torch.Tensor:
    """Points [..., 3] at the given radius, elevation and azimuth (degrees)."""
    r, el, az = (_as_tensor(v) for v in (radius, elevation_deg, azimuth_deg))
    r, el, az = torch.broadcast_tensors(r, torch.deg2rad(el), torch.deg2rad(az))
    return torch.stack([r * torch.cos(el) * torch.cos(az), r * torch.cos(el) * torch.sin(az), r * torch.sin(el)], -1)


def pose_spherical(radius, elevation_deg, azimuth_deg) -> torch.Tensor:
    """Camera-to-world [4,4] (or [B,4,4] for tensor inputs [B]) looking at the origin from spherical coordinates."""
    return look_at(spherical_to_cartesian(radius, elevation_deg, azimuth_deg))


def get_rays(c2w: torch.Tensor, fovy_deg, height: int, width: int):
    """Rays through pixel centres. c2w [4,4] or [B,4,4]; fovy_deg scalar or [B].

    Returns (rays_o, rays_d), each [..., H, W, 3] (leading B when batched); rays_d is unit length.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    batched = c2w.dim() == 3
    c2w = c2w.reshape(-1, 4, 4)
    fovy = torch.deg2rad(_as_tensor(fovy_deg).to(c2w.device)).reshape(-1).expand(c2w.shape[0])
    focal = 0.5 * height / torch.tan(0.5 * fovy)  # [B], pixels
    j, i = torch.meshgrid(torch.arange(height, device=c2w.device, dtype=torch.float32) + 0.5,
                          torch.arange(width, device=c2w.device, dtype=torch.float32) + 0.5, indexing="ij")
    f = focal[:, None, None]
    dirs = torch.stack([(i - 0.5 * width) / f, -(j - 0.5 * height) / f, -torch.ones_like(i).expand_as(f * i)], -1)
    rays_d = torch.einsum("bhwk,bjk->bhwj", dirs, c2w[:, :3, :3])
    rays_d = torch.nn.functional.normalize(rays_d, dim=-1)
    rays_o = c2w[:, None, None, :3, 3].expand_as(rays_d)
    if not batched:
        return rays_o[0], rays_d[0]
    return rays_o, rays_d


@dataclass
class CameraConfig:
    """Ranges for random training cameras (defaults after threestudio's dreamfusion-sd). Degrees and world units."""

    radius_range: tuple[float, float] = (1.5, 2.0)
    elevation_range: tuple[float, float] = (-10.0, 45.0)
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    fovy_range: tuple[float, float] = (40.0, 70.0)
    light_distance_range: tuple[float, float] = (0.8, 1.5)
    light_position_perturb: float = 1.0  # std of the noise added to the camera direction before placing the light

    def validate(self) -> None:
        """Raise ValueError naming the bad field and its allowed range."""
        checks = {
            "radius_range": (0.0, math.inf),
            "elevation_range": (-90.0, 90.0),
            "azimuth_range": (-360.0, 360.0),
            "fovy_range": (1.0, 179.0),
            "light_distance_range": (0.0, math.inf),
        }
        for name, (lo, hi) in checks.items():
            a, b = getattr(self, name)
            if not (lo <= a <= b <= hi) or (name in ("radius_range", "light_distance_range") and a <= 0):
                raise ValueError(f"camera.{name} must be (min, max) with {lo} {'<' if lo == 0 else '<='} min <= max "
                                 f"<= {hi}, got ({a}, {b})")
        if self.light_position_perturb < 0:
            raise ValueError(f"camera.light_position_perturb must be >= 0, got {self.light_position_perturb}")


@dataclass
class CameraBatch:
    """A batch of B cameras: c2w [B,4,4], fovy/elevation/azimuth (degrees) and radius [B], light_position [B,3]."""

    c2w: torch.Tensor
    fovy_deg: torch.Tensor
    elevation_deg: torch.Tensor
    azimuth_deg: torch.Tensor
    radius: torch.Tensor
    light_position: torch.Tensor

    def to(self, device) -> "CameraBatch":
        return CameraBatch(*(getattr(self, k).to(device) for k in self.__dataclass_fields__))


class CameraSampler:
    """Draws random cameras and a light near each camera (DreamFusion's strategy)."""

    def __init__(self, config: CameraConfig | None = None):
        self.config = config or CameraConfig()
        self.config.validate()

    @staticmethod
    def _uniform(rng: tuple[float, float], n: int, generator: torch.Generator | None) -> torch.Tensor:
        return rng[0] + (rng[1] - rng[0]) * torch.rand(n, generator=generator)

    def sample(self, batch: int = 1, generator: torch.Generator | None = None) -> CameraBatch:
        """B random cameras on the CPU (move with .to(device))."""
        c = self.config
        radius = self._uniform(c.radius_range, batch, generator)
        elevation = self._uniform(c.elevation_range, batch, generator)
        azimuth = self._uniform(c.azimuth_range, batch, generator)
        fovy = self._uniform(c.fovy_range, batch, generator)
        eye = spherical_to_cartesian(radius, elevation, azimuth)
        light_dir = torch.nn.functional.normalize(
            eye + c.light_position_perturb * torch.randn(batch, 3, generator=generator), dim=-1)
        light = light_dir * self._uniform(c.light_distance_range, batch, generator)[:, None]
        return CameraBatch(look_at(eye), fovy, elevation, azimuth, radius, light)
