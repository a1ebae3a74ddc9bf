// hash_encode: launchers for the CPU and CUDA kernels (positions [N,3] in [0,1] -> features [N, L*F]).
#pragma once

#include <cstdint>

#include "fastdream/hash_encode.h"

namespace fastdream {

template <typename T>
void hash_encode_forward_cpu(const T* x, const T* params, int64_t n, const HashLevels& levels, T* out);

// grad_params (may be null) must be zeroed by the caller; grad_x (may be null) is overwritten.
template <typename T>
void hash_encode_backward_cpu(const T* grad_out, const T* x, const T* params, int64_t n, const HashLevels& levels,
                              T* grad_params, T* grad_x);

// CUDA launchers, defined only in the .cu files: call them inside FD_CUDA (fastdream/dispatch.h), which drops
// them from CPU-only builds. They return nullptr or the CUDA error text.
// float32 positions, float32 or float16 (half_params) tables; outputs and gradients float32.
const char* hash_encode_forward_cuda(const float* x, const void* params, bool half_params, int64_t n,
                                     const HashLevels& levels, float* out, void* stream);
// grad_params (fp32, zeroed, may be null); grad_x (zeroed, may be null).
const char* hash_encode_backward_cuda(const float* grad_out, const float* x, const void* params, bool half_params,
                                      int64_t n, const HashLevels& levels, float* grad_params, float* grad_x,
                                      void* stream);

}  // namespace fastdream
