// Helpers for .cu launchers: raw pointers and a stream in, an error string out. No torch here.
#pragma once

#include <cuda_runtime.h>
#include <cstdint>

namespace fastdream {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

inline const char* launch_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace fastdream
