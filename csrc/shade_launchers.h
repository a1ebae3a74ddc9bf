// shade: launchers for per-sample shading (CPU float/double, CUDA float). mode: see fastdream/shade.h.
#pragma once

#include <cstdint>

namespace fastdream {

template <typename T>
void shade_forward_cpu(int64_t n, const T* albedo, const T* normals, const T* positions, const T* light, T ambient,
                       int mode, T* out);
template <typename T>
void shade_backward_cpu(int64_t n, const T* g_out, const T* albedo, const T* normals, const T* positions,
                        const T* light, T ambient, int mode, T* grad_albedo, T* grad_normals);

// CUDA launchers, defined only in the .cu files: call them inside FD_CUDA (fastdream/dispatch.h), which drops
// them from CPU-only builds. They return nullptr or the CUDA error text.
const char* shade_forward_cuda(int64_t n, const float* albedo, const float* normals, const float* positions,
                               const float* light, float ambient, int mode, float* out, void* stream);
const char* shade_backward_cuda(int64_t n, const float* g_out, const float* albedo, const float* normals,
                                const float* positions, const float* light, float ambient, int mode,
                                float* grad_albedo, float* grad_normals, void* stream);

}  // namespace fastdream
