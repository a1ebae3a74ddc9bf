#include "march_launchers.h"

#include <ATen/Parallel.h>

namespace fastdream {

void march_count_cpu(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                     const MarchParams& p, const uint8_t* bits, int64_t* counts) {
  at::parallel_for(0, n_rays, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float3_ o = load_f3(rays_o + 3 * i), d = load_f3(rays_d + 3 * i);
      float t0, t_hi;
      counts[i] = march_setup(p, o, d, jitter ? jitter[i] : 0.0f, &t0, &t_hi)
                      ? march_ray<false>(p, bits, o, d, t0, t_hi, i, 0, nullptr, nullptr, nullptr)
                      : 0;
    }
  });
}

void march_fill_cpu(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                    const MarchParams& p, const uint8_t* bits, const int64_t* offsets, int64_t* ray_out,
                    float* ts_out, float* te_out) {
  at::parallel_for(0, n_rays, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (offsets[i] >= p.capacity) continue;
      const float3_ o = load_f3(rays_o + 3 * i), d = load_f3(rays_d + 3 * i);
      float t0, t_hi;
      if (march_setup(p, o, d, jitter ? jitter[i] : 0.0f, &t0, &t_hi)) {
        march_ray<true>(p, bits, o, d, t0, t_hi, i, offsets[i], ray_out, ts_out, te_out);
      }
    }
  });
}

}  // namespace fastdream
