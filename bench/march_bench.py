"""March + composite forward + backward, fastdream vs nerfacc vs the pure-PyTorch marcher (the `kernels` section).

A fixed synthetic scene (a Gaussian density blob in the aabb [-1,1]^3, a smooth colour field with a few learnable
parameters), rays from random cameras on a sphere looking at the origin, one occupancy grid filled once from the
blob through the public OccupancyGrid.update(), and one step size. Every backend gets the same rays, the same boolean
grid and the same step size; the per-sample field evaluation (identical PyTorch code) is part of every backend's
time, as it is in training:
  - fastdream: OccupancyGrid.march_rays (exact mode, and fixed-capacity mode when available) + fastdream.ops.composite;
  - nerfacc 0.5.3 (when importable, CUDA only): OccGridEstimator fed the SAME binary grid, its sampling, then
    render_weight_from_density + accumulate_along_rays;
  - torch: the pure-PyTorch marcher fastdream.ops.reference.march_rays (bench.march_bench.torch_march, the same
    idea, while that is missing: uniform steps from the aabb entry, occupancy lookup, boolean mask) + the PyTorch
    reference compositing fastdream.ops.reference.composite.
Each iteration: march, field, composite, loss = sum of colours + opacities + depths, backward to the field params.
"""
from __future__ import annotations

import inspect
import logging
import math
from typing import Any, Callable

import torch

from bench import common

log = logging.getLogger("fastdream.bench")

AABB = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
BLOB_SIGMA = 50.0
BLOB_STD = 0.2
RATIO_KEYS = ("vs_nerfacc", "vs_torch", "fixed_vs_nerfacc", "fixed_vs_torch")


def sizes(quick: bool) -> dict:
    if quick:
        return dict(n_cams=2, res=24, grid_res=32, step=2 * math.sqrt(3) / 96, warmup=1, repeats=3, torch_repeats=2)
    return dict(n_cams=4, res=128, grid_res=128, step=2 * math.sqrt(3) / 512, warmup=5, repeats=20, torch_repeats=5)


# ------------------------------------------------------------------------------------------------ the scene
class BlobField(torch.nn.Module):
    """sigma = s·50·exp(−|x|²/(2·0.2²)), rgb = sigmoid(x·W + b); s, W, b learnable (the backward has work)."""

    def __init__(self):
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.zeros(()))
        g = torch.Generator().manual_seed(1)
        self.w = torch.nn.Parameter(torch.randn(3, 3, generator=g))
        self.b = torch.nn.Parameter(torch.zeros(3))

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * BLOB_SIGMA * torch.exp(-(x * x).sum(-1) / (2 * BLOB_STD ** 2))

    def forward(self, x: torch.Tensor):
        return self.density(x), torch.sigmoid(x @ self.w + self.b)


def make_rays(n_cams: int, res: int, device: torch.device, seed: int = 0):
    """Rays [R,3] from n_cams random cameras at radius 2.5-3 looking at the origin (fovy 40°)."""
    from fastdream import cameras

    g = torch.Generator().manual_seed(seed)
    radius = 2.5 + 0.5 * torch.rand(n_cams, generator=g)
    elev = -30 + 90 * torch.rand(n_cams, generator=g)
    azim = 360 * torch.rand(n_cams, generator=g)
    c2w = cameras.pose_spherical(radius, elev, azim)
    rays_o, rays_d = cameras.get_rays(c2w, 40.0, res, res)
    return (rays_o.reshape(-1, 3).float().contiguous().to(device),
            rays_d.reshape(-1, 3).float().contiguous().to(device))


def make_grid(resolution: int, device: torch.device, field: BlobField):
    """The public OccupancyGrid filled from the blob's density (one warm-up update evaluates every cell)."""
    from fastdream import OccupancyGrid

    grid = OccupancyGrid(torch.tensor(AABB), resolution=resolution, levels=1).to(device)
    with torch.no_grad():
        grid.update(0, field.density, occ_thre=0.01, warmup_steps=256, n=1)
    return grid


# ------------------------------------------------------------------------------------------------ backends
def _composite_loss(colors, opacities, depths):
    return colors.sum() + opacities.sum() + depths.sum()


