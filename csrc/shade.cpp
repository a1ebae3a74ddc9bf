// Torch-facing shading: checks, allocation, dispatch, register_shade.
#include "shade.h"

#include "fastdream/torch_checks.h"

namespace fastdream {
namespace {

void check_shade(const at::Tensor& albedo, const at::Tensor& normals, const at::Tensor& positions,
                 const at::Tensor& light, double ambient, int64_t mode) {
  FD_CHECK_DIM(albedo, 2);
  FD_CHECK_SIZE(albedo, 1, 3);
  TORCH_CHECK(albedo.scalar_type() == at::kFloat || (albedo.scalar_type() == at::kDouble && !albedo.is_cuda()),
              "albedo must be float32 (or float64 on the CPU), got ", albedo.scalar_type());
  TORCH_CHECK(normals.sizes() == albedo.sizes(), "normals must have shape ", albedo.sizes(), ", got ",
              normals.sizes());
  TORCH_CHECK(positions.sizes() == albedo.sizes(), "positions must have shape ", albedo.sizes(), ", got ",
              positions.sizes());
  TORCH_CHECK(light.dim() == 1 && light.size(0) == 3, "light_position must have shape [3], got ", light.sizes());
  FD_CHECK_DTYPE(normals, albedo.scalar_type());
  FD_CHECK_DTYPE(positions, albedo.scalar_type());
  FD_CHECK_DTYPE(light, albedo.scalar_type());
  FD_CHECK_SAME_DEVICE(albedo, normals);
  FD_CHECK_SAME_DEVICE(albedo, positions);
  FD_CHECK_SAME_DEVICE(albedo, light);
  FD_CHECK_CONTIGUOUS(albedo);
  FD_CHECK_CONTIGUOUS(normals);
  FD_CHECK_CONTIGUOUS(positions);
  FD_CHECK_CONTIGUOUS(light);
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0 (albedo), 1 (lambertian) or 2 (textureless), got ", mode);
  TORCH_CHECK(ambient >= 0.0 && ambient <= 1.0, "ambient_ratio must be in [0, 1], got ", ambient);
}

}  // namespace

at::Tensor shade_forward(const at::Tensor& albedo, const at::Tensor& normals, const at::Tensor& positions,
                         const at::Tensor& light, double ambient, int64_t mode) {
  check_shade(albedo, normals, positions, light, ambient, mode);
  auto out = at::empty_like(albedo);
  const int64_t n = albedo.size(0);
  if (albedo.is_cuda()) {
#ifdef FASTDREAM_WITH_CUDA
    const c10::cuda::CUDAGuard guard(albedo.device());
    check_launch(shade_forward_cuda(n, albedo.data_ptr<float>(), normals.data_ptr<float>(),
                                    positions.data_ptr<float>(), light.data_ptr<float>(),
                                    static_cast<float>(ambient), static_cast<int>(mode), out.data_ptr<float>(),
                                    current_stream_ptr()),
                 "shade_forward");
#else
    no_cuda_kernels("shade");
#endif
  } else {
    AT_DISPATCH_FLOATING_TYPES(albedo.scalar_type(), "shade_forward", [&] {
      shade_forward_cpu<scalar_t>(n, albedo.data_ptr<scalar_t>(), normals.data_ptr<scalar_t>(),
                                  positions.data_ptr<scalar_t>(), light.data_ptr<scalar_t>(),
                                  static_cast<scalar_t>(ambient), static_cast<int>(mode), out.data_ptr<scalar_t>());
    });
  }
  return out;
}

std::vector<at::Tensor> shade_backward(const at::Tensor& g_out, const at::Tensor& albedo, const at::Tensor& normals,
                                       const at::Tensor& positions, const at::Tensor& light, double ambient,
                                       int64_t mode) {
  check_shade(albedo, normals, positions, light, ambient, mode);
  TORCH_CHECK(g_out.sizes() == albedo.sizes() && g_out.scalar_type() == albedo.scalar_type() &&
                  g_out.device() == albedo.device() && g_out.is_contiguous(),
              "grad_output must be a contiguous tensor like albedo");
  auto ga = at::empty_like(albedo);
  auto gn = at::empty_like(normals);
  const int64_t n = albedo.size(0);
  if (albedo.is_cuda()) {
#ifdef FASTDREAM_WITH_CUDA
    const c10::cuda::CUDAGuard guard(albedo.device());
    check_launch(shade_backward_cuda(n, g_out.data_ptr<float>(), albedo.data_ptr<float>(), normals.data_ptr<float>(),
                                     positions.data_ptr<float>(), light.data_ptr<float>(),
                                     static_cast<float>(ambient), static_cast<int>(mode), ga.data_ptr<float>(),
                                     gn.data_ptr<float>(), current_stream_ptr()),
                 "shade_backward");
#else
    no_cuda_kernels("shade");
#endif
  } else {
    AT_DISPATCH_FLOATING_TYPES(albedo.scalar_type(), "shade_backward", [&] {
      shade_backward_cpu<scalar_t>(n, g_out.data_ptr<scalar_t>(), albedo.data_ptr<scalar_t>(),
                                   normals.data_ptr<scalar_t>(), positions.data_ptr<scalar_t>(),
                                   light.data_ptr<scalar_t>(), static_cast<scalar_t>(ambient),
                                   static_cast<int>(mode), ga.data_ptr<scalar_t>(), gn.data_ptr<scalar_t>());
    });
  }
  return {ga, gn};
}

void register_shade(pybind11::module& m) {
  m.def("shade_forward", &shade_forward, "Shading of samples: [N,3]", pybind11::arg("albedo"),
        pybind11::arg("normals"), pybind11::arg("positions"), pybind11::arg("light_position"),
        pybind11::arg("ambient_ratio"), pybind11::arg("mode"));
  m.def("shade_backward", &shade_backward, "Backward of shade: (grad_albedo, grad_normals)");
}

}  // namespace fastdream
