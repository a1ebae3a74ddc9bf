"""Call every fastdream CUDA op once with small inputs, forward and backward: the workload for
`compute-sanitizer --tool memcheck` in bench/gpu_check.sh (run with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so that each
tensor is its own allocation and an out-of-bounds access cannot hide inside the caching allocator's pool).

Prints one line per op (ok / FAILED / missing) and exits 1 if any op raised. An op that is not in this checkout yet
is reported as missing, not as a failure.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def _rays(n, dev, g):
    o = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.2 + torch.tensor([2.5, 0.3, 0.2])
    d = torch.nn.functional.normalize(-o + torch.randn(n, 3, generator=g) * 0.3, dim=-1)
    # awkward rays: axis-parallel through the box, pointing away from it (a miss)
    d[0] = torch.tensor([-1.0, 0.0, 0.0])
    d[1] = torch.tensor([1.0, 0.0, 0.0])
    return o.to(dev).contiguous(), d.to(dev).contiguous()


@check
def ray_aabb_intersect(dev, g):
    from fastdream import ops
    o, d = _rays(257, dev, g)
    aabb = torch.tensor([-1.0, -1, -1, 1, 1, 1], device=dev)
    out = ops.ray_aabb_intersect(o, d, aabb)
    ops.ray_aabb_intersect(o[:0], d[:0], aabb)
    return out


def _grid(dev, g, res=32, levels=2):
    from fastdream import OccupancyGrid
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=res, levels=levels).to(dev)
    blob = lambda x: 20 * torch.exp(-(x * x).sum(-1) / 0.1)  # noqa: E731
    for step in range(0, 3):
        grid.update(step, blob, n=1, warmup_steps=2)  # warm-up (all cells) then a partial update
    return grid


@check
def occupancy_update(dev, g):
    return _grid(dev, g).occupied


@check
def march_exact(dev, g):
    grid = _grid(dev, g)
    o, d = _rays(300, dev, g)
    ri, ts, te = grid.march_rays(o, d, render_step_size=0.02)[:3]
    grid.march_rays(o, d, render_step_size=0.02, stratified=True, cone_angle=0.004)
    grid.march_rays(o[:0], d[:0], render_step_size=0.02)
    return ri, ts, te


@check
def march_fixed_capacity(dev, g):
    import inspect
    grid = _grid(dev, g)
    if "max_samples" not in inspect.signature(grid.march_rays).parameters:
        raise NotImplementedError("OccupancyGrid.march_rays has no max_samples")
    o, d = _rays(300, dev, g)
    grid.march_rays(o, d, render_step_size=0.02, max_samples=64)        # truncates
    return grid.march_rays(o, d, render_step_size=0.02, max_samples=100000)


def _packed(dev, g, n_rays=37):
    counts = torch.randint(0, 9, (n_rays,), generator=g)
    ri = torch.repeat_interleave(torch.arange(n_rays), counts)
    n = int(ri.numel())
    ts = torch.rand(n, generator=g).sort().values
    te = ts + 0.05
    sig = (torch.rand(n, generator=g) * 5).to(dev).requires_grad_(True)
    rgb = torch.rand(n, 3, generator=g).to(dev).requires_grad_(True)
    return sig, rgb, ts.to(dev), te.to(dev), ri.to(dev), n_rays


@check
def render_weights(dev, g):
    from fastdream import ops
    sig, rgb, ts, te, ri, n = _packed(dev, g)
    w = ops.render_weights(sig, ts, te, ri, n)
    w2 = ops.render_weights(sig, ts, te, ri, n, transmittance_thre=0.5)
    (w.sum() + w2.sum()).backward()
    return w


@check
def composite(dev, g):
    from fastdream import ops
    sig, rgb, ts, te, ri, n = _packed(dev, g)
    c, o, dpt = ops.composite(sig, rgb, ts, te, ri, n)
    c2, _, _ = ops.composite(sig, rgb, ts, te, ri, n, transmittance_thre=0.3)
    (c.sum() + o.sum() + dpt.sum() + c2.sum()).backward()
    e = ops.composite(sig[:0], rgb[:0], ts[:0], te[:0], ri[:0], n)
    return c, e


@check
def shade(dev, g):
    from fastdream import ops
    n = 300
    alb = torch.rand(n, 3, generator=g).to(dev).requires_grad_(True)
    nrm = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1).to(dev).requires_grad_(True)
    pos = torch.randn(n, 3, generator=g).to(dev)
    light = torch.tensor([3.0, 0.0, 1.0], device=dev)
    outs = [ops.shade(alb, nrm, pos, light, 0.1, m) for m in ops.SHADING_MODES]
    sum(o.sum() for o in outs).backward()
    return outs


@check
def hash_encode(dev, g):
    from fastdream import HashGridEncoding
    enc = HashGridEncoding(n_levels=4, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                           per_level_scale=2.0, backend="cuda" if dev.type == "cuda" else "cpu").to(dev)
    x = torch.rand(513, 3, generator=g)
    x[0] = 0.0
    x[1] = 1.0
    x = x.to(dev).requires_grad_(True)
    y = enc(x)
    y.float().sum().backward()
    return y


@check
def field_with_normals(dev, g):
    from fastdream import Field
    field = Field().to(dev)
    x = (torch.rand(257, 3, generator=g) * 2.4 - 1.2).to(dev)
    sigma, albedo, normals = field.forward_with_normals(x)
    (sigma.sum() + albedo.sum() + normals.sum()).backward()
    return sigma


@check
def render_rays(dev, g):
    from fastdream import Field
    from fastdream.render.rays import render_rays as rr
    field = Field().to(dev)
    grid = _grid(dev, g, levels=1)
    o, d = _rays(64, dev, g)
    out = rr(field, grid, o, d, shading="lambertian", light_position=torch.tensor([3.0, 0, 1], device=dev),
             background=torch.ones(3, device=dev), render_step_size=0.02, return_samples=True)
    out["color"].sum().backward()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `--cpu` runs the same calls on the CPU kernels: a dry run of this script where there is no GPU.
    if "--cpu" in argv:
        dev = torch.device("cpu")
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    else:
        print("sanitize_ops: no CUDA device; nothing to do (--cpu runs the calls on the CPU kernels)")
        return 0
    failed = 0
    for fn in CHECKS:
        g = torch.Generator().manual_seed(0)
        try:
            fn(dev, g)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            print(f"sanitize_ops: {fn.__name__}: ok", flush=True)
        except (ImportError, AttributeError, NotImplementedError) as exc:
            print(f"sanitize_ops: {fn.__name__}: missing ({type(exc).__name__}: {exc})", flush=True)
        except Exception:  # noqa: BLE001 - report every op, then fail
            failed += 1
            print(f"sanitize_ops: {fn.__name__}: FAILED\n{traceback.format_exc()}", flush=True)
    print(f"sanitize_ops: {len(CHECKS) - failed}/{len(CHECKS)} without error", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
