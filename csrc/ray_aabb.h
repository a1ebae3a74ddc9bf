// ray_aabb_intersect: launchers for the CPU and CUDA kernels.
#pragma once

#include <cstdint>

namespace fastdream {

void ray_aabb_intersect_cpu(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                            float* t_near, float* t_far, bool* hit);

#ifdef FASTDREAM_WITH_CUDA
const char* ray_aabb_intersect_cuda(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                                    float* t_near, float* t_far, bool* hit, void* stream);
#endif

}  // namespace fastdream
