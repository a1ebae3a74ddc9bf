#include "ray_aabb_launchers.h"

#include <ATen/Parallel.h>

#include "fastdream/ray_aabb.h"

namespace fastdream {

void ray_aabb_intersect_cpu(const float* rays_o, const float* rays_d, const float* aabb, int64_t n_rays,
                            float* t_near, float* t_far, bool* hit) {
  at::parallel_for(0, n_rays, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      hit[i] = ray_aabb(load_f3(rays_o + 3 * i), load_f3(rays_d + 3 * i), aabb, t_near + i, t_far + i);
    }
  });
}

}  // namespace fastdream
