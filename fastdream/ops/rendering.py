"""Volume rendering over packed samples (nerfacc's layout): weights, compositing with a hand-written backward
pass, and shading.

Packed samples: `ray_indices` [N] int64 sorted by ray (then t), `t_starts`, `t_ends` [N]. Any ray index outside
[0, n_rays) is padding (the fixed-capacity marcher writes -1) and contributes nothing, so the ops accept padded
buffers with no host sync. Unsorted ray indices give wrong results (never an out-of-bounds access).
"""
from __future__ import annotations

import torch

from fastdream import _backend
from fastdream.ops._checks import check_same_device, check_tensor

__all__ = ["render_weights", "composite", "shade", "SHADING_MODES"]

# The one list of shading modes; the kernels take a mode's index in it.
SHADING_MODES = ("albedo", "lambertian", "textureless")


def _check_samples(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre):
    check_tensor("sigmas", sigmas, shape=(None,))
    if sigmas.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"sigmas must be float32 (or float64 on the CPU), got {sigmas.dtype}")
    if sigmas.dtype == torch.float64 and sigmas.device.type != "cpu":
        raise ValueError("float64 is supported on the CPU only; use float32 on the GPU")
    n = sigmas.shape[0]
    check_tensor("t_starts", t_starts, shape=(n,), dtype=sigmas.dtype)
    check_tensor("t_ends", t_ends, shape=(n,), dtype=sigmas.dtype)
    check_tensor("ray_indices", ray_indices, shape=(n,), dtype=torch.int64)
    check_same_device(sigmas=sigmas, t_starts=t_starts, t_ends=t_ends, ray_indices=ray_indices)
    if isinstance(n_rays, bool) or not isinstance(n_rays, int) or n_rays < 0:
        raise ValueError(f"n_rays must be an int >= 0, got {n_rays!r}")
    if not 0.0 <= float(transmittance_thre) <= 1.0:
        raise ValueError(f"transmittance_thre must be in [0, 1], got {transmittance_thre}")


class _RenderWeights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, t_starts, t_ends, ray_indices, n_rays, thre):
        weights = _backend.load().composite_forward(sigmas, None, t_starts, t_ends, ray_indices, n_rays, thre,
                                                    True)[3]
        ctx.save_for_backward(sigmas, t_starts, t_ends, ray_indices, weights)
        ctx.n_rays, ctx.thre = n_rays, thre
        return weights

    @staticmethod
    def backward(ctx, grad_weights):
        sigmas, t_starts, t_ends, ray_indices, weights = ctx.saved_tensors
        grad = _backend.load().render_weights_backward(grad_weights.contiguous(), weights, sigmas, t_starts, t_ends,
                                                       ray_indices, ctx.n_rays, ctx.thre)
        return grad, None, None, None, None, None


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, thre):
        colors, opacities, depths, _ = _backend.load().composite_forward(sigmas, rgbs, t_starts, t_ends, ray_indices,
                                                                         n_rays, thre, False)
        ctx.save_for_backward(sigmas, rgbs, t_starts, t_ends, ray_indices, colors, opacities, depths)
        ctx.thre = thre
        return colors, opacities, depths

    @staticmethod
    def backward(ctx, g_colors, g_opacities, g_depths):
        sigmas, rgbs, t_starts, t_ends, ray_indices, colors, opacities, depths = ctx.saved_tensors
        g_colors = torch.zeros_like(colors) if g_colors is None else g_colors.contiguous()
        g_opacities = torch.zeros_like(opacities) if g_opacities is None else g_opacities.contiguous()
        g_depths = torch.zeros_like(depths) if g_depths is None else g_depths.contiguous()
        g_sigmas, g_rgbs = _backend.load().composite_backward(g_colors, g_opacities, g_depths, sigmas, rgbs,
                                                              t_starts, t_ends, ray_indices, colors, opacities,
                                                              depths, ctx.thre)
        return (g_sigmas if ctx.needs_input_grad[0] else None, g_rgbs if ctx.needs_input_grad[1] else None,
                None, None, None, None, None)