def _field_at(field, rays_o, rays_d, ray_indices, t_starts, t_ends, n_rays):
    ri = ray_indices.long().clamp(0, max(n_rays - 1, 0))  # padded slots (fixed capacity) may hold n_rays or -1
    t_mid = (t_starts + t_ends) * 0.5
    x = rays_o[ri] + t_mid[:, None] * rays_d[ri]
    return field(x)


def fastdream_iteration(field, grid, rays_o, rays_d, step: float, max_samples: int | None = None):
    from fastdream import ops

    n = rays_o.shape[0]
    kw = {} if max_samples is None else {"max_samples": max_samples}
    ray_indices, t_starts, t_ends = grid.march_rays(rays_o, rays_d, render_step_size=step, **kw)[:3]
    sigmas, rgbs = _field_at(field, rays_o, rays_d, ray_indices, t_starts, t_ends, n)
    colors, opacities, depths = ops.composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n)
    _composite_loss(colors, opacities, depths).backward()
    return t_starts.numel()


def make_nerfacc_estimator(grid, device):
    """nerfacc's OccGridEstimator over the same aabb/resolution/levels, holding the SAME binary grid."""
    from nerfacc.estimators.occ_grid import OccGridEstimator

    occ = grid.occupied
    levels, res = int(occ.shape[0]), int(occ.shape[1])
    aabb = getattr(grid, "aabb", torch.tensor(AABB)).detach().float().cpu().reshape(-1)[:6]
    est = OccGridEstimator(roi_aabb=aabb.tolist(), resolution=res, levels=levels).to(device)
    est.binaries.copy_(occ.to(device=device, dtype=torch.bool).reshape(est.binaries.shape))
    est.occs.copy_(est.binaries.reshape(-1).float())
    return est


def nerfacc_composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays):
    import nerfacc

    weights, _, _ = nerfacc.render_weight_from_density(t_starts, t_ends, sigmas, ray_indices=ray_indices,
                                                       n_rays=n_rays)
    colors = nerfacc.accumulate_along_rays(weights, values=rgbs, ray_indices=ray_indices, n_rays=n_rays)
    opacities = nerfacc.accumulate_along_rays(weights, values=None, ray_indices=ray_indices, n_rays=n_rays)
    depths = nerfacc.accumulate_along_rays(weights, values=((t_starts + t_ends) * 0.5)[:, None],
                                           ray_indices=ray_indices, n_rays=n_rays)
    return colors, opacities.squeeze(-1), depths.squeeze(-1)


def nerfacc_iteration(field, est, rays_o, rays_d, step: float):
    n = rays_o.shape[0]
    ray_indices, t_starts, t_ends = est.sampling(rays_o, rays_d, render_step_size=step, near_plane=0.0,
                                                 stratified=False)
    sigmas, rgbs = _field_at(field, rays_o, rays_d, ray_indices, t_starts, t_ends, n)
    colors, opacities, depths = nerfacc_composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n)
    _composite_loss(colors, opacities, depths).backward()
    return t_starts.numel()


def torch_march(occupied: torch.Tensor, aabb: torch.Tensor, rays_o, rays_d, step: float,
                near_plane: float = 0.0, far_plane: float = 1e10):
    """Pure-PyTorch marcher (one level): uniform steps from the aabb entry, keep samples whose midpoint is in an
    occupied cell. Returns packed (ray_indices, t_starts, t_ends) sorted by ray then t; syncs on the boolean mask."""
    from fastdream.ops import reference

    t_near, t_far, hit = reference.ray_aabb_intersect(rays_o, rays_d, aabb)
    t_near = t_near.clamp_min(near_plane)
    t_far = t_far.clamp_max(far_plane)
    lo, hi = aabb[:3], aabb[3:]
    n_steps = int(math.ceil(float((hi - lo).norm()) / step))
    k = torch.arange(n_steps, device=rays_o.device, dtype=rays_o.dtype)
    t0 = torch.where(hit, t_near, torch.zeros_like(t_near))[:, None] + k[None] * step      # [R, S]
    t1 = t0 + step
    valid = hit[:, None] & (t1 <= t_far[:, None])
    mid = (t0 + t1) * 0.5
    res = occupied.shape[-1]
    x = rays_o[:, None] + mid[..., None] * rays_d[:, None]
    cell = ((x - lo) / (hi - lo) * res).floor().long().clamp(0, res - 1)
    occ = occupied.reshape(-1, res, res, res)[0][cell[..., 0], cell[..., 1], cell[..., 2]]
    keep = valid & occ
    ray_indices = torch.arange(rays_o.shape[0], device=rays_o.device)[:, None].expand_as(keep)[keep]
    return ray_indices, t0[keep], t1[keep]


