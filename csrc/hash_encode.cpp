// Placeholder: the torch-facing glue for hash_encode lands here (checks, allocation, dispatch, register_hash_encode).
#include <torch/extension.h>

namespace fastdream {

void register_hash_encode(pybind11::module& m) { (void)m; }

}  // namespace fastdream
