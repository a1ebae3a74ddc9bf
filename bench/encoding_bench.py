"""Hash-grid encoding forward + backward (the `kernels` section): fastdream.HashGridEncoding with its own kernels vs
tinycudann (when importable; bench/build_tcnn.sh builds its encodings-only wheel) vs the PyTorch reference backend,
same parameters, N random points; forward alone and forward + backward (the parameters' gradient)."""
from __future__ import annotations

import logging
from typing import Any

import torch

from bench import common

log = logging.getLogger("fastdream.bench")

ENC_CONFIG = dict(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                  per_level_scale=1.447269237440378)
ENC_BYTES_NOTE = ("effective bytes per fwd+bwd call = N*(2*12 [x read in fwd and bwd] + L*F*o [output write] + "
                  "L*F*4 [output-gradient read] + L*8*F*b [forward corner gathers] + L*8*F*b*2 [backward atomic "
                  "read-modify-write]) + P*b [parameter-gradient zeroing]; o = output element size, b = table element "
                  "size, P = parameter count; cache hits are not discounted, so it can exceed DRAM bandwidth")


def sizes(quick: bool) -> dict:
    if quick:
        return dict(points=1 << 12, warmup=1, repeats=3, torch_repeats=2)
    return dict(points=1 << 20, warmup=5, repeats=20, torch_repeats=5)


def _enc_bytes(n: int, levels: int, feats: int, n_params: int, out_elem: int, param_elem: int) -> int:
    per_point = 2 * 12 + levels * feats * out_elem + levels * feats * 4 + levels * 8 * feats * param_elem * 3
    return n * per_point + n_params * param_elem


def measure(enc: torch.nn.Module, x: torch.Tensor, cfg: dict, warmup: int, repeats: int,
            bandwidth: float | None, g: torch.Generator) -> dict:
    """Forward and forward + backward timings of `enc` on points x [N,3], with effective bytes per second."""
    device, n = x.device, x.shape[0]
    with torch.no_grad():
        y0 = enc(x)
    grad_out = torch.randn(y0.shape, generator=g).to(device=device, dtype=y0.dtype)

    def fwd():
        with torch.no_grad():
            enc(x)

    def fwd_bwd():
        enc(x).backward(grad_out)

    tf = common.time_fn(fwd, device, warmup=warmup, repeats=repeats)
    tfb = common.time_fn(fwd_bwd, device, warmup=warmup, repeats=repeats,
                         setup=lambda: enc.zero_grad(set_to_none=True))
    p = next(iter(enc.parameters()))
    nbytes = _enc_bytes(n, cfg["n_levels"], cfg["n_features_per_level"], p.numel(), y0.element_size(),
                        p.element_size())
    sec = tfb.median_ms * 1e-3
    return {"status": "ok", "fwd_median_ms": tf.median_ms, **tfb.as_dict(), "points_per_s": n / sec,
            "fwd_points_per_s": n / (tf.median_ms * 1e-3), "param_dtype": str(p.dtype).replace("torch.", ""),
            "effective_bytes": nbytes, "effective_bytes_per_s": nbytes / sec,
            "fraction_of_bandwidth": common.ratio(nbytes / sec, bandwidth)}


def _guarded(name: str, fn) -> dict:
    try:
        return fn()
    except ImportError as exc:
        return common.unavailable(f"{name} not importable ({exc})")
    except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others
        log.warning("encoding %s failed: %s", name, exc)
        return common.failed(exc)


def _tcnn_encoding(cls, cfg: dict, device: torch.device) -> torch.nn.Module:
    import tinycudann  # noqa: F401 - an ImportError reports tcnn as unavailable, not as an error

    return cls(**cfg, backend="tcnn").to(device)


def _copy_params(enc: torch.nn.Module, params: torch.Tensor | None) -> torch.nn.Module:
    if params is not None:
        with torch.no_grad():
            enc.params.copy_(params.to(enc.params.dtype))
    return enc


def bench_encoding(device: torch.device, quick: bool, bandwidth: float | None) -> dict:
    """fastdream vs tcnn vs the PyTorch reference on the same parameters and points, and the throughput ratios."""
    s = sizes(quick)
    cfg = dict(ENC_CONFIG, **({"n_levels": 8, "log2_hashmap_size": 14} if quick else {}))
    n = s["points"]
    out: dict[str, Any] = {"config": cfg, "n_points": n, "bytes_note": ENC_BYTES_NOTE, "backends": {}}
    b = out["backends"]
    g = torch.Generator(device="cpu").manual_seed(2)
    x = torch.rand(n, 3, generator=g).to(device)
    try:
        from fastdream import HashGridEncoding
    except ImportError as exc:
        b.update(dict.fromkeys(("fastdream", "tcnn", "torch"),
                               common.unavailable(f"fastdream.HashGridEncoding not importable ({exc})")))
        out["ratios"] = {"vs_tcnn": None, "vs_torch": None}
        return out
    ours = HashGridEncoding(**cfg, backend="cuda" if device.type == "cuda" else "cpu").to(device)
    params = ours.params.detach().clone()
    b["fastdream"] = _guarded("fastdream", lambda: measure(ours, x, cfg, s["warmup"], s["repeats"], bandwidth, g))
    if device.type != "cuda":
        b["tcnn"] = common.unavailable("tinycudann is CUDA-only")
    else:
        b["tcnn"] = _guarded("tinycudann", lambda: measure(_tcnn_encoding(HashGridEncoding, cfg, device), x, cfg,
                                                           s["warmup"], s["repeats"], bandwidth, g))
    b["torch"] = _guarded("torch", lambda: measure(
        _copy_params(HashGridEncoding(**cfg, backend="torch").to(device), params), x, cfg, min(s["warmup"], 2),
        s["torch_repeats"], bandwidth, g))

    def pts(name):
        return b.get(name, {}).get("points_per_s")
    out["ratios"] = {"vs_tcnn": common.ratio(pts("fastdream"), pts("tcnn")),
                     "vs_torch": common.ratio(pts("fastdream"), pts("torch"))}
    return out
