// Placeholder: the torch-facing glue for occupancy lands here (checks, allocation, dispatch, register_occupancy).
#include <torch/extension.h>

namespace fastdream {

void register_occupancy(pybind11::module& m) { (void)m; }

}  // namespace fastdream
