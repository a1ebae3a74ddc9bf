// Multiresolution hash-grid encoding math shared by the CPU and CUDA kernels.
// Indexing follows tiny-cuda-nn exactly (GridEncoding, HashType::CoherentPrime), so a tcnn
// parameter vector (level, entry, feature) loads unchanged.
#pragma once

#include "fastdream/common.h"

#if defined(__CUDACC__)
#define FD_HASH_UNROLL _Pragma("unroll")
#else
#define FD_HASH_UNROLL
#endif

namespace fastdream {

constexpr int kHashMaxLevels = 32;

// One level of the grid. The host builds these from the Python level table and checks them
// against the parameter count, so kernels may trust offset + size * F <= n_params.
struct HashLevel {
  int64_t param_offset;  // first parameter of the level (entries_before * F)
  uint32_t size;         // table entries n_l (> 0)
  uint32_t res;          // grid resolution: ceil(scale) + 1
  uint32_t hashed;       // 1 when res^3 > n_l (coherent prime hash), else dense
  float scale;           // exp2(l * log2(per_level_scale)) * base_resolution - 1, in float as tcnn
};

struct HashLevels {
  HashLevel level[kHashMaxLevels];
  int n_levels;
  int n_features;
};

FD_HD float fd_floor(float v) { return floorf(v); }
FD_HD double fd_floor(double v) { return floor(v); }

// Input policy: coordinates are clamped to [0, 1]; NaN reads as 0. Whatever the input, the
// corner indices stay inside the level's table (the final `% size`).
template <typename T>
FD_HD T hash_sanitize(T v) {
  if (!(v == v)) return T(0);
  return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
}

// Whether the clamp passes a gradient (as torch.clamp: inside [0, 1] inclusive; NaN does not).
template <typename T>
FD_HD bool hash_in_range(T v) {
  return v >= T(0) && v <= T(1);
}

// tcnn's grid_index: dense row-major index when the level fits, else the coherent prime hash;
// both in wrapping uint32 arithmetic, then modulo the table size.
FD_HD uint32_t hash_grid_index(uint32_t x, uint32_t y, uint32_t z, const HashLevel& lv) {
  const uint32_t idx = lv.hashed ? (x ^ (y * 2654435761u) ^ (z * 805459861u)) : (x + y * lv.res + z * lv.res * lv.res);
  return idx % lv.size;
}

// p = x * scale + 0.5 rounded twice (no fused multiply-add), on the host and on the GPU alike, so the CPU
// and CUDA kernels and the PyTorch reference pick the same cell and fraction. (tcnn uses fmaf; at a fine
// level's scale s the fraction then differs from ours by up to one float ulp of s.)
FD_HD float hash_pos(float x, float s) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(x, s), 0.5f);
#else
  return x * s + 0.5f;
#endif
}
FD_HD double hash_pos(double x, double s) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(__dmul_rn(x, s), 0.5);
#else
  return x * s + 0.5;
#endif
}

// The cell of one point at one level: integer corner and fractional offsets (tcnn's pos_fract:
// p = x * scale + 0.5, corner = floor(p)).
template <typename T>
FD_HD void hash_cell(const T* x, const HashLevel& lv, uint32_t* corner, T* frac) {
  const T s = static_cast<T>(lv.scale);
FD_HASH_UNROLL
  for (int d = 0; d < 3; ++d) {
    const T p = hash_pos(hash_sanitize(x[d]), s);
    const T fl = fd_floor(p);
    corner[d] = static_cast<uint32_t>(static_cast<int>(fl));
    frac[d] = p - fl;
  }
}

// Corner c (bit d set = +1 along axis d): table index (within the level) and trilinear weight.
template <typename T>
FD_HD uint32_t hash_corner(const uint32_t* corner, const T* frac, int c, const HashLevel& lv, T* weight) {
  T w = T(1);
  uint32_t p[3];
FD_HASH_UNROLL
  for (int d = 0; d < 3; ++d) {
    const bool up = (c >> d) & 1;
    p[d] = corner[d] + (up ? 1u : 0u);
    w *= up ? frac[d] : T(1) - frac[d];
  }
  *weight = w;
  return hash_grid_index(p[0], p[1], p[2], lv);
}

// d weight / d frac_d for corner c (multiply by scale for d / dx_d).
template <typename T>
FD_HD void hash_corner_dweight(const T* frac, int c, T* dw) {
  T w[3];
FD_HASH_UNROLL
  for (int d = 0; d < 3; ++d) w[d] = ((c >> d) & 1) ? frac[d] : T(1) - frac[d];
FD_HASH_UNROLL
  for (int d = 0; d < 3; ++d) {
    const T sign = ((c >> d) & 1) ? T(1) : T(-1);
    dw[d] = sign * w[(d + 1) % 3] * w[(d + 2) % 3];
  }
}

}  // namespace fastdream
