// The one dispatch path of every op: device guard, CPU or CUDA branch, launch check, and a clear error when
// CUDA tensors reach a build without CUDA kernels. For the torch-facing .cpp files only (never .cu files).
//
//   dispatch(rays_o, "ray_aabb_intersect",
//            [&] { ray_aabb_intersect_cpu(...); },
//            FD_CUDA(return ray_aabb_intersect_cuda(..., stream);));
//
// The launchers are declared in every build but defined only in .cu files, so a CPU-only build must not
// reference them: FD_CUDA(body) is the CUDA branch, a lambda over `void* stream` returning the launcher's
// error text, and expands to nullptr without CUDA. This is the extension's only FASTDREAM_WITH_CUDA test.
#pragma once

#include <cstddef>
#include <utility>

#include "fastdream/torch_checks.h"

namespace fastdream {

// Launchers return nullptr on success, or the CUDA error text.
inline void check_launch(const char* err, const char* op) {
  TORCH_CHECK(err == nullptr, "fastdream: CUDA kernel ", op, " failed: ", err ? err : "");
}

[[noreturn]] inline void no_cuda_kernels(const char* op) {
  TORCH_CHECK(false, "fastdream: ", op, " got CUDA tensors but fastdream._C was built without CUDA kernels; "
              "reinstall with a CUDA toolkit (FASTDREAM_BUILD_CUDA=1) or move the inputs to the CPU");
}

}  // namespace fastdream

#ifdef FASTDREAM_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that one needs the cuSPARSE/cuBLAS headers

#define FD_CUDA(...) [&](void* stream) -> const char* { __VA_ARGS__ }

namespace fastdream {
constexpr bool kWithCuda = true;

namespace detail {
// Launch on ref's device and its current stream (the one torch's own ops use), so no extra sync is needed.
template <typename Cuda>
void run_cuda(const at::Tensor& ref, const char* op, Cuda&& cuda) {
  const c10::cuda::CUDAGuard guard(ref.device());
  check_launch(cuda(static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream())), op);
}
}  // namespace detail
}  // namespace fastdream

#else
#define FD_CUDA(...) nullptr

namespace fastdream {
constexpr bool kWithCuda = false;

namespace detail {
inline void run_cuda(const at::Tensor&, const char* op, std::nullptr_t) { no_cuda_kernels(op); }
}  // namespace detail
}  // namespace fastdream
#endif

namespace fastdream {

// Runs cpu() for CPU tensors, else the FD_CUDA branch on ref's device; op names the kernel in both errors.
template <typename Cpu, typename Cuda>
void dispatch(const at::Tensor& ref, const char* op, Cpu&& cpu, Cuda&& cuda) {
  if (ref.is_cuda()) {
    detail::run_cuda(ref, op, std::forward<Cuda>(cuda));
  } else {
    cpu();
  }
}

}  // namespace fastdream