def torch_composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays):
    try:
        from fastdream.ops.reference import composite
    except ImportError:
        composite = None
    if composite is not None:
        return composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
    # Fallback while the reference op is not there: exclusive transmittance via a per-ray cumulative sum.
    tau = sigmas * (t_ends - t_starts)
    csum = torch.cumsum(tau, 0)
    first = torch.zeros(n_rays, dtype=torch.long, device=sigmas.device).scatter_reduce(
        0, ray_indices, torch.arange(ray_indices.numel(), device=sigmas.device), "amin", include_self=False)
    offset = (csum - tau)[first][ray_indices]
    trans = torch.exp(-((csum - tau) - offset))
    w = trans * (1 - torch.exp(-tau))
    colors = torch.zeros(n_rays, 3, device=sigmas.device).index_add(0, ray_indices, w[:, None] * rgbs)
    opac = torch.zeros(n_rays, device=sigmas.device).index_add(0, ray_indices, w)
    depth = torch.zeros(n_rays, device=sigmas.device).index_add(0, ray_indices, w * (t_starts + t_ends) * 0.5)
    return colors, opac, depth


def torch_iteration(field, occupied, aabb, rays_o, rays_d, step: float, grid=None):
    n = rays_o.shape[0]
    try:  # the project's PyTorch twin of the marcher (stable-dreamfusion-shaped), when the rendering core has it
        from fastdream.ops.reference import march_rays as grid_sampling
    except ImportError:
        grid_sampling = None
    if grid_sampling is not None and grid is not None and hasattr(grid, "level_aabb"):
        ray_indices, t_starts, t_ends = grid_sampling(occupied, grid.level_aabb(0), rays_o, rays_d, 0.0, 1e10, step)
    else:
        ray_indices, t_starts, t_ends = torch_march(occupied, aabb, rays_o, rays_d, step)
    sigmas, rgbs = _field_at(field, rays_o, rays_d, ray_indices, t_starts, t_ends, n)
    colors, opacities, depths = torch_composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n)
    _composite_loss(colors, opacities, depths).backward()
    return t_starts.numel()


# ------------------------------------------------------------------------------------------------ runner
def _measure(name: str, fn: Callable[[], int], field: torch.nn.Module, device, n_rays: int, warmup: int,
             repeats: int) -> dict:
    def zero():
        field.zero_grad(set_to_none=True)
    try:
        zero()
        n_samples = fn()
        with common.count_host_syncs(device) as syncs:
            zero()
            fn()
        t = common.time_fn(fn, device, warmup=warmup, repeats=repeats, setup=zero)
    except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others
        log.warning("march+composite %s failed: %s", name, exc)
        return common.failed(exc)
    sec = t.median_ms * 1e-3
    return {"status": "ok", **t.as_dict(), "n_rays": n_rays, "n_samples": int(n_samples),
            "rays_per_s": n_rays / sec, "samples_per_s": n_samples / sec, **syncs}


def _scene_info(s: dict, n: int, occupied: torch.Tensor) -> dict:
    return {"n_rays": n, "cameras": s["n_cams"], "image": f"{s['res']}x{s['res']}", "grid_resolution": s["grid_res"],
            "levels": 1, "render_step_size": s["step"], "aabb": list(AABB),
            "occupied_fraction": float(occupied.float().mean()),
            "blob": f"sigma={BLOB_SIGMA}*exp(-r^2/(2*{BLOB_STD}^2))",
            "loss": "sum(color)+sum(opacity)+sum(depth), backward to field params"}


