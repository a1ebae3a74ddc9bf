// Placeholder: the torch-facing glue for shade lands here (checks, allocation, dispatch, register_shade).
#include <torch/extension.h>

namespace fastdream {

void register_shade(pybind11::module& m) { (void)m; }

}  // namespace fastdream
