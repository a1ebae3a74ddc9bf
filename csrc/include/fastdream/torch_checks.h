// Tensor checks for the torch-facing .cpp files (never included by .cu files).
#pragma once

#include <torch/extension.h>

// Each check names the argument, so a user sees which input was wrong.
#define FD_CHECK_DTYPE(x, dt) \
  TORCH_CHECK((x).scalar_type() == (dt), #x " must be ", c10::toString(dt), ", got ", (x).scalar_type())
#define FD_CHECK_CONTIGUOUS(x) TORCH_CHECK((x).is_contiguous(), #x " must be contiguous")
#define FD_CHECK_DIM(x, n) TORCH_CHECK((x).dim() == (n), #x " must have ", n, " dims, got shape ", (x).sizes())
#define FD_CHECK_SIZE(x, d, n) \
  TORCH_CHECK((x).size(d) == (n), #x " must have size ", n, " in dim ", d, ", got shape ", (x).sizes())
#define FD_CHECK_SAME_DEVICE(x, y) \
  TORCH_CHECK((x).device() == (y).device(), #x " is on ", (x).device(), " but " #y " is on ", (y).device())

namespace fastdream {

// rays_o, rays_d: [R, 3] float32, contiguous, on one device (what every ray op takes).
inline void check_rays(const at::Tensor& rays_o, const at::Tensor& rays_d) {
  FD_CHECK_DIM(rays_o, 2);
  FD_CHECK_SIZE(rays_o, 1, 3);
  TORCH_CHECK(rays_d.sizes() == rays_o.sizes(), "rays_d must have the shape of rays_o ", rays_o.sizes(), ", got ",
              rays_d.sizes());
  FD_CHECK_DTYPE(rays_o, at::kFloat);
  FD_CHECK_DTYPE(rays_d, at::kFloat);
  FD_CHECK_SAME_DEVICE(rays_o, rays_d);
  FD_CHECK_CONTIGUOUS(rays_o);
  FD_CHECK_CONTIGUOUS(rays_d);
}

// x must match ref in dtype and device, be contiguous and have `shape` (outputs, gradients, per-ray inputs).
inline void check_like(const at::Tensor& x, const char* name, const at::Tensor& ref, const char* ref_name,
                       at::IntArrayRef shape) {
  TORCH_CHECK(x.sizes() == shape, name, " must have shape ", shape, ", got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == ref.scalar_type(), name, " must be ", ref.scalar_type(), ", got ", x.scalar_type());
  TORCH_CHECK(x.device() == ref.device(), name, " is on ", x.device(), " but ", ref_name, " is on ", ref.device());
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
}

// The CPU kernels also run in float64 (for gradcheck); the CUDA kernels are float32 only.
inline void check_float_or_cpu_double(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || (x.scalar_type() == at::kDouble && !x.is_cuda()), name,
              " must be float32 (or float64 on the CPU), got ", x.scalar_type(), " on ", x.device());
}

}  // namespace fastdream
