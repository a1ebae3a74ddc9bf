// Hash-grid encoding CUDA kernels: one thread per (point, level), level = blockIdx.y so a block's
// threads share one level's table; a corner's F features are one vector load; gradients w.r.t. the
// table accumulate in fp32 with atomics.
#include "hash_encode_launchers.h"

#include <cuda_fp16.h>

#include "fastdream/cuda_launch.h"

namespace fastdream {
namespace {

template <typename T, int F>
struct alignas(sizeof(T) * F) Vec {
  T v[F];
};

template <int F>
__device__ __forceinline__ void load_features(const float* p, float* out) {
  const Vec<float, F> v = *reinterpret_cast<const Vec<float, F>*>(p);
#pragma unroll
  for (int f = 0; f < F; ++f) out[f] = v.v[f];
}

template <int F>
__device__ __forceinline__ void load_features(const __half* p, float* out) {
  const Vec<__half, F> v = *reinterpret_cast<const Vec<__half, F>*>(p);
#pragma unroll
  for (int f = 0; f < F; ++f) out[f] = __half2float(v.v[f]);
}

template <int F>
__device__ __forceinline__ void atomic_add_features(float* dst, const float* val) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(CUDART_VERSION) && CUDART_VERSION >= 12080
  // sm_90 has vector float atomics: one instruction per 2 or 4 features.
  if constexpr (F % 4 == 0) {
#pragma unroll
    for (int f = 0; f < F; f += 4)
      atomicAdd(reinterpret_cast<float4*>(dst + f), make_float4(val[f], val[f + 1], val[f + 2], val[f + 3]));
  } else if constexpr (F == 2) {
    atomicAdd(reinterpret_cast<float2*>(dst), make_float2(val[0], val[1]));
  } else {
    atomicAdd(dst, val[0]);
  }
#else
#pragma unroll
  for (int f = 0; f < F; ++f) atomicAdd(dst + f, val[f]);
#endif
}

template <typename P, int F>
__global__ void __launch_bounds__(kThreads) hash_forward_kernel(const float* __restrict__ x,
                                                                const P* __restrict__ params, int64_t n,
                                                                const HashLevels levels, float* __restrict__ out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int l = blockIdx.y;
  const HashLevel lv = levels.level[l];
  const float xi[3] = {x[3 * i], x[3 * i + 1], x[3 * i + 2]};
  uint32_t corner[3];
  float frac[3];
  hash_cell(xi, lv, corner, frac);
  float acc[F] = {};
#pragma unroll
  for (int c = 0; c < 8; ++c) {
    float w;
    const uint32_t idx = hash_corner(corner, frac, c, lv, &w);
    float feat[F];
    load_features<F>(params + lv.param_offset + static_cast<int64_t>(idx) * F, feat);
#pragma unroll
    for (int f = 0; f < F; ++f) acc[f] = fmaf(w, feat[f], acc[f]);
  }
  Vec<float, F> o;
#pragma unroll
  for (int f = 0; f < F; ++f) o.v[f] = acc[f];
  *reinterpret_cast<Vec<float, F>*>(out + i * levels.n_levels * F + l * F) = o;
}

template <typename P, int F>
__global__ void __launch_bounds__(kThreads) hash_backward_kernel(const float* __restrict__ grad_out,
                                                                 const float* __restrict__ x,
                                                                 const P* __restrict__ params, int64_t n,
                                                                 const HashLevels levels, float* grad_params,
                                                                 float* grad_x) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int l = blockIdx.y;
  const HashLevel lv = levels.level[l];
  const Vec<float, F> gv = *reinterpret_cast<const Vec<float, F>*>(grad_out + i * levels.n_levels * F + l * F);
  bool any = false;
#pragma unroll
  for (int f = 0; f < F; ++f) any |= gv.v[f] != 0.0f;
  if (!any) return;  // padded or masked samples cost no atomics
  const float xi[3] = {x[3 * i], x[3 * i + 1], x[3 * i + 2]};
  uint32_t corner[3];
  float frac[3];
  hash_cell(xi, lv, corner, frac);
  float dx[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int c = 0; c < 8; ++c) {
    float w;
    const uint32_t idx = hash_corner(corner, frac, c, lv, &w);
    const int64_t base = lv.param_offset + static_cast<int64_t>(idx) * F;
    if (grad_params != nullptr) {
      float val[F];
#pragma unroll
      for (int f = 0; f < F; ++f) val[f] = w * gv.v[f];
      atomic_add_features<F>(grad_params + base, val);
    }
    if (grad_x != nullptr) {
      float feat[F];
      load_features<F>(params + base, feat);
      float dot = 0.0f;
#pragma unroll
      for (int f = 0; f < F; ++f) dot = fmaf(gv.v[f], feat[f], dot);
      float dw[3];
      hash_corner_dweight(frac, c, dw);
#pragma unroll
      for (int d = 0; d < 3; ++d) dx[d] = fmaf(dot, dw[d], dx[d]);
    }
  }
  if (grad_x != nullptr) {
#pragma unroll
    for (int d = 0; d < 3; ++d)
      if (hash_in_range(xi[d])) atomicAdd(grad_x + 3 * i + d, dx[d] * lv.scale);
  }
}