def render_weights(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor,
                   n_rays: int, transmittance_thre: float = 0.0) -> torch.Tensor:
    """Volume-rendering weights w_i = T_i * alpha_i per sample: [N], differentiable w.r.t. sigmas.

    sigmas, t_starts, t_ends: [N] float32 (float64 on the CPU); ray_indices: [N] int64 sorted, padding outside
    [0, n_rays). alpha_i = 1 - exp(-sigma_i (t_end_i - t_start_i)), T_i = prod_{j<i} (1 - alpha_j) within the ray;
    samples whose T_i < transmittance_thre get weight 0.
    """
    _check_samples(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre)
    return _RenderWeights.apply(sigmas.contiguous(), t_starts.contiguous(), t_ends.contiguous(),
                                ray_indices.contiguous(), n_rays, float(transmittance_thre))


def composite(sigmas: torch.Tensor, rgbs: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
              ray_indices: torch.Tensor, n_rays: int, transmittance_thre: float = 0.0):
    """Composite packed samples into (colors [n_rays,3], opacities [n_rays], depths [n_rays]).

    colors = sum w_i rgb_i, opacities = sum w_i, depths = sum w_i (t_start_i + t_end_i) / 2 (not normalised by
    opacity); empty rays give zeros. Differentiable w.r.t. sigmas and rgbs; the backward pass recomputes
    transmittance from the inputs and the per-ray outputs (no per-sample state is saved).
    """
    _check_samples(sigmas, t_starts, t_ends, ray_indices, n_rays, transmittance_thre)
    check_tensor("rgbs", rgbs, shape=(sigmas.shape[0], 3), dtype=sigmas.dtype)
    check_same_device(sigmas=sigmas, rgbs=rgbs)
    return _Composite.apply(sigmas.contiguous(), rgbs.contiguous(), t_starts.contiguous(), t_ends.contiguous(),
                            ray_indices.contiguous(), n_rays, float(transmittance_thre))


class _Shade(torch.autograd.Function):
    @staticmethod
    def forward(ctx, albedo, normals, positions, light, ambient, mode):
        ctx.save_for_backward(albedo, normals, positions, light)
        ctx.ambient, ctx.mode = ambient, mode
        return _backend.load().shade_forward(albedo, normals, positions, light, ambient, mode)

    @staticmethod
    def backward(ctx, grad_out):
        albedo, normals, positions, light = ctx.saved_tensors
        ga, gn = _backend.load().shade_backward(grad_out.contiguous(), albedo, normals, positions, light,
                                                ctx.ambient, ctx.mode)
        return (ga if ctx.needs_input_grad[0] else None, gn if ctx.needs_input_grad[1] else None,
                None, None, None, None)


def shade(albedo: torch.Tensor, normals: torch.Tensor | None, positions: torch.Tensor | None,
          light_position, ambient_ratio: float = 0.1, mode: str = "albedo") -> torch.Tensor:
    """Shade samples: [N,3]. mode "albedo" returns albedo; "lambertian" albedo * (a + (1 - a) max(0, n.l)) with
    l the unit vector from the point to light_position [3]; "textureless" the same with white albedo.

    albedo, normals, positions: [N,3] float32 (float64 on the CPU); differentiable w.r.t. albedo and normals.
    normals, positions and light_position may be None in "albedo" mode.
    """
    if mode not in SHADING_MODES:
        raise ValueError(f"mode must be one of {', '.join(SHADING_MODES)}, got {mode!r}")
    check_tensor("albedo", albedo, shape=(None, 3))
    if albedo.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"albedo must be float32 (or float64 on the CPU), got {albedo.dtype}")
    if not 0.0 <= float(ambient_ratio) <= 1.0:
        raise ValueError(f"ambient_ratio must be in [0, 1], got {ambient_ratio}")
    if mode == "albedo":
        return albedo
    if normals is None or positions is None or light_position is None:
        raise ValueError(f"mode {mode!r} needs normals, positions and light_position")
    check_tensor("normals", normals, shape=tuple(albedo.shape), dtype=albedo.dtype)
    check_tensor("positions", positions, shape=tuple(albedo.shape), dtype=albedo.dtype)
    light = torch.as_tensor(light_position, dtype=albedo.dtype, device=albedo.device).reshape(-1)
    check_tensor("light_position", light, shape=(3,))
    check_same_device(albedo=albedo, normals=normals, positions=positions)
    return _Shade.apply(albedo.contiguous(), normals.contiguous(), positions.contiguous(), light.contiguous(),
                        float(ambient_ratio), SHADING_MODES.index(mode))
