"""Training data for the embedded shapes prior: procedural renders of one coloured primitive with a view-aware caption.

Geometry is rendered once into a bank (coverage alpha and lambertian shade per pixel, 2x2 supersampled) by the exact
sphere tracer of `fastdream.procedural`, from cameras and lights of the training distribution
(`fastdream.cameras.CameraSampler`). Colours and backgrounds are composited on the fly, so one geometry render serves
every colour: image = alpha * colour * shade + (1 - alpha) * background. Everything is deterministic by seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastdream.cameras import CameraConfig, CameraSampler, get_rays
from fastdream.guidance.view_prompts import FRONT_AZIMUTH_RANGE, OVERHEAD_ELEVATION, VIEWS, view_indices
from fastdream.procedural import COLORS, PRIMITIVES, Scene, Shape, render

__all__ = ["VIEWS", "view_word", "caption", "GeometryBank", "render_geometry", "build_bank", "compose", "sample_batch",
           "SIZE_RANGE", "AMBIENT_RATIO", "random_appearance", "TRACE_SIZE"]

SHAPE_NAMES = tuple(PRIMITIVES)
COLOR_NAMES = tuple(COLORS)
SIZE_RANGE = (0.4, 0.6)  # world half-extent of the primitive (Shape.size)
AMBIENT_RATIO = 0.1  # the trainer's lambertian ambient
TRACE_SIZE = 0.5  # geometry is traced at this size; other sizes scale the camera instead (shading is scale-invariant)


def view_word(elevation_deg, azimuth_deg, *, overhead_threshold: float = OVERHEAD_ELEVATION,
              front_range: float = FRONT_AZIMUTH_RANGE) -> list[str]:
    """View word per camera, by the very rule the trainer prompts with (fastdream.guidance.view_prompts)."""
    el = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1)
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1)
    return [VIEWS[i] for i in view_indices(el, az, overhead_threshold, front_range).tolist()]


def caption(shape: str, color: str, view: str | None = None) -> str:
    """'a red cube' or 'a red cube, side view' (the trainer appends ', <view> view' to the user's prompt)."""
    text = f"a {color} {shape}"
    return f"{text}, {view} view" if view else text


@dataclass
class GeometryBank:
    """Per-render coverage alpha [N,1,R,R] and premultiplied lambertian shade [N,1,R,R] (float16), with labels."""

    alpha: torch.Tensor
    shade: torch.Tensor
    shape_idx: torch.Tensor  # [N] int64 into SHAPE_NAMES
    view_idx: torch.Tensor  # [N] int64 into VIEWS
    resolution: int
    elevation_deg: torch.Tensor | None = None  # [N] float32 camera elevations (build_bank fills it)

    def __len__(self) -> int:
        return self.alpha.shape[0]

    def to(self, device) -> "GeometryBank":
        """The same bank with every tensor on `device`."""
        el = None if self.elevation_deg is None else self.elevation_deg.to(device)
        return GeometryBank(self.alpha.to(device), self.shade.to(device), self.shape_idx.to(device),
                            self.view_idx.to(device), self.resolution, el)


@torch.no_grad()
def render_geometry(kind: str, c2w: torch.Tensor, fovy_deg: torch.Tensor, light_position: torch.Tensor,
                    size: torch.Tensor, resolution: int, supersample: int = 2, device="cpu",
                    scene: Scene | None = None):
    """Render one primitive from B cameras. Returns (alpha [B,1,R,R], premultiplied shade [B,1,R,R]) float32 CPU.

    c2w [B,4,4], fovy_deg [B], light_position [B,3], size [B] (the Shape.size of each render). scene: trace this
    scene (modelled at TRACE_SIZE, scaled to `size` like the primitive) instead of the primitive `kind`.
    """
    b = c2w.shape[0]
    hi = resolution * supersample
    rays_o, rays_d = get_rays(c2w.to(device), fovy_deg.to(device), hi, hi)  # [B,hi,hi,3]
    scale = (TRACE_SIZE / size.to(device))[:, None, None, None]
    rays_o = rays_o * scale  # a primitive of size s seen from x == one of size 0.5 seen from x*0.5/s
    light = (light_position.to(device) * scale[:, :, 0, 0])[:, None, None, :].expand_as(rays_o)
    scene = scene if scene is not None else Scene([Shape(kind, "white", size=TRACE_SIZE)])
    rgb, hit = _render_with_lights(scene, rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), light.reshape(-1, 3))
    shade = (rgb[:, 0] * hit).reshape(b, 1, resolution, supersample, resolution, supersample).mean((3, 5))
    alpha = hit.float().reshape(b, 1, resolution, supersample, resolution, supersample).mean((3, 5))
    return alpha.cpu(), shade.cpu()


def _render_with_lights(scene, rays_o, rays_d, lights):
    """procedural.render with a light per ray: albedo trace, then lambertian shade from the exact SDF normals."""
    # render() takes one light_position broadcast against the hit points, so a [R,3] light per ray works as-is.
    return render(scene, rays_o, rays_d, light_position=lights, shading="textureless", background=0.0,
                  ambient_ratio=AMBIENT_RATIO)


