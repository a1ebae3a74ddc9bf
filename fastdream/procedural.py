"""Analytic coloured shapes with exact signed distance functions, and an exact sphere-tracing renderer.

Shared by the oracle guidance (a known target scene), the embedded shapes prior (its training data) and the
procedural evaluation. Shapes stand upright along the world z-axis; sizes are world units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from fastdream.ops.rendering import SHADING_MODES

__all__ = ["PRIMITIVES", "COLORS", "Shape", "Scene", "render", "sdf_primitive", "rotate_z"]

# Named colours (linear RGB in [0,1]); distinct enough for a colour classifier on rendered pixels.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.20, 0.85),
    "yellow": (0.92, 0.85, 0.10),
    "orange": (0.95, 0.50, 0.05),
    "purple": (0.55, 0.15, 0.75),
    "white": (0.92, 0.92, 0.92),
    "black": (0.08, 0.08, 0.08),
}

PRIMITIVES = ("sphere", "cube", "cylinder", "cone", "torus", "capsule")


def _sd_sphere(p: torch.Tensor, s: float) -> torch.Tensor:
    return p.norm(dim=-1) - s


def _sd_cube(p: torch.Tensor, s: float) -> torch.Tensor:
    q = p.abs() - s
    return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)


def _sd_cylinder(p: torch.Tensor, s: float) -> torch.Tensor:
    d = torch.stack([p[..., :2].norm(dim=-1) - s, p[..., 2].abs() - s], -1)
    return d.amax(-1).clamp_max(0) + d.clamp_min(0).norm(dim=-1)


def _sd_cone(p: torch.Tensor, s: float) -> torch.Tensor:
    """Exact capped cone: base radius s at z=-s, apex at z=+s."""
    h, r1 = s, s
    qx, qy = p[..., :2].norm(dim=-1), p[..., 2]
    # distance to the base disc's rim region and to the slanted side (2D, in the (radius, z) half-plane)
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0, torch.full_like(qx, r1), torch.zeros_like(qx)))
    ca_y = qy.abs() - h
    k1x, k1y = 0.0, h
    k2x, k2y = -r1, 2.0 * h
    t = (((k1x - qx) * k2x + (k1y - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
    cb_x = qx - k1x + k2x * t
    cb_y = qy - k1y + k2y * t
    sign = torch.where((cb_x < 0) & (ca_y < 0), -1.0, 1.0)
    return sign * torch.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y).sqrt()


def _sd_torus(p: torch.Tensor, s: float) -> torch.Tensor:
    major, minor = 0.7 * s, 0.3 * s
    q = torch.stack([p[..., :2].norm(dim=-1) - major, p[..., 2]], -1)
    return q.norm(dim=-1) - minor


def _sd_capsule(p: torch.Tensor, s: float) -> torch.Tensor:
    half, radius = 0.55 * s, 0.45 * s
    z = p[..., 2] - p[..., 2].clamp(-half, half)
    return torch.stack([p[..., 0], p[..., 1], z], -1).norm(dim=-1) - radius


_SDF = {"sphere": _sd_sphere, "cube": _sd_cube, "cylinder": _sd_cylinder, "cone": _sd_cone, "torus": _sd_torus,
        "capsule": _sd_capsule}


def sdf_primitive(kind: str, p: torch.Tensor, size: float) -> torch.Tensor:
    """Signed distance [N] of points p [N,3] to a primitive of the given size centred at the origin."""
    if kind not in _SDF:
        raise ValueError(f"unknown primitive {kind!r}; choose one of {', '.join(PRIMITIVES)}")
    return _SDF[kind](p, size)


@dataclass
class Shape:
    """One primitive: kind, colour (name or rgb), centre and size (the half-extent scale, world units)."""

    kind: str
    color: str | tuple[float, float, float] = "white"
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    size: float = 0.5

    def __post_init__(self):
        if self.kind not in _SDF:
            raise ValueError(f"unknown primitive {self.kind!r}; choose one of {', '.join(PRIMITIVES)}")
        if isinstance(self.color, str) and self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; choose one of {', '.join(COLORS)}")
        if not self.size > 0:
            raise ValueError(f"size must be > 0, got {self.size}")

    @property
    def rgb(self) -> tuple[float, float, float]:
        return COLORS[self.color] if isinstance(self.color, str) else tuple(self.color)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        return sdf_primitive(self.kind, x - torch.as_tensor(self.center, dtype=x.dtype, device=x.device), self.size)


@dataclass
class Scene:
    """A union of shapes; the albedo at a point is the colour of the nearest shape."""

    shapes: list[Shape] = field(default_factory=list)

    def __post_init__(self):
        if not self.shapes:
            raise ValueError("a Scene needs at least one shape")

    def _all_sdf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([s.sdf(x) for s in self.shapes], -1)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance [N] for points x [N,3]."""
        return self._all_sdf(x).amin(-1)

    def albedo(self, x: torch.Tensor) -> torch.Tensor:
        """Colour [N,3] of the nearest shape at points x [N,3]."""
        colors = torch.tensor([s.rgb for s in self.shapes], dtype=x.dtype, device=x.device)
        return colors[self._all_sdf(x).argmin(-1)]

    def normals(self, x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        """Unit outward normals [N,3] by central differences of the exact SDF."""
        offsets = torch.eye(3, dtype=x.dtype, device=x.device) * eps
        grad = torch.stack([self.sdf(x + offsets[i]) - self.sdf(x - offsets[i]) for i in range(3)], -1)
        return torch.nn.functional.normalize(grad, dim=-1)


@torch.no_grad()
def render(scene: Scene, rays_o: torch.Tensor, rays_d: torch.Tensor, light_position=None, shading: str = "albedo",
           background=1.0, ambient_ratio: float = 0.1, max_steps: int = 96, far: float = 10.0):
    """Sphere-trace rays_o/rays_d [R,3] (rays_d unit). Returns (rgb [R,3], mask [R] bool); misses get background.

    shading: "albedo", "lambertian" (albedo·(ambient + (1-ambient)·max(0, n·l)), l towards light_position) or
    "textureless" (lambertian with white albedo).
    """
    if shading not in SHADING_MODES:
        raise ValueError(f"shading must be albedo, lambertian or textureless, got {shading!r}")
    t = torch.zeros(rays_o.shape[0], dtype=rays_o.dtype, device=rays_o.device)
    hit = torch.zeros_like(t, dtype=torch.bool)
    for _ in range(max_steps):
        d = scene.sdf(rays_o + t[:, None] * rays_d)
        hit |= d.abs() < 1e-4
        t = torch.where(hit | (t > far), t, t + d.clamp_min(0.0) * 0.95 + 1e-5 * (d > 0))
    pts = rays_o + t[:, None] * rays_d
    hit &= scene.sdf(pts).abs() < 1e-3
    rgb = scene.albedo(pts)
    if shading != "albedo":
        if light_position is None:
            raise ValueError(f"shading={shading!r} needs light_position")
        if shading == "textureless":
            rgb = torch.ones_like(rgb)
        n = scene.normals(pts)
        light = torch.nn.functional.normalize(torch.as_tensor(light_position, dtype=pts.dtype, device=pts.device) - pts,
                                              dim=-1)
        rgb = rgb * (ambient_ratio + (1 - ambient_ratio) * (n * light).sum(-1, keepdim=True).clamp_min(0.0))
    bg = torch.as_tensor(background, dtype=rgb.dtype, device=rgb.device).expand_as(rgb)
    return torch.where(hit[:, None], rgb, bg), hit


def rotate_z(x: torch.Tensor, deg: float) -> torch.Tensor:
    """Points or vectors x [...,3] turned by deg about z (the up axis)."""
    if deg == 0.0:
        return x
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    # elementwise, not a [3,3] matmul: small float64 matmuls cost ~20 ms each on a busy machine (measured)
    return torch.stack([c * x[..., 0] - s * x[..., 1], s * x[..., 0] + c * x[..., 1], x[..., 2]], -1)
