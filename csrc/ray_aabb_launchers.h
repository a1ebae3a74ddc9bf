// ray_aabb_intersect: launchers for the CPU and CUDA kernels.
#pragma once

#include <cstdint>

namespace fastdream {

void ray_aabb_intersect_cpu(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                            float* t_near, float* t_far, bool* hit);

// CUDA launchers, defined only in the .cu files: call them inside FD_CUDA (fastdream/dispatch.h), which drops
// them from CPU-only builds. They return nullptr or the CUDA error text.
const char* ray_aabb_intersect_cuda(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                                    float* t_near, float* t_far, bool* hit, void* stream);

}  // namespace fastdream
