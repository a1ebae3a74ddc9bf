// Volume compositing over packed samples, one ray at a time, shared by the CPU and CUDA kernels.
//
// Samples of ray r are ray_indices[i] == r for i in [begin, end) (the segment found by `ray_segments`); an index
// outside [0, n_rays) marks padding and is skipped. s_i = sigma_i * (t_end_i - t_start_i), T_i = exp(-sum_{j<i} s_j),
// alpha_i = 1 - exp(-s_i), w_i = T_i * alpha_i. Once T_i < thre the ray stops (w = 0 from there on).
// The backward passes need only the inputs and the per-ray outputs: with g_i the upstream gradient per unit weight,
// dL/ds_i = T_{i+1} g_i - sum_{k>i} w_k g_k, and that suffix sum is (sum over the ray) - (running prefix).
#pragma once

#include "fastdream/common.h"

namespace fastdream {

template <typename T>
FD_HD T fd_exp(T x) {
  return exp(x);
}
template <>
FD_HD float fd_exp<float>(float x) {
  return expf(x);
}

// One ray forward. Any of weights / color / opacity / depth may be null.
template <typename T>
FD_HD void composite_ray_forward(int64_t r, int64_t begin, int64_t end, const int64_t* ray, const T* sigmas,
                                 const T* rgbs, const T* ts, const T* te, T thre, T* weights, T* color, T* opacity,
                                 T* depth) {
  T S = 0, c0 = 0, c1 = 0, c2 = 0, op = 0, dep = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (ray[i] != r) continue;
    const T trans = fd_exp<T>(-S);
    if (trans < thre) break;
    const T s = sigmas[i] * (te[i] - ts[i]);
    const T w = trans * (T(1) - fd_exp<T>(-s));
    if (weights) weights[i] = w;
    if (rgbs) {
      c0 += w * rgbs[3 * i];
      c1 += w * rgbs[3 * i + 1];
      c2 += w * rgbs[3 * i + 2];
    }
    op += w;
    dep += w * (T(0.5) * (ts[i] + te[i]));
    S += s;
  }
  if (color) {
    color[3 * r] = c0;
    color[3 * r + 1] = c1;
    color[3 * r + 2] = c2;
  }
  if (opacity) opacity[r] = op;
  if (depth) depth[r] = dep;
}

// The walk both backward passes share: for each live sample i of ray r (in order, until T < thre) it recomputes
// the forward weight w_i, asks sample_grad(i, w_i) for g_i (which may also store other gradients of sample i) and
// writes grad_sigmas[i] = dt_i * (T_{i+1} g_i - sum_{k>i} w_k g_k), the suffix sum being total - prefix.
template <typename T, typename SampleGrad>
FD_HD void sigma_grad_walk(int64_t r, int64_t begin, int64_t end, const int64_t* ray, const T* sigmas, const T* ts,
                           const T* te, T thre, T total, SampleGrad sample_grad, T* grad_sigmas) {
  T S = 0, prefix = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (ray[i] != r) continue;
    const T trans = fd_exp<T>(-S);
    if (trans < thre) break;
    const T dt = te[i] - ts[i];
    const T s = sigmas[i] * dt;
    const T trans_next = fd_exp<T>(-(S + s));
    const T w = trans * (T(1) - fd_exp<T>(-s));  // as in the forward pass
    const T g = sample_grad(i, w);
    prefix += w * g;
    grad_sigmas[i] = dt * (trans_next * g - (total - prefix));
    S += s;
  }
}

// One ray backward of (color, opacity, depth). Grad outputs may be null (treated as zero); grad_rgbs may be null.
template <typename T>
FD_HD void composite_ray_backward(int64_t r, int64_t begin, int64_t end, const int64_t* ray, const T* sigmas,
                                  const T* rgbs, const T* ts, const T* te, T thre, const T* color, const T* opacity,
                                  const T* depth, const T* g_color, const T* g_opacity, const T* g_depth,
                                  T* grad_sigmas, T* grad_rgbs) {
  const T gc0 = g_color ? g_color[3 * r] : T(0), gc1 = g_color ? g_color[3 * r + 1] : T(0),
          gc2 = g_color ? g_color[3 * r + 2] : T(0);
  const T go = g_opacity ? g_opacity[r] : T(0), gd = g_depth ? g_depth[r] : T(0);
  // sum_k w_k g_k, read off the forward outputs
  const T total = gc0 * color[3 * r] + gc1 * color[3 * r + 1] + gc2 * color[3 * r + 2] + go * opacity[r] +
                  gd * depth[r];
  sigma_grad_walk<T>(r, begin, end, ray, sigmas, ts, te, thre, total, [&](int64_t i, T w) {
    if (grad_rgbs) {
      grad_rgbs[3 * i] = w * gc0;
      grad_rgbs[3 * i + 1] = w * gc1;
      grad_rgbs[3 * i + 2] = w * gc2;
    }
    return gc0 * rgbs[3 * i] + gc1 * rgbs[3 * i + 1] + gc2 * rgbs[3 * i + 2] + go + gd * (T(0.5) * (ts[i] + te[i]));
  }, grad_sigmas);
}

// One ray backward of render_weights, given the forward weights.
template <typename T>
FD_HD void weights_ray_backward(int64_t r, int64_t begin, int64_t end, const int64_t* ray, const T* sigmas,
                                const T* ts, const T* te, T thre, const T* weights, const T* g_weights,
                                T* grad_sigmas) {
  T total = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (ray[i] == r) total += weights[i] * g_weights[i];
  }
  sigma_grad_walk<T>(r, begin, end, ray, sigmas, ts, te, thre, total, [&](int64_t i, T) { return g_weights[i]; },
                     grad_sigmas);
}

}  // namespace fastdream
