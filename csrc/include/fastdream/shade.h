// Per-sample shading shared by the CPU and CUDA kernels.
// mode 0 albedo: out = albedo. mode 1 lambertian: out = albedo * (amb + (1 - amb) * max(0, n.l)).
// mode 2 textureless: as lambertian with white albedo. l = unit vector from the point to the light.
#pragma once

#include "fastdream/common.h"

namespace fastdream {

enum ShadeMode : int { kShadeAlbedo = 0, kShadeLambertian = 1, kShadeTextureless = 2 };

template <typename T>
FD_HD T shade_ndotl(const T* n, const T* p, const T* light, T* l) {
  T v0 = light[0] - p[0], v1 = light[1] - p[1], v2 = light[2] - p[2];
  T len = sqrt(v0 * v0 + v1 * v1 + v2 * v2);
  if (len < T(1e-12)) len = T(1e-12);
  l[0] = v0 / len;
  l[1] = v1 / len;
  l[2] = v2 / len;
  return n[0] * l[0] + n[1] * l[1] + n[2] * l[2];
}

template <typename T>
FD_HD void shade_forward_one(int64_t i, const T* albedo, const T* normals, const T* positions, const T* light,
                             T ambient, int mode, T* out) {
  if (mode == kShadeAlbedo) {
    for (int c = 0; c < 3; ++c) out[3 * i + c] = albedo[3 * i + c];
    return;
  }
  T l[3];
  const T ndl = shade_ndotl(normals + 3 * i, positions + 3 * i, light, l);
  const T f = ambient + (T(1) - ambient) * (ndl > T(0) ? ndl : T(0));
  for (int c = 0; c < 3; ++c) out[3 * i + c] = mode == kShadeTextureless ? f : albedo[3 * i + c] * f;
}

// grad_albedo / grad_normals may be null.
template <typename T>
FD_HD void shade_backward_one(int64_t i, const T* g_out, const T* albedo, const T* normals, const T* positions,
                              const T* light, T ambient, int mode, T* grad_albedo, T* grad_normals) {
  const T* g = g_out + 3 * i;
  if (mode == kShadeAlbedo) {
    for (int c = 0; c < 3; ++c) {
      if (grad_albedo) grad_albedo[3 * i + c] = g[c];
      if (grad_normals) grad_normals[3 * i + c] = T(0);
    }
    return;
  }
  T l[3];
  const T ndl = shade_ndotl(normals + 3 * i, positions + 3 * i, light, l);
  const T f = ambient + (T(1) - ambient) * (ndl > T(0) ? ndl : T(0));
  T gf;
  if (mode == kShadeTextureless) {
    gf = g[0] + g[1] + g[2];
  } else {
    gf = g[0] * albedo[3 * i] + g[1] * albedo[3 * i + 1] + g[2] * albedo[3 * i + 2];
  }
  const T gn = ndl > T(0) ? gf * (T(1) - ambient) : T(0);
  for (int c = 0; c < 3; ++c) {
    if (grad_albedo) grad_albedo[3 * i + c] = mode == kShadeTextureless ? T(0) : g[c] * f;
    if (grad_normals) grad_normals[3 * i + c] = gn * l[c];
  }
}

}  // namespace fastdream
