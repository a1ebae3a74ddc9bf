// march: launchers for the occupancy-grid ray marcher (CPU and CUDA). Two passes: count, then fill at
// offsets = exclusive cumsum(counts), so samples come out sorted by ray, then t, on both devices.
#pragma once

#include <cstdint>

#include "fastdream/march.h"

namespace fastdream {

// jitter may be null (no stratification). counts: [n_rays] int64.
void march_count_cpu(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                     const MarchParams& p, const uint8_t* bits, int64_t* counts);
// offsets: [n_rays] int64 exclusive prefix sums of counts; outputs hold p.capacity samples.
void march_fill_cpu(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                    const MarchParams& p, const uint8_t* bits, const int64_t* offsets, int64_t* ray_out,
                    float* ts_out, float* te_out);

// CUDA launchers, defined only in the .cu files: call them inside FD_CUDA (fastdream/dispatch.h), which drops
// them from CPU-only builds. They return nullptr or the CUDA error text.
const char* march_count_cuda(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                             const MarchParams& p, const uint8_t* bits, int64_t* counts, void* stream);
const char* march_fill_cuda(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                            const MarchParams& p, const uint8_t* bits, const int64_t* offsets, int64_t* ray_out,
                            float* ts_out, float* te_out, void* stream);

}  // namespace fastdream
