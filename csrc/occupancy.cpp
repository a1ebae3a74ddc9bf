// The occupancy grid lives in fastdream/occupancy.py: its update and its Morton-order bit packing are a few
// whole-tensor torch ops run every n steps, so they need no kernels of their own. The marcher that reads the
// packed bits is the `march` op (march.cpp); the bit layout is documented in include/fastdream/march.h.
#include <torch/extension.h>

namespace fastdream {

void register_occupancy(pybind11::module& m) { (void)m; }

}  // namespace fastdream
