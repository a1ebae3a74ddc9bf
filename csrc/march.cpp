// Placeholder: the torch-facing glue for march lands here (checks, allocation, dispatch, register_march).
#include <torch/extension.h>

namespace fastdream {

void register_march(pybind11::module& m) { (void)m; }

}  // namespace fastdream
