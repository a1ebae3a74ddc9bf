// The pybind11 module fastdream._C: each op registers its own functions.
#include <torch/extension.h>

#include "fastdream/dispatch.h"

namespace fastdream {
void register_ray_aabb(pybind11::module& m);
void register_march(pybind11::module& m);
void register_composite(pybind11::module& m);
void register_shade(pybind11::module& m);
void register_hash_encode(pybind11::module& m);
}  // namespace fastdream

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "fastdream compiled kernels (CPU always, CUDA when built with it)";
  m.attr("with_cuda") = fastdream::kWithCuda;
  fastdream::register_ray_aabb(m);
  fastdream::register_march(m);
  fastdream::register_composite(m);
  fastdream::register_shade(m);
  fastdream::register_hash_encode(m);
}
