#include "composite_launchers.h"

#include "fastdream/composite.h"
#include "fastdream/cuda_launch.h"

namespace fastdream {
namespace {

__global__ void segments_kernel(const int64_t* __restrict__ ray, int64_t n_samples, int64_t n_rays,
                                int64_t* seg_begin, int64_t* seg_end) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n_samples) return;
  const int64_t r = ray[i];
  if (r < 0 || r >= n_rays) return;
  if (i == 0 || ray[i - 1] != r) seg_begin[r] = i;
  if (i == n_samples - 1 || ray[i + 1] != r) seg_end[r] = i + 1;
}

__global__ void forward_kernel(const int64_t* __restrict__ seg_begin, const int64_t* __restrict__ seg_end,
                               int64_t n_rays, const int64_t* __restrict__ ray, const float* __restrict__ sigmas,
                               const float* __restrict__ rgbs, const float* __restrict__ ts,
                               const float* __restrict__ te, float thre, float* weights, float* color,
                               float* opacity, float* depth) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_forward<float>(r, seg_begin[r], seg_end[r], ray, sigmas, rgbs, ts, te, thre, weights, color, opacity,
                               depth);
}

__global__ void backward_kernel(const int64_t* __restrict__ seg_begin, const int64_t* __restrict__ seg_end,
                                int64_t n_rays, const int64_t* __restrict__ ray, const float* __restrict__ sigmas,
                                const float* __restrict__ rgbs, const float* __restrict__ ts,
                                const float* __restrict__ te, float thre, const float* __restrict__ color,
                                const float* __restrict__ opacity, const float* __restrict__ depth,
                                const float* __restrict__ g_color, const float* __restrict__ g_opacity,
                                const float* __restrict__ g_depth, float* grad_sigmas, float* grad_rgbs) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_backward<float>(r, seg_begin[r], seg_end[r], ray, sigmas, rgbs, ts, te, thre, color, opacity, depth,
                                g_color, g_opacity, g_depth, grad_sigmas, grad_rgbs);
}

__global__ void weights_backward_kernel(const int64_t* __restrict__ seg_begin, const int64_t* __restrict__ seg_end,
                                        int64_t n_rays, const int64_t* __restrict__ ray,
                                        const float* __restrict__ sigmas, const float* __restrict__ ts,
                                        const float* __restrict__ te, float thre, const float* __restrict__ weights,
                                        const float* __restrict__ g_weights, float* grad_sigmas) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= n_rays) return;
  weights_ray_backward<float>(r, seg_begin[r], seg_end[r], ray, sigmas, ts, te, thre, weights, g_weights,
                              grad_sigmas);
}

constexpr int kRayThreads = 128;

}  // namespace

const char* ray_segments_cuda(const int64_t* ray, int64_t n_samples, int64_t n_rays, int64_t* seg_begin,
                              int64_t* seg_end, void* stream) {
  if (n_samples == 0 || n_rays == 0) return nullptr;
  segments_kernel<<<blocks_for(n_samples), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(ray, n_samples, n_rays,
                                                                                              seg_begin, seg_end);
  return launch_error();
}

const char* composite_forward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                   const int64_t* ray, const float* sigmas, const float* rgbs, const float* ts,
                                   const float* te, float thre, float* weights, float* color, float* opacity,
                                   float* depth, void* stream) {
  if (n_rays == 0) return nullptr;
  forward_kernel<<<blocks_for(n_rays, kRayThreads), kRayThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      seg_begin, seg_end, n_rays, ray, sigmas, rgbs, ts, te, thre, weights, color, opacity, depth);
  return launch_error();
}

const char* composite_backward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                    const int64_t* ray, const float* sigmas, const float* rgbs, const float* ts,
                                    const float* te, float thre, const float* color, const float* opacity,
                                    const float* depth, const float* g_color, const float* g_opacity,
                                    const float* g_depth, float* grad_sigmas, float* grad_rgbs, void* stream) {
  if (n_rays == 0) return nullptr;
  backward_kernel<<<blocks_for(n_rays, kRayThreads), kRayThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      seg_begin, seg_end, n_rays, ray, sigmas, rgbs, ts, te, thre, color, opacity, depth, g_color, g_opacity, g_depth,
      grad_sigmas, grad_rgbs);
  return launch_error();
}

const char* weights_backward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                  const int64_t* ray, const float* sigmas, const float* ts, const float* te,
                                  float thre, const float* weights, const float* g_weights, float* grad_sigmas,
                                  void* stream) {
  if (n_rays == 0) return nullptr;
  weights_backward_kernel<<<blocks_for(n_rays, kRayThreads), kRayThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      seg_begin, seg_end, n_rays, ray, sigmas, ts, te, thre, weights, g_weights, grad_sigmas);
  return launch_error();
}

}  // namespace fastdream
