// Occupancy-grid ray marching shared by the CPU and CUDA kernels (and mirrored by the PyTorch reference).
//
// Grid: `levels` cascades of res^3 cells; level l covers the base aabb scaled by 2^l around its centre.
// The occupancy bits of level l live at bit offset l * P^3 (P = res rounded up to a power of two), cell (x, y, z)
// at Morton index morton3(x, y, z); bit (m & 7) of byte (m >> 3).
//
// Samples of a ray: with cone_angle == 0 they sit on the lattice t0 + k * step (t0 = entry + jitter * step), so
// skipping empty space never changes which samples exist, only how fast we get there. With cone_angle > 0 they
// follow t_{k+1} = t_k + max(step, t_k * cone_angle). A sample [t_k, min(t_k + dt, t_hi)] exists when the cell
// holding its midpoint (finest level containing it) is occupied. Arithmetic that decides sample positions uses
// explicitly rounded ops so nvcc's FMA contraction cannot make CUDA disagree with the CPU.
#pragma once

#include "fastdream/common.h"
#include "fastdream/ray_aabb.h"

namespace fastdream {

FD_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FD_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FD_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FD_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Spread the low 10 bits of v to every third bit.
FD_HD uint32_t morton_spread(uint32_t v) {
  v &= 0x3ffu;
  v = (v | (v << 16)) & 0x030000FFu;
  v = (v | (v << 8)) & 0x0300F00Fu;
  v = (v | (v << 4)) & 0x030C30C3u;
  v = (v | (v << 2)) & 0x09249249u;
  return v;
}
FD_HD uint32_t morton3(uint32_t x, uint32_t y, uint32_t z) {
  return morton_spread(x) | (morton_spread(y) << 1) | (morton_spread(z) << 2);
}

// Plain-old-data parameters of one sampling call (filled on the host, passed by value to kernels).
struct MarchParams {
  float center[3];     // base aabb centre
  float half[3];       // base aabb half extent (> 0)
  float outer[6];      // box of the coarsest level: rays are clipped to it
  int levels;
  int res;
  int64_t level_bits;  // P^3: bits per level in the bitfield
  float near_plane, far_plane, step, cone_angle;
  int64_t capacity;    // output capacity (fill pass)
};

// Finest level whose box contains p, and the cell there; -1 when p lies outside every level.
FD_HD int grid_cell(const MarchParams& g, float3_ p, int* cell) {
  const float pv[3] = {p.x, p.y, p.z};
  float u[3];
  float m = 0.0f;
  for (int a = 0; a < 3; ++a) {
    u[a] = div_rn(sub_rn(pv[a], g.center[a]), g.half[a]);
    m = fd_max(m, fabsf(u[a]));
  }
  if (!(m == m)) return -1;
  int level = 0;
  float scale = 1.0f;
  while (m > scale) {
    ++level;
    scale *= 2.0f;
    if (level >= g.levels) return -1;
  }
  const float inv = 1.0f / scale;  // a power of two: exact
  const float r = static_cast<float>(g.res);
  for (int a = 0; a < 3; ++a) {
    const float x = mul_rn(add_rn(mul_rn(mul_rn(u[a], inv), 0.5f), 0.5f), r);
    int i = static_cast<int>(floorf(x));
    cell[a] = i < 0 ? 0 : (i >= g.res ? g.res - 1 : i);
  }
  return level;
}

FD_HD bool grid_bit(const MarchParams& g, const uint8_t* bits, int level, const int* cell) {
  const int64_t m = level * g.level_bits + morton3(cell[0], cell[1], cell[2]);
  return (bits[m >> 3] >> (m & 7)) & 1;
}

// A t no later than where the ray leaves `cell` of `level` (or enters the next finer level's box), shrunk by a
// margin so rounding never lets a skipped lattice point be one the exact test would call occupied.
FD_HD float safe_cell_exit(const MarchParams& g, int level, const int* cell, float3_ o, float3_ d, float mid) {
  const float ov[3] = {o.x, o.y, o.z}, dv[3] = {d.x, d.y, d.z};
  const float scale = static_cast<float>(1 << level);
  float t_exit = INFINITY;
  float in_lo = -INFINITY, in_hi = INFINITY;
  for (int a = 0; a < 3; ++a) {
    const float ext = g.half[a] * scale;
    const float eps = 1e-5f * (fabsf(ov[a]) + fabsf(g.center[a]) + ext) + 1e-20f;
    const float w = 2.0f * ext / static_cast<float>(g.res);
    const float lo = g.center[a] - ext;
    const float ilo = g.center[a] - 0.5f * ext, ihi = g.center[a] + 0.5f * ext;
    if (dv[a] == 0.0f) {
      if (level > 0 && (ov[a] < ilo || ov[a] > ihi)) in_lo = INFINITY;  // never enters the finer box
      continue;
    }
    const float bound = lo + static_cast<float>(cell[a] + (dv[a] > 0.0f ? 1 : 0)) * w;
    const float ta = (bound - ov[a]) / dv[a] - eps / fabsf(dv[a]);
    t_exit = fd_min(t_exit, ta);
    if (level > 0) {
      float t0 = (ilo - ov[a]) / dv[a], t1 = (ihi - ov[a]) / dv[a];
      if (t0 > t1) { const float tt = t0; t0 = t1; t1 = tt; }
      in_lo = fd_max(in_lo, t0 - eps / fabsf(dv[a]));
      in_hi = fd_min(in_hi, t1);
    }
  }
  if (level > 0 && in_lo <= in_hi && in_hi > mid) t_exit = fd_min(t_exit, in_lo);
  return t_exit;
}

// Ray setup: the [t0, t_hi) interval to march (outer box ∩ [near, far]), false when there is nothing to march.
FD_HD bool march_setup(const MarchParams& g, float3_ o, float3_ d, float jitter, float* t0, float* t_hi) {
  if (d.x == 0.0f && d.y == 0.0f && d.z == 0.0f) return false;
  float tn, tf;
  if (!ray_aabb(o, d, g.outer, &tn, &tf)) return false;
  const float lo = fd_max(tn, g.near_plane), hi = fd_min(tf, g.far_plane);
  if (!(lo < hi)) return false;
  *t0 = add_rn(lo, mul_rn(jitter, g.step));
  *t_hi = hi;
  return true;
}

// March one ray. Returns how many samples it has; with kWrite also stores them at out_begin + j for
// out_begin + j < g.capacity (later ones are dropped: a ray cut short keeps its nearest samples).
template <bool kWrite>
FD_HD int64_t march_ray(const MarchParams& g, const uint8_t* bits, float3_ o, float3_ d, float t0, float t_hi,
                        int64_t ray_id, int64_t out_begin, int64_t* ray_out, float* ts_out, float* te_out) {
  int64_t n = 0;
  int64_t k = 0;
  float t = t0;
  float skip_until = -INFINITY;
  const bool cone = g.cone_angle > 0.0f;
  while (true) {
    const float ts = cone ? t : add_rn(t0, mul_rn(static_cast<float>(k), g.step));
    if (!(ts < t_hi)) break;
    const float dt = cone ? fd_max(g.step, mul_rn(ts, g.cone_angle)) : g.step;
    const float te_full = add_rn(ts, dt);
    const float te = fd_min(te_full, t_hi);
    const float mid = mul_rn(add_rn(ts, te), 0.5f);
    bool advanced = false;
    if (!(mid < skip_until)) {
      const float3_ p = make_f3(add_rn(o.x, mul_rn(mid, d.x)), add_rn(o.y, mul_rn(mid, d.y)),
                                add_rn(o.z, mul_rn(mid, d.z)));
      int cell[3];
      const int level = grid_cell(g, p, cell);
      if (level >= 0 && grid_bit(g, bits, level, cell)) {
        if (kWrite) {
          const int64_t j = out_begin + n;
          if (j < g.capacity) {
            ray_out[j] = ray_id;
            ts_out[j] = ts;
            te_out[j] = te;
          }
        }
        ++n;
      } else if (level >= 0) {
        const float t_safe = safe_cell_exit(g, level, cell, o, d, mid);
        if (!cone) {
          // The first lattice index whose midpoint may pass t_safe.
          const float kf = floorf((t_safe - t0) / g.step - 0.5f);
          if (kf > static_cast<float>(k + 1)) {
            k = kf < 9.0e18f ? static_cast<int64_t>(kf) : INT64_MAX / 2;
            advanced = true;
          }
        } else {
          skip_until = t_safe;
        }
      }
    }
    if (!advanced) {
      if (cone) {
        if (!(te_full > ts)) break;  // step below float resolution: stop rather than spin
        t = te_full;
      } else {
        ++k;
      }
    }
  }
  return n;
}

}  // namespace fastdream