def build_bank(per_shape: int, resolution: int = 32, seed: int = 0, device="cpu", chunk: int = 256,
               camera: CameraConfig | None = None, progress: bool = False,
               overhead_elevation: float = OVERHEAD_ELEVATION) -> GeometryBank:
    """Render `per_shape` random views of every primitive (training camera + light distribution, random size);
    views above `overhead_elevation` degrees are captioned "overhead" (the trainer's guidance.overhead_elevation)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = CameraSampler(camera or CameraConfig())
    alphas, shades, shapes, views, elevations = [], [], [], [], []
    jobs = [(k, start) for k in range(len(SHAPE_NAMES)) for start in range(0, per_shape, chunk)]
    it = jobs
    if progress:
        from tqdm import tqdm
        it = tqdm(jobs, desc="render data", unit="chunk")
    for k, start in it:
        n = min(chunk, per_shape - start)
        cams = sampler.sample(n, gen)
        size = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * torch.rand(n, generator=gen)
        a, s = render_geometry(SHAPE_NAMES[k], cams.c2w, cams.fovy_deg, cams.light_position, size, resolution,
                               device=device)
        alphas.append(a.half())
        shades.append(s.half())
        shapes.append(torch.full((n,), k, dtype=torch.long))
        views.append(view_indices(cams.elevation_deg.float().cpu(), cams.azimuth_deg.float().cpu(), overhead_elevation))
        elevations.append(cams.elevation_deg.float().cpu())
    return GeometryBank(torch.cat(alphas), torch.cat(shades), torch.cat(shapes), torch.cat(views), resolution,
                        torch.cat(elevations))


def compose(alpha: torch.Tensor, shade: torch.Tensor, color_rgb: torch.Tensor, background: torch.Tensor,
            lambertian: torch.Tensor) -> torch.Tensor:
    """Images [B,3,R,R] in [0,1]: alpha/shade [B,1,R,R], color_rgb/background [B,3], lambertian [B] bool
    (False = flat albedo shading)."""
    alpha, shade = alpha.float(), shade.float()
    lit = torch.where(lambertian[:, None, None, None], shade, alpha)
    return lit * color_rgb[:, :, None, None] + (1 - alpha) * background[:, :, None, None]


def random_appearance(batch: int, generator: torch.Generator, white_bg_prob: float = 0.5,
                      lambertian_prob: float = 0.75):
    """(color_idx [B], rgb [B,3], background [B,3], lambertian [B] bool) for `batch` training images: backgrounds
    are white or a random solid colour kept away from the object's colour."""
    color_idx = torch.randint(len(COLOR_NAMES), (batch,), generator=generator)
    palette = torch.tensor([COLORS[c] for c in COLOR_NAMES])
    rgb = palette[color_idx]
    bg = torch.rand(batch, 3, generator=generator)
    # push a random background away from the object colour so the silhouette stays visible
    close = (bg - rgb).norm(dim=-1) < 0.35
    bg = torch.where(close[:, None], 1.0 - rgb, bg)
    white = (torch.rand(batch, generator=generator) < white_bg_prob) & ((1.0 - rgb).norm(dim=-1) > 0.35)
    bg = torch.where(white[:, None], torch.ones_like(bg), bg)
    lambertian = torch.rand(batch, generator=generator) < lambertian_prob
    return color_idx, rgb, bg, lambertian


def sample_batch(bank: GeometryBank, batch: int, generator: torch.Generator, *, white_bg_prob: float = 0.5,
                 lambertian_prob: float = 0.75, no_view_prob: float = 0.2):
    """A random training batch: (images [B,3,R,R] in [0,1], captions list[str], shape_idx [B], color_idx [B]).

    Backgrounds are white or a random solid colour kept away from the object's colour; captions name the view except
    with probability no_view_prob.
    """
    dev = bank.alpha.device
    idx = torch.randint(len(bank), (batch,), generator=generator)
    color_idx, rgb, bg, lambertian = random_appearance(batch, generator, white_bg_prob, lambertian_prob)
    gi = idx.to(dev)
    images = compose(bank.alpha[gi], bank.shade[gi], rgb.to(dev), bg.to(dev), lambertian.to(dev))
    with_view = torch.rand(batch, generator=generator) >= no_view_prob
    shape_idx = bank.shape_idx[idx.to(bank.shape_idx.device)].cpu()
    view_idx = bank.view_idx[idx.to(bank.view_idx.device)].tolist()
    caps = [caption(SHAPE_NAMES[s], COLOR_NAMES[c], VIEWS[v] if w else None)
            for s, c, v, w in zip(shape_idx.tolist(), color_idx.tolist(), view_idx, with_view.tolist())]
    return images.clamp(0, 1), caps, shape_idx, color_idx
