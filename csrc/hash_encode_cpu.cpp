#include "hash_encode_launchers.h"

#include <ATen/Parallel.h>

namespace fastdream {

template <typename T>
void hash_encode_forward_cpu(const T* x, const T* params, int64_t n, const HashLevels& levels, T* out) {
  const int L = levels.n_levels, F = levels.n_features;
  at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* xi = x + 3 * i;
      T* oi = out + i * L * F;
      for (int l = 0; l < L; ++l) {
        const HashLevel& lv = levels.level[l];
        uint32_t corner[3];
        T frac[3];
        hash_cell(xi, lv, corner, frac);
        T acc[8] = {};
        for (int c = 0; c < 8; ++c) {
          T w;
          const uint32_t idx = hash_corner(corner, frac, c, lv, &w);
          const T* p = params + lv.param_offset + static_cast<int64_t>(idx) * F;
          for (int f = 0; f < F; ++f) acc[f] += w * p[f];
        }
        for (int f = 0; f < F; ++f) oi[l * F + f] = acc[f];
      }
    }
  });
}

template <typename T>
void hash_encode_backward_cpu(const T* grad_out, const T* x, const T* params, int64_t n, const HashLevels& levels,
                              T* grad_params, T* grad_x) {
  const int L = levels.n_levels, F = levels.n_features;
  if (grad_params != nullptr) {
    // Each level owns a disjoint slice of the table, so threads split by level need no atomics.
    at::parallel_for(0, L, 1, [&](int64_t lbegin, int64_t lend) {
      for (int64_t l = lbegin; l < lend; ++l) {
        const HashLevel& lv = levels.level[l];
        for (int64_t i = 0; i < n; ++i) {
          const T* g = grad_out + i * L * F + l * F;
          uint32_t corner[3];
          T frac[3];
          hash_cell(x + 3 * i, lv, corner, frac);
          for (int c = 0; c < 8; ++c) {
            T w;
            const uint32_t idx = hash_corner(corner, frac, c, lv, &w);
            T* gp = grad_params + lv.param_offset + static_cast<int64_t>(idx) * F;
            for (int f = 0; f < F; ++f) gp[f] += w * g[f];
          }
        }
      }
    });
  }
  if (grad_x != nullptr) {
    at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T* xi = x + 3 * i;
        T acc[3] = {};
        for (int l = 0; l < L; ++l) {
          const HashLevel& lv = levels.level[l];
          const T* g = grad_out + i * L * F + l * F;
          uint32_t corner[3];
          T frac[3];
          hash_cell(xi, lv, corner, frac);
          T part[3] = {};
          for (int c = 0; c < 8; ++c) {
            T w, dw[3];
            const uint32_t idx = hash_corner(corner, frac, c, lv, &w);
            hash_corner_dweight(frac, c, dw);
            const T* p = params + lv.param_offset + static_cast<int64_t>(idx) * F;
            T gv = T(0);
            for (int f = 0; f < F; ++f) gv += g[f] * p[f];
            for (int d = 0; d < 3; ++d) part[d] += gv * dw[d];
          }
          const T s = static_cast<T>(lv.scale);
          for (int d = 0; d < 3; ++d) acc[d] += part[d] * s;
        }
        for (int d = 0; d < 3; ++d) grad_x[3 * i + d] = hash_in_range(xi[d]) ? acc[d] : T(0);
      }
    });
  }
}

template void hash_encode_forward_cpu<float>(const float*, const float*, int64_t, const HashLevels&, float*);
template void hash_encode_forward_cpu<double>(const double*, const double*, int64_t, const HashLevels&, double*);
template void hash_encode_backward_cpu<float>(const float*, const float*, const float*, int64_t, const HashLevels&,
                                              float*, float*);
template void hash_encode_backward_cpu<double>(const double*, const double*, const double*, int64_t,
                                               const HashLevels&, double*, double*);

}  // namespace fastdream
