"""Kernel benchmarks: march + composite forward + backward, and hash-grid encoding forward + backward.

March + composite: a fixed synthetic scene (a Gaussian density blob in the aabb [-1,1]^3, a smooth colour field with
a few learnable parameters), rays from random cameras on a sphere looking at the origin, one occupancy grid filled
once from the blob through the public OccupancyGrid.update(), and one step size. Every backend gets the same rays,
the same boolean grid and the same step size; the per-sample field evaluation (identical PyTorch code) is part of
every backend's time, as it is in training:
  - fastdream: OccupancyGrid.sampling (exact mode, and fixed-capacity mode when available) + fastdream.ops.composite;
  - nerfacc 0.5.3 (when importable, CUDA only): OccGridEstimator fed the SAME binary grid, its sampling, then
    render_weight_from_density + accumulate_along_rays;
  - torch: the pure-PyTorch marcher fastdream.ops.reference.march_rays (bench.kernels.torch_march, the same
    idea, while that is missing: uniform steps from the aabb entry, occupancy lookup, boolean mask) + the PyTorch
    reference compositing fastdream.ops.reference.composite.
Each iteration: march, field, composite, loss = sum of colours + opacities + depths, backward to the field params.

Hash encoding: fastdream.HashGridEncoding with its own kernels vs tinycudann (when importable) vs the PyTorch
reference backend, same parameters, N random points; forward + backward (parameters' gradient).
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


def sizes(quick: bool, device: torch.device) -> dict:
    if quick:
        return dict(n_cams=2, res=24, grid_res=32, step=2 * math.sqrt(3) / 96, enc_points=1 << 12,
                    warmup=1, repeats=3, torch_repeats=2)
    return dict(n_cams=4, res=128, grid_res=128, step=2 * math.sqrt(3) / 512, enc_points=1 << 20,
                warmup=5, repeats=20, torch_repeats=5)


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


def bench_march_composite(device: torch.device, quick: bool) -> dict:
    s = sizes(quick, device)
    try:
        field = BlobField().to(device)
        rays_o, rays_d = make_rays(s["n_cams"], s["res"], device)
        grid = make_grid(s["grid_res"], device, field)
    except Exception as exc:  # noqa: BLE001
        log.warning("march+composite: scene setup failed: %s", exc)
        return {"backends": {"fastdream": common.failed(exc)}, "ratios": {
            "vs_nerfacc": None, "vs_torch": None, "fixed_vs_nerfacc": None, "fixed_vs_torch": None}}
    n = rays_o.shape[0]
    occupied = grid.occupied.to(device)
    aabb = torch.tensor(AABB, device=device)
    scene = {"n_rays": n, "cameras": s["n_cams"], "image": f"{s['res']}x{s['res']}", "grid_resolution":
             s["grid_res"], "levels": 1, "render_step_size": s["step"], "aabb": list(AABB),
             "occupied_fraction": float(occupied.float().mean()), "blob": f"sigma={BLOB_SIGMA}*exp(-r^2/"
             f"(2*{BLOB_STD}^2))", "loss": "sum(color)+sum(opacity)+sum(depth), backward to field params"}
    out: dict[str, Any] = {"scene": scene, "backends": {}}
    b = out["backends"]
    w, r = s["warmup"], s["repeats"]
    b["fastdream"] = _measure("fastdream", lambda: fastdream_iteration(field, grid, rays_o, rays_d, s["step"]),
                              field, device, n, w, r)
    try:
        fixed_ok = "max_samples" in inspect.signature(grid.sampling).parameters
    except (AttributeError, TypeError, ValueError):
        fixed_ok = False
    if fixed_ok and b["fastdream"].get("status") == "ok":
        cap = int(b["fastdream"]["n_samples"] * 1.25) + 1024
        b["fastdream_fixed"] = _measure(
            "fastdream_fixed", lambda: fastdream_iteration(field, grid, rays_o, rays_d, s["step"], cap),
            field, device, n, w, r)
        fx = b["fastdream_fixed"]
        fx["max_samples"] = cap
        if fx.get("status") == "ok":  # the buffers are padded to `cap`: count the exact mode's real samples
            fx["n_samples"] = b["fastdream"]["n_samples"]
            fx["samples_per_s"] = fx["n_samples"] / (fx["median_ms"] * 1e-3)
    elif fixed_ok:
        b["fastdream_fixed"] = common.unavailable("skipped: the exact mode failed")
    else:
        b["fastdream_fixed"] = common.unavailable("OccupancyGrid.sampling has no max_samples (fixed capacity)")
    if device.type != "cuda":
        b["nerfacc"] = common.unavailable("nerfacc's sampler is CUDA-only")
    else:
        try:
            import nerfacc  # noqa: F401
            est = make_nerfacc_estimator(grid, device)
            b["nerfacc"] = _measure("nerfacc", lambda: nerfacc_iteration(field, est, rays_o, rays_d, s["step"]),
                                    field, device, n, w, r)
        except ImportError as exc:
            b["nerfacc"] = common.unavailable(f"nerfacc not importable ({exc}); pip install .[bench]")
        except Exception as exc:  # noqa: BLE001 - e.g. its JIT build failing
            b["nerfacc"] = common.failed(exc)
    b["torch"] = _measure("torch", lambda: torch_iteration(field, occupied, aabb, rays_o, rays_d, s["step"], grid),
                          field, device, n, min(w, 2), s["torch_repeats"])

    def rays(name):
        return b.get(name, {}).get("rays_per_s")
    out["ratios"] = {  # ours throughput / peer throughput: > 1 means fastdream is faster
        "vs_nerfacc": common.ratio(rays("fastdream"), rays("nerfacc")),
        "vs_torch": common.ratio(rays("fastdream"), rays("torch")),
        "fixed_vs_nerfacc": common.ratio(rays("fastdream_fixed"), rays("nerfacc")),
        "fixed_vs_torch": common.ratio(rays("fastdream_fixed"), rays("torch")),
    }
    return out


# ------------------------------------------------------------------------------------------------ encoding
ENC_CONFIG = dict(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                  per_level_scale=1.447269237440378)
ENC_BYTES_NOTE = ("effective bytes per fwd+bwd call = N*(2*12 [x read in fwd and bwd] + L*F*o [output write] + "
                  "L*F*4 [output-gradient read] + L*8*F*b [forward corner gathers] + L*8*F*b*2 [backward atomic "
                  "read-modify-write]) + P*b [parameter-gradient zeroing]; o = output element size, b = table element "
                  "size, P = parameter count; cache hits are not discounted, so it can exceed DRAM bandwidth")


def _enc_bytes(n: int, levels: int, feats: int, n_params: int, out_elem: int, param_elem: int) -> int:
    per_point = 2 * 12 + levels * feats * out_elem + levels * feats * 4 + levels * 8 * feats * param_elem * 3
    return n * per_point + n_params * param_elem


def bench_encoding(device: torch.device, quick: bool, bandwidth: float | None) -> dict:
    s = sizes(quick, device)
    cfg = dict(ENC_CONFIG)
    if quick:
        cfg.update(n_levels=8, log2_hashmap_size=14)
    n = s["enc_points"]
    out: dict[str, Any] = {"config": cfg, "n_points": n, "bytes_note": ENC_BYTES_NOTE, "backends": {}}
    b = out["backends"]
    g = torch.Generator(device="cpu").manual_seed(2)
    x = torch.rand(n, 3, generator=g).to(device)
    try:
        from fastdream import HashGridEncoding
    except ImportError as exc:
        for k in ("fastdream", "tcnn", "torch"):
            b[k] = common.unavailable(f"fastdream.HashGridEncoding not importable ({exc})")
        out["ratios"] = {"vs_tcnn": None, "vs_torch": None}
        return out
    ours_backend = "cuda" if device.type == "cuda" else "cpu"
    try:
        base = HashGridEncoding(**cfg, backend=ours_backend).to(device)
        params = base.params.detach().clone()
    except Exception as exc:  # noqa: BLE001
        b["fastdream"] = common.failed(exc)
        base, params = None, None

    def run(name: str, enc: torch.nn.Module, xin: torch.Tensor, warmup: int, repeats: int) -> dict:
        try:
            with torch.no_grad():
                y0 = enc(xin)
            grad_out = torch.randn(y0.shape, generator=g).to(device=device, dtype=y0.dtype)

            def fwd():
                with torch.no_grad():
                    enc(xin)

            def fwd_bwd():
                enc(xin).backward(grad_out)

            def zero():
                enc.zero_grad(set_to_none=True)
            tf = common.time_fn(fwd, device, warmup=warmup, repeats=repeats)
            tfb = common.time_fn(fwd_bwd, device, warmup=warmup, repeats=repeats, setup=zero)
            p = next(iter(enc.parameters()))
            nbytes = _enc_bytes(n, cfg["n_levels"], cfg["n_features_per_level"], p.numel(), y0.element_size(),
                                p.element_size())
            sec = tfb.median_ms * 1e-3
            res = {"status": "ok", "fwd_median_ms": tf.median_ms, **tfb.as_dict(), "points_per_s": n / sec,
                   "fwd_points_per_s": n / (tf.median_ms * 1e-3), "param_dtype": str(p.dtype).replace("torch.", ""),
                   "effective_bytes": nbytes, "effective_bytes_per_s": nbytes / sec}
            res["fraction_of_bandwidth"] = common.ratio(res["effective_bytes_per_s"], bandwidth)
            return res
        except Exception as exc:  # noqa: BLE001
            log.warning("encoding %s failed: %s", name, exc)
            return common.failed(exc)

    if base is not None:
        b["fastdream"] = run("fastdream", base, x, s["warmup"], s["repeats"])
    if device.type != "cuda":
        b["tcnn"] = common.unavailable("tinycudann is CUDA-only")
    else:
        try:
            import tinycudann  # noqa: F401
            enc = HashGridEncoding(**cfg, backend="tcnn").to(device)
            b["tcnn"] = run("tcnn", enc, x, s["warmup"], s["repeats"])
        except ImportError as exc:
            b["tcnn"] = common.unavailable(f"tinycudann not importable ({exc})")
        except Exception as exc:  # noqa: BLE001
            b["tcnn"] = common.failed(exc)
    try:
        ref = HashGridEncoding(**cfg, backend="torch").to(device)
        if params is not None:
            with torch.no_grad():
                ref.params.copy_(params.to(ref.params.dtype))
        b["torch"] = run("torch", ref, x, min(s["warmup"], 2), s["torch_repeats"])
    except Exception as exc:  # noqa: BLE001
        b["torch"] = common.failed(exc)

    def pts(name):
        return b.get(name, {}).get("points_per_s")
    out["ratios"] = {"vs_tcnn": common.ratio(pts("fastdream"), pts("tcnn")),
                     "vs_torch": common.ratio(pts("fastdream"), pts("torch"))}
    return out


def run(device: torch.device, quick: bool) -> dict:
    bandwidth = common.measure_bandwidth(device)
    result = {"device_bandwidth_measured_bytes_per_s": bandwidth,
              "bandwidth_note": "device-to-device copy of 1 GiB, bytes read + written, median of 10",
              "host_sync_note": common.SYNC_COUNT_NOTE}
    try:
        result["march_composite"] = bench_march_composite(device, quick)
    except Exception as exc:  # noqa: BLE001 - keep the encoding figures even if this section breaks
        log.warning("march+composite failed: %s", exc)
        result["march_composite"] = {**common.failed(exc), "backends": {}, "ratios": {}}
    try:
        result["encoding"] = bench_encoding(device, quick, bandwidth)
    except Exception as exc:  # noqa: BLE001
        log.warning("encoding failed: %s", exc)
        result["encoding"] = {**common.failed(exc), "backends": {}, "ratios": {}}
    return result


def summary_rows(res: dict) -> list[list[str]]:
    rows = []
    for name, r in res.get("march_composite", {}).get("backends", {}).items():
        rows.append(["march+composite", name, r.get("status", "?"), common.fmt(r.get("rays_per_s"), "rays/s"),
                     common.fmt(r.get("samples_per_s"), "samples/s"), str(r.get("host_syncs", "-")),
                     str(r.get("python_sync_calls", "-")), r.get("reason", "")[:60]])
    for name, r in res.get("encoding", {}).get("backends", {}).items():
        rows.append(["hash encode", name, r.get("status", "?"), common.fmt(r.get("points_per_s"), "pts/s"),
                     common.fmt(r.get("effective_bytes_per_s"), "B/s"), "-", "-", r.get("reason", "")[:60]])
    return rows
