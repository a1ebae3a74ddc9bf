#include "composite_launchers.h"

#include <ATen/Parallel.h>

#include "fastdream/composite.h"

namespace fastdream {

void ray_segments_cpu(const int64_t* ray, int64_t n_samples, int64_t n_rays, int64_t* seg_begin, int64_t* seg_end) {
  for (int64_t i = 0; i < n_samples; ++i) {
    const int64_t r = ray[i];
    if (r < 0 || r >= n_rays) continue;
    if (i == 0 || ray[i - 1] != r) seg_begin[r] = i;
    if (i == n_samples - 1 || ray[i + 1] != r) seg_end[r] = i + 1;
  }
}

template <typename T>
void composite_forward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                           const T* sigmas, const T* rgbs, const T* ts, const T* te, T thre, T* weights, T* color,
                           T* opacity, T* depth) {
  at::parallel_for(0, n_rays, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      composite_ray_forward<T>(r, seg_begin[r], seg_end[r], ray, sigmas, rgbs, ts, te, thre, weights, color,
                               opacity, depth);
    }
  });
}

template <typename T>
void composite_backward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                            const T* sigmas, const T* rgbs, const T* ts, const T* te, T thre, const T* color,
                            const T* opacity, const T* depth, const T* g_color, const T* g_opacity, const T* g_depth,
                            T* grad_sigmas, T* grad_rgbs) {
  at::parallel_for(0, n_rays, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      composite_ray_backward<T>(r, seg_begin[r], seg_end[r], ray, sigmas, rgbs, ts, te, thre, color, opacity, depth,
                                g_color, g_opacity, g_depth, grad_sigmas, grad_rgbs);
    }
  });
}

template <typename T>
void weights_backward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                          const T* sigmas, const T* ts, const T* te, T thre, const T* weights, const T* g_weights,
                          T* grad_sigmas) {
  at::parallel_for(0, n_rays, 256, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      weights_ray_backward<T>(r, seg_begin[r], seg_end[r], ray, sigmas, ts, te, thre, weights, g_weights,
                              grad_sigmas);
    }
  });
}

#define FD_INSTANTIATE(T)                                                                                           \
  template void composite_forward_cpu<T>(const int64_t*, const int64_t*, int64_t, const int64_t*, const T*,         \
                                         const T*, const T*, const T*, T, T*, T*, T*, T*);                          \
  template void composite_backward_cpu<T>(const int64_t*, const int64_t*, int64_t, const int64_t*, const T*,        \
                                          const T*, const T*, const T*, T, const T*, const T*, const T*, const T*,  \
                                          const T*, const T*, T*, T*);                                              \
  template void weights_backward_cpu<T>(const int64_t*, const int64_t*, int64_t, const int64_t*, const T*,          \
                                        const T*, const T*, T, const T*, const T*, T*);
FD_INSTANTIATE(float)
FD_INSTANTIATE(double)
#undef FD_INSTANTIATE

}  // namespace fastdream
