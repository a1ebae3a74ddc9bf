// Slab test of a ray against an axis-aligned box, shared by CPU and CUDA.
#pragma once

#include "fastdream/common.h"

namespace fastdream {

// aabb = [xmin, ymin, zmin, xmax, ymax, zmax]. On a hit, t_near = max(entry, 0) so an
// origin inside the box starts at 0; on a miss (or a non-finite ray) both are +inf.
// A zero direction component relies on IEEE division: 1/0 = inf gives the right slab
// interval when the origin is inside that slab; an origin outside with d = 0 misses.
FD_HD bool ray_aabb(float3_ o, float3_ d, const float* aabb, float* t_near, float* t_far) {
  const float inf = INFINITY;
  float tmin = 0.0f, tmax = inf;
  const float ov[3] = {o.x, o.y, o.z};
  const float dv[3] = {d.x, d.y, d.z};
  bool ok = fd_isfinite(o.x) && fd_isfinite(o.y) && fd_isfinite(o.z) &&
            fd_isfinite(d.x) && fd_isfinite(d.y) && fd_isfinite(d.z);
  for (int a = 0; a < 3 && ok; ++a) {
    const float lo = aabb[a], hi = aabb[a + 3];
    if (!(lo <= hi)) { ok = false; break; }  // degenerate or NaN box: nothing is inside
    if (dv[a] == 0.0f) {
      if (ov[a] < lo || ov[a] > hi) ok = false;
      continue;
    }
    const float inv = 1.0f / dv[a];
    float t0 = (lo - ov[a]) * inv, t1 = (hi - ov[a]) * inv;
    if (t0 > t1) { const float tt = t0; t0 = t1; t1 = tt; }
    tmin = fd_max(tmin, t0);
    tmax = fd_min(tmax, t1);
  }
  ok = ok && tmin <= tmax;
  *t_near = ok ? tmin : inf;
  *t_far = ok ? tmax : inf;
  return ok;
}

}  // namespace fastdream
