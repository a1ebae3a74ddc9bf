// Placeholder: the torch-facing glue for composite lands here (checks, allocation, dispatch, register_composite).
#include <torch/extension.h>

namespace fastdream {

void register_composite(pybind11::module& m) { (void)m; }

}  // namespace fastdream
