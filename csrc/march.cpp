// Torch-facing occupancy-grid marcher: checks, allocation, dispatch, register_march.
#include "march_launchers.h"

#include <cmath>

#include "fastdream/dispatch.h"

namespace fastdream {
namespace {

// Validates the grid arguments and builds the kernels' parameters (capacity is set after the count pass).
MarchParams make_params(const at::Tensor& bits, const std::vector<double>& aabb, int64_t levels, int64_t res,
                        double near_plane, double far_plane, double step, double cone_angle) {
  TORCH_CHECK(levels >= 1 && levels <= 16, "levels must be in [1, 16], got ", levels);
  TORCH_CHECK(res >= 1 && res <= 1024, "resolution must be in [1, 1024], got ", res);
  TORCH_CHECK(aabb.size() == 6, "aabb must have 6 values, got ", aabb.size());
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK(std::isfinite(aabb[a]) && std::isfinite(aabb[a + 3]) && aabb[a] < aabb[a + 3],
                "aabb must be finite with min < max on every axis, got axis ", a, ": [", aabb[a], ", ",
                aabb[a + 3], "]");
  }
  TORCH_CHECK(std::isfinite(step) && step > 0, "render_step_size must be finite and > 0, got ", step);
  TORCH_CHECK(std::isfinite(cone_angle) && cone_angle >= 0, "cone_angle must be finite and >= 0, got ", cone_angle);
  TORCH_CHECK(!std::isnan(near_plane) && !std::isnan(far_plane), "near_plane and far_plane must not be NaN");
  int64_t p2 = 2;
  while (p2 < res) p2 *= 2;
  const int64_t level_bits = p2 * p2 * p2;
  TORCH_CHECK(bits.numel() == levels * level_bits / 8, "bits must hold levels * P^3 / 8 = ", levels * level_bits / 8,
              " bytes (P = resolution rounded up to a power of two), got ", bits.numel());

  MarchParams p;
  for (int a = 0; a < 3; ++a) {
    const float lo = static_cast<float>(aabb[a]), hi = static_cast<float>(aabb[a + 3]);
    p.center[a] = (lo + hi) * 0.5f;
    p.half[a] = (hi - lo) * 0.5f;
    const float ext = p.half[a] * static_cast<float>(1 << (levels - 1));
    p.outer[a] = p.center[a] - ext;
    p.outer[a + 3] = p.center[a] + ext;
  }
  p.levels = static_cast<int>(levels);
  p.res = static_cast<int>(res);
  p.level_bits = level_bits;
  p.near_plane = static_cast<float>(near_plane);
  p.far_plane = static_cast<float>(far_plane);
  p.step = static_cast<float>(step);
  p.cone_angle = static_cast<float>(cone_angle);
  return p;
}

}  // namespace

// Returns (ray_indices [N] int64, t_starts [N], t_ends [N], counts [R] int64). capacity < 0: exact mode, N = the
// number of samples (one host sync to read it). capacity >= 0: N = capacity, no host sync; slots past the samples
// are padding (ray index -1, t_start = t_end = 0), and samples past the capacity are dropped (nearest kept).
std::vector<at::Tensor> march(const at::Tensor& rays_o, const at::Tensor& rays_d,
                              const c10::optional<at::Tensor>& jitter, const at::Tensor& bits,
                              const std::vector<double>& aabb, int64_t levels, int64_t res, double near_plane,
                              double far_plane, double step, double cone_angle, int64_t capacity) {
  check_rays(rays_o, rays_d);
  FD_CHECK_DTYPE(bits, at::kByte);
  FD_CHECK_SAME_DEVICE(rays_o, bits);
  FD_CHECK_CONTIGUOUS(bits);
  MarchParams p = make_params(bits, aabb, levels, res, near_plane, far_plane, step, cone_angle);
  const int64_t n = rays_o.size(0);
  if (jitter.has_value()) check_like(*jitter, "jitter", rays_o, "rays_o", {n});

  const auto opts = rays_o.options();
  const float* o = rays_o.data_ptr<float>();
  const float* d = rays_d.data_ptr<float>();
  const float* jit = jitter.has_value() ? jitter->data_ptr<float>() : nullptr;
  const uint8_t* occ = bits.data_ptr<uint8_t>();
  auto counts = at::empty({n}, opts.dtype(at::kLong));
  int64_t* cnt = counts.data_ptr<int64_t>();
  dispatch(
      rays_o, "march_count", [&] { march_count_cpu(o, d, jit, n, p, occ, cnt); },
      FD_CUDA(return march_count_cuda(o, d, jit, n, p, occ, cnt, stream);));

  auto inclusive = at::cumsum(counts, 0);
  auto offsets = inclusive - counts;
  if (capacity < 0) capacity = n > 0 ? inclusive[n - 1].item<int64_t>() : 0;
  p.capacity = capacity;
  auto ray_out = at::full({capacity}, -1, opts.dtype(at::kLong));
  auto ts = at::zeros({capacity}, opts);
  auto te = at::zeros({capacity}, opts);
  const int64_t* off = offsets.data_ptr<int64_t>();
  int64_t* ray = ray_out.data_ptr<int64_t>();
  float* t0 = ts.data_ptr<float>();
  float* t1 = te.data_ptr<float>();
  dispatch(
      rays_o, "march_fill", [&] { march_fill_cpu(o, d, jit, n, p, occ, off, ray, t0, t1); },
      FD_CUDA(return march_fill_cuda(o, d, jit, n, p, occ, off, ray, t0, t1, stream);));
  return {ray_out, ts, te, counts};
}

void register_march(pybind11::module& m) {
  m.def("march", &march,
        "Occupancy-grid ray marching: (ray_indices [N] int64, t_starts [N], t_ends [N], counts [R] int64); "
        "capacity < 0 gives exact N, otherwise N = capacity with padding ray index -1",
        pybind11::arg("rays_o"), pybind11::arg("rays_d"), pybind11::arg("jitter"), pybind11::arg("bits"),
        pybind11::arg("aabb"), pybind11::arg("levels"), pybind11::arg("resolution"), pybind11::arg("near_plane"),
        pybind11::arg("far_plane"), pybind11::arg("step"), pybind11::arg("cone_angle"), pybind11::arg("capacity"));
}

}  // namespace fastdream
