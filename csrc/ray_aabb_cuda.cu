#include "ray_aabb_launchers.h"

#include "fastdream/cuda_launch.h"
#include "fastdream/ray_aabb.h"

namespace fastdream {
namespace {

__global__ void ray_aabb_kernel(const float* __restrict__ rays_o, const float* __restrict__ rays_d,
                                const float* __restrict__ aabb, int64_t n_rays, float* t_near, float* t_far,
                                bool* hit) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n_rays) return;
  float box[6];
#pragma unroll
  for (int k = 0; k < 6; ++k) box[k] = aabb[k];
  hit[i] = ray_aabb(load_f3(rays_o + 3 * i), load_f3(rays_d + 3 * i), box, t_near + i, t_far + i);
}

}  // namespace

const char* ray_aabb_intersect_cuda(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                                    float* t_near, float* t_far, bool* hit, void* stream) {
  if (n_rays == 0) return nullptr;
  ray_aabb_kernel<<<blocks_for(n_rays), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      rays_o, rays_d, aabb, n_rays, t_near, t_far, hit);
  return launch_error();
}

}  // namespace fastdream
