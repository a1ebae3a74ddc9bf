#include "shade_launchers.h"

#include "fastdream/cuda_launch.h"
#include "fastdream/shade.h"

namespace fastdream {
namespace {

__global__ void shade_forward_kernel(int64_t n, const float* __restrict__ albedo, const float* __restrict__ normals,
                                     const float* __restrict__ positions, const float* __restrict__ light,
                                     float ambient, int mode, float* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  shade_forward_one<float>(i, albedo, normals, positions, light, ambient, mode, out);
}

__global__ void shade_backward_kernel(int64_t n, const float* __restrict__ g_out, const float* __restrict__ albedo,
                                      const float* __restrict__ normals, const float* __restrict__ positions,
                                      const float* __restrict__ light, float ambient, int mode, float* grad_albedo,
                                      float* grad_normals) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  shade_backward_one<float>(i, g_out, albedo, normals, positions, light, ambient, mode, grad_albedo, grad_normals);
}

}  // namespace

const char* shade_forward_cuda(int64_t n, const float* albedo, const float* normals, const float* positions,
                               const float* light, float ambient, int mode, float* out, void* stream) {
  if (n == 0) return nullptr;
  shade_forward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      n, albedo, normals, positions, light, ambient, mode, out);
  return launch_error();
}

const char* shade_backward_cuda(int64_t n, const float* g_out, const float* albedo, const float* normals,
                                const float* positions, const float* light, float ambient, int mode,
                                float* grad_albedo, float* grad_normals, void* stream) {
  if (n == 0) return nullptr;
  shade_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      n, g_out, albedo, normals, positions, light, ambient, mode, grad_albedo, grad_normals);
  return launch_error();
}

}  // namespace fastdream
