#include "shade_launchers.h"

#include <ATen/Parallel.h>

#include "fastdream/shade.h"

namespace fastdream {

template <typename T>
void shade_forward_cpu(int64_t n, const T* albedo, const T* normals, const T* positions, const T* light, T ambient,
                       int mode, T* out) {
  at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) shade_forward_one<T>(i, albedo, normals, positions, light, ambient, mode, out);
  });
}

template <typename T>
void shade_backward_cpu(int64_t n, const T* g_out, const T* albedo, const T* normals, const T* positions,
                        const T* light, T ambient, int mode, T* grad_albedo, T* grad_normals) {
  at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      shade_backward_one<T>(i, g_out, albedo, normals, positions, light, ambient, mode, grad_albedo, grad_normals);
    }
  });
}

template void shade_forward_cpu<float>(int64_t, const float*, const float*, const float*, const float*, float, int,
                                       float*);
template void shade_forward_cpu<double>(int64_t, const double*, const double*, const double*, const double*, double,
                                        int, double*);
template void shade_backward_cpu<float>(int64_t, const float*, const float*, const float*, const float*,
                                        const float*, float, int, float*, float*);
template void shade_backward_cpu<double>(int64_t, const double*, const double*, const double*, const double*,
                                         const double*, double, int, double*, double*);

}  // namespace fastdream