def _fixed_capacity(b: dict, field, grid, rays_o, rays_d, s: dict, device) -> dict:
    """fastdream's fixed-capacity (no-sync) mode at 1.25x the exact mode's sample count."""
    try:
        fixed_ok = "max_samples" in inspect.signature(grid.march_rays).parameters
    except (AttributeError, TypeError, ValueError):
        fixed_ok = False
    if not fixed_ok:
        return common.unavailable("OccupancyGrid.march_rays has no max_samples (fixed capacity)")
    if b["fastdream"].get("status") != "ok":
        return common.unavailable("skipped: the exact mode failed")
    cap = int(b["fastdream"]["n_samples"] * 1.25) + 1024
    fx = _measure("fastdream_fixed", lambda: fastdream_iteration(field, grid, rays_o, rays_d, s["step"], cap),
                  field, device, rays_o.shape[0], s["warmup"], s["repeats"])
    fx["max_samples"] = cap
    if fx.get("status") == "ok":  # the buffers are padded to `cap`: count the exact mode's real samples
        fx["n_samples"] = b["fastdream"]["n_samples"]
        fx["samples_per_s"] = fx["n_samples"] / (fx["median_ms"] * 1e-3)
    return fx


def _nerfacc(field, grid, rays_o, rays_d, s: dict, device) -> dict:
    if device.type != "cuda":
        return common.unavailable("nerfacc's sampler is CUDA-only")
    try:
        import nerfacc  # noqa: F401
        est = make_nerfacc_estimator(grid, device)
        return _measure("nerfacc", lambda: nerfacc_iteration(field, est, rays_o, rays_d, s["step"]), field, device,
                        rays_o.shape[0], s["warmup"], s["repeats"])
    except ImportError as exc:
        return common.unavailable(f"nerfacc not importable ({exc}); pip install .[bench]")
    except Exception as exc:  # noqa: BLE001 - e.g. its JIT build failing
        return common.failed(exc)


def bench_march_composite(device: torch.device, quick: bool) -> dict:
    """Every backend's rays/s and samples/s on the same scene, and ours/theirs throughput ratios."""
    s = sizes(quick)
    try:
        field = BlobField().to(device)
        rays_o, rays_d = make_rays(s["n_cams"], s["res"], device)
        grid = make_grid(s["grid_res"], device, field)
    except Exception as exc:  # noqa: BLE001
        log.warning("march+composite: scene setup failed: %s", exc)
        return {"backends": {"fastdream": common.failed(exc)}, "ratios": dict.fromkeys(RATIO_KEYS)}
    n = rays_o.shape[0]
    occupied = grid.occupied.to(device)
    aabb = torch.tensor(AABB, device=device)
    b: dict[str, Any] = {}
    b["fastdream"] = _measure("fastdream", lambda: fastdream_iteration(field, grid, rays_o, rays_d, s["step"]),
                              field, device, n, s["warmup"], s["repeats"])
    b["fastdream_fixed"] = _fixed_capacity(b, field, grid, rays_o, rays_d, s, device)
    b["nerfacc"] = _nerfacc(field, grid, rays_o, rays_d, s, device)
    b["torch"] = _measure("torch", lambda: torch_iteration(field, occupied, aabb, rays_o, rays_d, s["step"], grid),
                          field, device, n, min(s["warmup"], 2), s["torch_repeats"])

    def rays(name):
        return b.get(name, {}).get("rays_per_s")
    ratios = {"vs_nerfacc": common.ratio(rays("fastdream"), rays("nerfacc")),  # > 1: fastdream is faster
              "vs_torch": common.ratio(rays("fastdream"), rays("torch")),
              "fixed_vs_nerfacc": common.ratio(rays("fastdream_fixed"), rays("nerfacc")),
              "fixed_vs_torch": common.ratio(rays("fastdream_fixed"), rays("torch"))}
    return {"scene": _scene_info(s, n, occupied), "backends": b, "ratios": ratios}
