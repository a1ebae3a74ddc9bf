// Host-device basics shared by the CPU and CUDA kernels. No torch headers here:
// .cu files include this, and must stay light for nvcc.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FD_HD __host__ __device__ __forceinline__
#else
#define FD_HD inline
#endif

namespace fastdream {

struct float3_ {
  float x, y, z;
};

FD_HD float3_ make_f3(float x, float y, float z) { return float3_{x, y, z}; }
FD_HD float3_ load_f3(const float* p) { return float3_{p[0], p[1], p[2]}; }
FD_HD void store_f3(float* p, float3_ v) { p[0] = v.x; p[1] = v.y; p[2] = v.z; }
FD_HD float dot3(float3_ a, float3_ b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
FD_HD float3_ sub3(float3_ a, float3_ b) { return float3_{a.x - b.x, a.y - b.y, a.z - b.z}; }
FD_HD float3_ add3(float3_ a, float3_ b) { return float3_{a.x + b.x, a.y + b.y, a.z + b.z}; }
FD_HD float3_ scale3(float3_ a, float s) { return float3_{a.x * s, a.y * s, a.z * s}; }
FD_HD float fd_min(float a, float b) { return a < b ? a : b; }
FD_HD float fd_max(float a, float b) { return a > b ? a : b; }
FD_HD bool fd_isfinite(float v) { return v == v && v - v == 0.0f; }

}  // namespace fastdream