template <typename P>
const char* launch_forward(const float* x, const P* params, int64_t n, const HashLevels& lv, float* out,
                           cudaStream_t stream) {
  const dim3 grid(blocks_for(n), lv.n_levels);
  switch (lv.n_features) {
    case 1: hash_forward_kernel<P, 1><<<grid, kThreads, 0, stream>>>(x, params, n, lv, out); break;
    case 2: hash_forward_kernel<P, 2><<<grid, kThreads, 0, stream>>>(x, params, n, lv, out); break;
    case 4: hash_forward_kernel<P, 4><<<grid, kThreads, 0, stream>>>(x, params, n, lv, out); break;
    case 8: hash_forward_kernel<P, 8><<<grid, kThreads, 0, stream>>>(x, params, n, lv, out); break;
    default: return "hash_encode: n_features must be 1, 2, 4 or 8";
  }
  return launch_error();
}

template <typename P>
const char* launch_backward(const float* grad_out, const float* x, const P* params, int64_t n, const HashLevels& lv,
                            float* grad_params, float* grad_x, cudaStream_t stream) {
  const dim3 grid(blocks_for(n), lv.n_levels);
  switch (lv.n_features) {
    case 1:
      hash_backward_kernel<P, 1><<<grid, kThreads, 0, stream>>>(grad_out, x, params, n, lv, grad_params, grad_x);
      break;
    case 2:
      hash_backward_kernel<P, 2><<<grid, kThreads, 0, stream>>>(grad_out, x, params, n, lv, grad_params, grad_x);
      break;
    case 4:
      hash_backward_kernel<P, 4><<<grid, kThreads, 0, stream>>>(grad_out, x, params, n, lv, grad_params, grad_x);
      break;
    case 8:
      hash_backward_kernel<P, 8><<<grid, kThreads, 0, stream>>>(grad_out, x, params, n, lv, grad_params, grad_x);
      break;
    default: return "hash_encode: n_features must be 1, 2, 4 or 8";
  }
  return launch_error();
}

}  // namespace

const char* hash_encode_forward_cuda(const float* x, const void* params, bool half_params, int64_t n,
                                     const HashLevels& levels, float* out, void* stream) {
  if (n == 0) return nullptr;
  if (n > int64_t{2147483647} * kThreads) return "hash_encode: too many points for one launch";
  const auto s = static_cast<cudaStream_t>(stream);
  return half_params ? launch_forward(x, static_cast<const __half*>(params), n, levels, out, s)
                     : launch_forward(x, static_cast<const float*>(params), n, levels, out, s);
}

const char* hash_encode_backward_cuda(const float* grad_out, const float* x, const void* params, bool half_params,
                                      int64_t n, const HashLevels& levels, float* grad_params, float* grad_x,
                                      void* stream) {
  if (n == 0 || (grad_params == nullptr && grad_x == nullptr)) return nullptr;
  if (n > int64_t{2147483647} * kThreads) return "hash_encode: too many points for one launch";
  const auto s = static_cast<cudaStream_t>(stream);
  return half_params ? launch_backward(grad_out, x, static_cast<const __half*>(params), n, levels, grad_params,
                                       grad_x, s)
                     : launch_backward(grad_out, x, static_cast<const float*>(params), n, levels, grad_params,
                                       grad_x, s);
}

}  // namespace fastdream
