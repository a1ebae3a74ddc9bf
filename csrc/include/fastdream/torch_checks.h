// Tensor checks and CUDA-stream glue for the torch-facing .cpp files (never included by .cu files).
#pragma once

#include <torch/extension.h>

#ifdef FASTDREAM_WITH_CUDA
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs the cuSPARSE/cuBLAS headers
#include <c10/cuda/CUDAGuard.h>
#endif

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

// The stream the CUDA launchers run on, as void* so launcher headers need no CUDA types.
inline void* current_stream_ptr() {
#ifdef FASTDREAM_WITH_CUDA
  return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream());
#else
  return nullptr;
#endif
}

// Launchers return nullptr on success, or the CUDA error text.
inline void check_launch(const char* err, const char* op) {
  TORCH_CHECK(err == nullptr, "fastdream: CUDA kernel ", op, " failed: ", err ? err : "");
}

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

[[noreturn]] inline void no_cuda_kernels(const char* op) {
  TORCH_CHECK(false, "fastdream: ", op, " got CUDA tensors but fastdream._C was built without CUDA kernels; "
              "reinstall with a CUDA toolkit (FASTDREAM_BUILD_CUDA=1) or move the inputs to the CPU");
}

}  // namespace fastdream
