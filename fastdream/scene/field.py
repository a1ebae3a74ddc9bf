"""The scene field: hash-grid encoding -> small MLP -> density (sigma) and albedo, with cheap normals."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastdream.scene.encoding import HashGridEncoding, default_per_level_scale

__all__ = ["Field", "trunc_exp"]

DENSITY_ACTIVATIONS = ("trunc_exp", "softplus")
BLOB_SHAPES = ("gaussian", "cone")  # initial density bias: gaussian > 0 everywhere; cone < 0 outside blob_radius

# A regular tetrahedron (alternate corners of the cube [-1, 1]^3): sum_i v_i = 0 and sum_i v_i v_i^T = 4 I,
# so grad f(x) ~= sum_i v_i f(x + h v_i) / (4 h), with an O(h) error from the mixed second derivatives.
_TETRA = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))


class _TruncExp(torch.autograd.Function):
    """exp with a clamped forward (no fp32 overflow) and a gradient clamped to exp(+-15) (stable-dreamfusion)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=15.0))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15.0, 15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """exp(min(x, 15)) with gradient exp(clamp(x, -15, 15)); computed in float32 at least."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return _TruncExp.apply(x)


class Field(nn.Module):
    """Density and albedo of the scene inside `aabb`.

    forward(x [N, 3] world positions) -> (sigma [N] >= 0, albedo [N, 3] in [0, 1]), float32 (float64 if the
    module is). Any positions are accepted: outside the aabb (and NaN) sigma is 0 and albedo finite.

    Normals use tetrahedral finite differences of sigma (4 evaluations, step `normal_eps` in world units)
    rather than analytic gradients: they are built from ordinary forward passes, so they are differentiable
    w.r.t. every parameter (for an orientation loss) without a second derivative of the encoding kernel or
    the MLP, they work with every backend (tcnn included), and they are 4 evaluations instead of the 6 of
    central differences. The step also low-pass filters the finest hash levels, which keeps normals smooth.
    """

    # |grad of the pre-activation density| (per world unit) below which a normal is reported as zero.
    NORMAL_MIN_GRAD = 1e-3

    def __init__(self, aabb: Sequence[float] | torch.Tensor = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), *,
                 n_levels: int = 16, n_features_per_level: int = 2, log2_hashmap_size: int = 19,
                 base_resolution: int = 16, finest_resolution: int = 2048, per_level_scale: float | None = None,
                 hidden_dim: int = 64, n_hidden_layers: int = 2, density_activation: str = "trunc_exp",
                 blob_density: float = 10.0, blob_radius: float = 0.5, blob_shape: str = "gaussian",
                 normal_eps: float = 1e-2, backend: str = "auto"):
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).flatten()
        if aabb.shape != (6,) or not torch.isfinite(aabb).all() or not (aabb[3:] > aabb[:3]).all():
            raise ValueError(f"aabb must be 6 finite numbers (xmin, ymin, zmin, xmax, ymax, zmax) with max > min, "
                             f"got {aabb.tolist()}")
        if density_activation not in DENSITY_ACTIVATIONS:
            raise ValueError(f"density_activation must be one of {DENSITY_ACTIVATIONS}, got {density_activation!r}")
        if not normal_eps > 0:
            raise ValueError(f"normal_eps must be > 0, got {normal_eps!r}")
        if not blob_radius > 0:
            raise ValueError(f"blob_radius must be > 0, got {blob_radius!r}")
        if blob_shape not in BLOB_SHAPES:
            raise ValueError(f"blob_shape must be one of {BLOB_SHAPES}, got {blob_shape!r}")
        if hidden_dim < 1 or n_hidden_layers < 1:
            raise ValueError(f"hidden_dim and n_hidden_layers must be >= 1, got {hidden_dim}, {n_hidden_layers}")
        self.register_buffer("aabb", aabb)
        # On the module's device, so normals need no host-to-device copy (a host sync) per call.
        self.register_buffer("tetra", torch.tensor(_TETRA, dtype=torch.float32), persistent=False)
        if per_level_scale is None:
            per_level_scale = default_per_level_scale(n_levels, base_resolution, finest_resolution)
        self.encoding = HashGridEncoding(3, n_levels, n_features_per_level, log2_hashmap_size, base_resolution,
                                         per_level_scale, backend=backend)
        self.backend = backend
        self.density_activation = density_activation
        self.blob_density = float(blob_density)
        self.blob_radius = float(blob_radius)
        self.blob_shape = blob_shape
        self.normal_eps = float(normal_eps)
        n_in = self.encoding.n_output_dims
        if backend == "tcnn":
            import tinycudann as tcnn  # importable: HashGridEncoding(backend="tcnn") checked it

            self.mlp = tcnn.Network(n_in, 4, {"otype": "FullyFusedMLP", "activation": "ReLU",
                                              "output_activation": "None", "n_neurons": hidden_dim,
                                              "n_hidden_layers": n_hidden_layers})
        else:
            layers: list[nn.Module] = []
            dims = [n_in] + [hidden_dim] * n_hidden_layers
            for a, b in zip(dims[:-1], dims[1:]):
                layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            layers.append(nn.Linear(dims[-1], 4))
            self.mlp = nn.Sequential(*layers)

    # -- the shared evaluation -------------------------------------------------------------------------
    def _evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sigma [M], albedo [M, 3], log_density [M]) for world positions x [M, 3].

        log_density is the pre-activation density (MLP output + blob) at x clamped into the aabb: sigma is a
        monotonic function of it inside the box, so both have the same gradient direction.
        """
        if x.dim() != 2 or x.shape[-1] != 3:
            raise ValueError(f"x must have shape [N, 3], got {list(x.shape)}")
        dtype = self.aabb.dtype
        x = x.to(dtype)
        lo, hi = self.aabb[:3], self.aabb[3:]
        unit = (x - lo) / (hi - lo)
        inside = ((unit >= 0) & (unit <= 1)).all(-1)  # NaN is outside
        # Everything after this sees finite, in-box coordinates, so masked-out samples cannot leak NaN/inf
        # into the parameter gradients.
        unit = torch.nan_to_num(unit, nan=0.5).clamp(0.0, 1.0)
        feats = self.encoding(unit)
        h = self.mlp(feats)
        h = h.to(dtype if dtype == torch.float64 else torch.float32)
        raw = h[:, 0]
        if self.blob_density != 0.0:
            centred = (unit - 0.5) * (hi - lo)  # world offset from the aabb centre
            r2 = (centred * centred).sum(-1)
            if self.blob_shape == "gaussian":
                raw = raw + self.blob_density * torch.exp(-r2 / (2 * self.blob_radius ** 2))
            else:  # "cone": positive inside blob_radius, negative outside, so the box starts empty there
                raw = raw + self.blob_density * (1.0 - torch.sqrt(r2 + 1e-12) / self.blob_radius)
        sigma = trunc_exp(raw) if self.density_activation == "trunc_exp" else F.softplus(raw)
        sigma = torch.where(inside, sigma, torch.zeros_like(sigma))
        albedo = torch.sigmoid(h[:, 1:4])
        return sigma, albedo, raw

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, 3] world positions -> (sigma [N] >= 0, albedo [N, 3] in [0, 1])."""
        return self._evaluate(x)[:2]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] -> sigma [N] (0 outside the aabb)."""
        return self._evaluate(x)[0]

    def _tetra_offsets(self, x: torch.Tensor) -> torch.Tensor:
        v = self.tetra.to(device=x.device, dtype=x.dtype)
        return (x.unsqueeze(0) + self.normal_eps * v.unsqueeze(1)).reshape(-1, 3)  # [4N, 3], vertex-major

    def _normals_from(self, log_density4: torch.Tensor, n: int) -> torch.Tensor:
        # Differences of the pre-activation density, not of sigma: same direction (sigma is monotonic in it),
        # but without exp's dynamic range, whose gradients overflow float16 under autocast.
        v = self.tetra.to(device=log_density4.device, dtype=log_density4.dtype)
        grad = torch.einsum("kn,kd->nd", log_density4.reshape(4, n), v) / (4 * self.normal_eps)
        norm = grad.norm(dim=-1, keepdim=True)
        # Where the density is (nearly) flat the direction is noise and d(normal)/d(grad) ~ 1/|grad| would
        # flood the parameters (and overflow fp16): such points get a zero normal and no gradient.
        flat = norm <= self.NORMAL_MIN_GRAD
        safe = torch.where(flat, torch.ones_like(norm), norm)
        return torch.where(flat, torch.zeros_like(grad), -grad / safe)

    def normals(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3] -> unit outward normals [N, 3] (direction of -grad sigma; zero where the density is flat).

        Tetrahedral differences: 4 density evaluations in one batch, differentiable w.r.t. the parameters.
        Stencil points outside the aabb are clamped onto it, so the box faces do not show up as surfaces.
        """
        x = x.to(self.aabb.dtype)
        return self._normals_from(self._evaluate(self._tetra_offsets(x))[2], x.shape[0])

    def forward_with_normals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: [N, 3] -> (sigma [N], albedo [N, 3], normals [N, 3]): one batched pass over 5N points."""
        x = x.to(self.aabb.dtype)
        n = x.shape[0]
        sigma, albedo, log_density = self._evaluate(torch.cat([x, self._tetra_offsets(x)], dim=0))
        return sigma[:n], albedo[:n], self._normals_from(log_density[n:], n)

    def extra_repr(self) -> str:
        return (f"aabb={self.aabb.tolist()}, density_activation={self.density_activation!r}, "
                f"blob_density={self.blob_density}, blob_radius={self.blob_radius}, blob_shape={self.blob_shape}, "
                f"normal_eps={self.normal_eps}")
