// composite / render_weights: launchers for the CPU (float, double) and CUDA (float) kernels.
// All pointers are contiguous; null outputs are skipped. Rays are processed one per thread over their segment
// [seg_begin[r], seg_end[r]) of the packed, sorted samples.
#pragma once

#include <cstdint>

namespace fastdream {

// Segments of each ray in ray_indices (indices outside [0, n_rays) are padding). seg_* must be zero-filled.
void ray_segments_cpu(const int64_t* ray, int64_t n_samples, int64_t n_rays, int64_t* seg_begin, int64_t* seg_end);

template <typename T>
void composite_forward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                           const T* sigmas, const T* rgbs, const T* ts, const T* te, T thre, T* weights, T* color,
                           T* opacity, T* depth);
template <typename T>
void composite_backward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                            const T* sigmas, const T* rgbs, const T* ts, const T* te, T thre, const T* color,
                            const T* opacity, const T* depth, const T* g_color, const T* g_opacity, const T* g_depth,
                            T* grad_sigmas, T* grad_rgbs);
template <typename T>
void weights_backward_cpu(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays, const int64_t* ray,
                          const T* sigmas, const T* ts, const T* te, T thre, const T* weights, const T* g_weights,
                          T* grad_sigmas);

// CUDA launchers, defined only in the .cu files: call them inside FD_CUDA (fastdream/dispatch.h), which drops
// them from CPU-only builds. They return nullptr or the CUDA error text.
const char* ray_segments_cuda(const int64_t* ray, int64_t n_samples, int64_t n_rays, int64_t* seg_begin,
                              int64_t* seg_end, void* stream);
const char* composite_forward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                   const int64_t* ray, const float* sigmas, const float* rgbs, const float* ts,
                                   const float* te, float thre, float* weights, float* color, float* opacity,
                                   float* depth, void* stream);
const char* composite_backward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                    const int64_t* ray, const float* sigmas, const float* rgbs, const float* ts,
                                    const float* te, float thre, const float* color, const float* opacity,
                                    const float* depth, const float* g_color, const float* g_opacity,
                                    const float* g_depth, float* grad_sigmas, float* grad_rgbs, void* stream);
const char* weights_backward_cuda(const int64_t* seg_begin, const int64_t* seg_end, int64_t n_rays,
                                  const int64_t* ray, const float* sigmas, const float* ts, const float* te,
                                  float thre, const float* weights, const float* g_weights, float* grad_sigmas,
                                  void* stream);

}  // namespace fastdream
