// Torch-facing shading: checks, allocation, dispatch, register_shade.
#include "shade_launchers.h"

#include "fastdream/dispatch.h"

namespace fastdream {
namespace {

void check_shade(const at::Tensor& albedo, const at::Tensor& normals, const at::Tensor& positions,
                 const at::Tensor& light, double ambient, int64_t mode) {
  FD_CHECK_DIM(albedo, 2);
  FD_CHECK_SIZE(albedo, 1, 3);
  check_float_or_cpu_double(albedo, "albedo");
  FD_CHECK_CONTIGUOUS(albedo);
  check_like(normals, "normals", albedo, "albedo", albedo.sizes());
  check_like(positions, "positions", albedo, "albedo", albedo.sizes());
  check_like(light, "light_position", albedo, "albedo", {3});
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0 (albedo), 1 (lambertian) or 2 (textureless), got ", mode);
  TORCH_CHECK(ambient >= 0.0 && ambient <= 1.0, "ambient_ratio must be in [0, 1], got ", ambient);
}

}  // namespace

at::Tensor shade_forward(const at::Tensor& albedo, const at::Tensor& normals, const at::Tensor& positions,
                         const at::Tensor& light, double ambient, int64_t mode) {
  check_shade(albedo, normals, positions, light, ambient, mode);
  auto out = at::empty_like(albedo);
  const int64_t n = albedo.size(0);
  dispatch(
      albedo, "shade_forward",
      [&] {
        AT_DISPATCH_FLOATING_TYPES(albedo.scalar_type(), "shade_forward", [&] {
          shade_forward_cpu<scalar_t>(n, albedo.data_ptr<scalar_t>(), normals.data_ptr<scalar_t>(),
                                      positions.data_ptr<scalar_t>(), light.data_ptr<scalar_t>(),
                                      static_cast<scalar_t>(ambient), static_cast<int>(mode),
                                      out.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(return shade_forward_cuda(n, albedo.data_ptr<float>(), normals.data_ptr<float>(),
                                        positions.data_ptr<float>(), light.data_ptr<float>(),
                                        static_cast<float>(ambient), static_cast<int>(mode), out.data_ptr<float>(),
                                        stream);));
  return out;
}

std::vector<at::Tensor> shade_backward(const at::Tensor& g_out, const at::Tensor& albedo, const at::Tensor& normals,
                                       const at::Tensor& positions, const at::Tensor& light, double ambient,
                                       int64_t mode) {
  check_shade(albedo, normals, positions, light, ambient, mode);
  check_like(g_out, "grad_output", albedo, "albedo", albedo.sizes());
  auto ga = at::empty_like(albedo);
  auto gn = at::empty_like(normals);
  const int64_t n = albedo.size(0);
  dispatch(
      albedo, "shade_backward",
      [&] {
        AT_DISPATCH_FLOATING_TYPES(albedo.scalar_type(), "shade_backward", [&] {
          shade_backward_cpu<scalar_t>(n, g_out.data_ptr<scalar_t>(), albedo.data_ptr<scalar_t>(),
                                       normals.data_ptr<scalar_t>(), positions.data_ptr<scalar_t>(),
                                       light.data_ptr<scalar_t>(), static_cast<scalar_t>(ambient),
                                       static_cast<int>(mode), ga.data_ptr<scalar_t>(), gn.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(return shade_backward_cuda(n, g_out.data_ptr<float>(), albedo.data_ptr<float>(),
                                         normals.data_ptr<float>(), positions.data_ptr<float>(),
                                         light.data_ptr<float>(), static_cast<float>(ambient),
                                         static_cast<int>(mode), ga.data_ptr<float>(), gn.data_ptr<float>(),
                                         stream);));
  return {ga, gn};
}

void register_shade(pybind11::module& m) {
  m.def("shade_forward", &shade_forward, "Shading of samples: [N,3]", pybind11::arg("albedo"),
        pybind11::arg("normals"), pybind11::arg("positions"), pybind11::arg("light_position"),
        pybind11::arg("ambient_ratio"), pybind11::arg("mode"));
  m.def("shade_backward", &shade_backward, "Backward of shade: (grad_albedo, grad_normals)");
}

}  // namespace fastdream
