"""HashGridEncoding: a tiny-cuda-nn compatible multiresolution hash-grid encoding as a torch.nn.Module."""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from fastdream.ops.encoding import BACKENDS, hash_encode, hash_grid_levels, resolve_auto_backend

__all__ = ["HashGridEncoding", "ENCODING_BACKENDS"]

# The op's backends plus tiny-cuda-nn (an optional peer, CUDA only).
ENCODING_BACKENDS = (*BACKENDS, "tcnn")

log = logging.getLogger(__name__)

_TCNN_KEYS = ("n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution", "per_level_scale")


class HashGridEncoding(nn.Module):
    """forward(x [N, 3] in [0, 1]) -> [N, n_levels * n_features_per_level], level-major (column l*F + f).

    `.params` is one flat tensor laid out level, entry, feature exactly as tiny-cuda-nn's HashGrid, so a tcnn
    parameter vector loads unchanged. backend: "auto" (our CUDA/CPU kernels, PyTorch reference if the
    extension is unavailable), "cuda", "cpu", "tcnn" (tinycudann, CUDA only) or "torch" (the reference).
    Inputs outside [0, 1] are clamped and NaN reads as 0 (except with tcnn, which does neither).
    """

    def __init__(self, n_input_dims: int = 3, n_levels: int = 16, n_features_per_level: int = 2,
                 log2_hashmap_size: int = 19, base_resolution: int = 16, per_level_scale: float = 1.447269237440378,
                 backend: str = "auto", init_scale: float = 1e-4):
        super().__init__()
        if n_input_dims != 3:
            raise ValueError(f"n_input_dims must be 3 (only 3-D grids are implemented), got {n_input_dims!r}")
        if backend not in ENCODING_BACKENDS:
            raise ValueError(f"backend must be one of {ENCODING_BACKENDS}, got {backend!r}")
        self.levels = hash_grid_levels(n_levels, n_features_per_level, log2_hashmap_size, base_resolution,
                                       per_level_scale)
        self.n_input_dims = 3
        self.n_levels = n_levels
        self.n_features_per_level = n_features_per_level
        self.log2_hashmap_size = log2_hashmap_size
        self.base_resolution = base_resolution
        self.per_level_scale = float(per_level_scale)
        self.backend = backend
        self.n_output_dims = n_levels * n_features_per_level
        self._tcnn = None
        if backend == "tcnn":
            try:
                import tinycudann as tcnn
            except Exception as exc:  # tinycudann fails to import in many ways (no GPU, ABI, missing libs)
                raise RuntimeError(f"backend='tcnn' needs tinycudann, which failed to import ({exc}); "
                                   "use backend='auto' for fastdream's own kernels") from exc
            self._tcnn = tcnn.Encoding(3, self.tcnn_config(), dtype=torch.float32)
            if self._tcnn.params.numel() != self.levels.n_params:
                raise RuntimeError(f"tinycudann allocated {self._tcnn.params.numel()} parameters, fastdream expects "
                                   f"{self.levels.n_params}; this tinycudann version lays out the grid differently")
        else:
            # tcnn's initialisation: uniform in [-1e-4, 1e-4].
            self.params = nn.Parameter(torch.empty(self.levels.n_params).uniform_(-init_scale, init_scale))

    def __getattr__(self, name: str):
        if name == "params" and self.__dict__.get("_modules", {}).get("_tcnn") is not None:
            return self._modules["_tcnn"].params
        return super().__getattr__(name)

    @classmethod
    def from_tcnn_config(cls, config: dict[str, Any], n_input_dims: int = 3, backend: str = "auto"
                         ) -> "HashGridEncoding":
        """Build from a tcnn encoding config ({"otype": "HashGrid", "n_levels": 16, ...}); missing keys get tcnn's
        defaults."""
        otype = str(config.get("otype", "HashGrid"))
        if otype.lower() not in ("hashgrid", "grid") or str(config.get("type", "Hash")).lower() != "hash":
            raise ValueError(f"only tcnn HashGrid encodings are supported, got otype={otype!r} "
                             f"type={config.get('type', 'Hash')!r}")
        unknown = set(config) - {"otype", "type", "interpolation", "hash", *_TCNN_KEYS}
        if unknown:
            raise ValueError(f"unknown tcnn HashGrid keys: {sorted(unknown)}")
        if str(config.get("interpolation", "Linear")).lower() != "linear":
            raise ValueError(f"only interpolation='Linear' is supported, got {config['interpolation']!r}")
        if str(config.get("hash", "CoherentPrime")).lower() != "coherentprime":
            raise ValueError(f"only hash='CoherentPrime' is supported, got {config['hash']!r}")
        defaults = {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19, "base_resolution": 16,
                    "per_level_scale": 2.0}
        kw = {k: config.get(k, defaults[k]) for k in _TCNN_KEYS}
        return cls(n_input_dims=n_input_dims, backend=backend, **kw)

    def tcnn_config(self) -> dict[str, Any]:
        """This grid as a tcnn encoding config."""
        return {"otype": "HashGrid", "n_levels": self.n_levels, "n_features_per_level": self.n_features_per_level,
                "log2_hashmap_size": self.log2_hashmap_size, "base_resolution": self.base_resolution,
                "per_level_scale": self.per_level_scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._tcnn is not None:
            return self._tcnn(x.float()).float()
        params = self.params
        backend = self.backend
        if backend == "auto":
            backend = resolve_auto_backend(x.device)
        if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
            x = x.float()
        if params.dtype != x.dtype and not (x.is_cuda and params.dtype == torch.float16):
            x = x.to(params.dtype)
        return hash_encode(x, params, self.levels, backend=backend)

    def extra_repr(self) -> str:
        lv = self.levels
        return (f"n_levels={self.n_levels}, n_features_per_level={self.n_features_per_level}, "
                f"log2_hashmap_size={self.log2_hashmap_size}, base_resolution={self.base_resolution}, "
                f"per_level_scale={self.per_level_scale:.6g}, n_params={lv.n_params}, "
                f"finest_resolution={lv.resolutions[-1]}, backend={self.backend!r}")


def default_per_level_scale(n_levels: int, base_resolution: int, finest_resolution: int) -> float:
    """The per-level scale that grows base_resolution to finest_resolution over n_levels (instant-ngp's b)."""
    if n_levels <= 1:
        return 1.0
    return math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (n_levels - 1))
