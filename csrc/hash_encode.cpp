// Torch-facing hash_encode: checks, allocation, dispatch to the CPU or CUDA kernels.
#include "hash_encode_launchers.h"

#include "fastdream/dispatch.h"

namespace fastdream {
namespace {

// Builds and validates the level table, so a kernel can never index past `params`.
HashLevels make_levels(const at::Tensor& level_meta, const at::Tensor& level_scale, int64_t n_features,
                       int64_t n_params) {
  TORCH_CHECK(n_features == 1 || n_features == 2 || n_features == 4 || n_features == 8,
              "n_features must be 1, 2, 4 or 8, got ", n_features);
  FD_CHECK_DIM(level_meta, 2);
  FD_CHECK_SIZE(level_meta, 1, 4);
  FD_CHECK_DTYPE(level_meta, at::kLong);
  FD_CHECK_DTYPE(level_scale, at::kFloat);
  TORCH_CHECK(level_meta.device().is_cpu() && level_scale.device().is_cpu(),
              "level_meta and level_scale must be CPU tensors");
  const int64_t L = level_meta.size(0);
  TORCH_CHECK(L >= 1 && L <= kHashMaxLevels, "level_meta must have 1 to ", kHashMaxLevels, " levels, got ", L);
  TORCH_CHECK(level_scale.dim() == 1 && level_scale.size(0) == L, "level_scale must have shape [", L, "], got ",
              level_scale.sizes());
  const auto meta = level_meta.contiguous();
  const auto scale = level_scale.contiguous();
  const int64_t* m = meta.data_ptr<int64_t>();
  const float* s = scale.data_ptr<float>();
  HashLevels lv{};
  lv.n_levels = static_cast<int>(L);
  lv.n_features = static_cast<int>(n_features);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t offset = m[4 * l], size = m[4 * l + 1], res = m[4 * l + 2], hashed = m[4 * l + 3];
    TORCH_CHECK(offset >= 0 && size > 0 && size <= (int64_t{1} << 32) - 1 && res > 0 && res < (int64_t{1} << 31) &&
                    (hashed == 0 || hashed == 1),
                "level_meta row ", l, " is invalid: (offset, size, res, hashed) = (", offset, ", ", size, ", ", res,
                ", ", hashed, ")");
    TORCH_CHECK((offset + size) * n_features <= n_params, "params has ", n_params, " values, but level ", l,
                " needs ", (offset + size) * n_features);
    TORCH_CHECK(std::isfinite(s[l]) && s[l] >= 0.0f && s[l] < 1.0e9f, "level_scale[", l, "] must be finite, >= 0 "
                "and < 1e9, got ", s[l]);
    lv.level[l] = HashLevel{offset * n_features, static_cast<uint32_t>(size), static_cast<uint32_t>(res),
                            static_cast<uint32_t>(hashed), s[l]};
  }
  return lv;
}

void check_inputs(const at::Tensor& x, const at::Tensor& params) {
  FD_CHECK_DIM(x, 2);
  FD_CHECK_SIZE(x, 1, 3);
  FD_CHECK_DIM(params, 1);
  FD_CHECK_CONTIGUOUS(x);
  FD_CHECK_CONTIGUOUS(params);
  FD_CHECK_SAME_DEVICE(x, params);
  if (x.is_cuda()) {
    FD_CHECK_DTYPE(x, at::kFloat);
    TORCH_CHECK(params.scalar_type() == at::kFloat || params.scalar_type() == at::kHalf,
                "params must be Float or Half on CUDA, got ", params.scalar_type());
  } else {
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be Float or Double, got ",
                x.scalar_type());
    TORCH_CHECK(params.scalar_type() == x.scalar_type(), "params must have the dtype of x (", x.scalar_type(),
                "), got ", params.scalar_type());
  }
}

}  // namespace

at::Tensor hash_encode_forward(const at::Tensor& x, const at::Tensor& params, const at::Tensor& level_meta,
                               const at::Tensor& level_scale, int64_t n_features) {
  check_inputs(x, params);
  const HashLevels lv = make_levels(level_meta, level_scale, n_features, params.numel());
  const int64_t n = x.size(0);
  auto out = at::empty({n, lv.n_levels * n_features}, x.options());
  if (n == 0) return out;
  dispatch(
      x, "hash_encode_forward",
      [&] {
        AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "hash_encode_forward", [&] {
          hash_encode_forward_cpu<scalar_t>(x.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(), n, lv,
                                            out.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(return hash_encode_forward_cuda(x.data_ptr<float>(), params.data_ptr(),
                                              params.scalar_type() == at::kHalf, n, lv, out.data_ptr<float>(),
                                              stream);));
  return out;
}

// Returns (grad_params, grad_x); a gradient not asked for comes back as an empty tensor.
// grad_params is float32 on CUDA whatever the table dtype (fp32 accumulation).
std::vector<at::Tensor> hash_encode_backward(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& params,
                                             const at::Tensor& level_meta, const at::Tensor& level_scale,
                                             int64_t n_features, bool need_params, bool need_x) {
  check_inputs(x, params);
  const HashLevels lv = make_levels(level_meta, level_scale, n_features, params.numel());
  const int64_t n = x.size(0);
  check_like(grad_out, "grad_out", x, "x", {n, lv.n_levels * n_features});
  at::Tensor grad_params = need_params ? at::zeros({params.numel()}, x.options()) : at::empty({0}, x.options());
  at::Tensor grad_x = need_x ? at::zeros({n, 3}, x.options()) : at::empty({0}, x.options());
  if (n == 0 || (!need_params && !need_x)) return {grad_params, grad_x};
  dispatch(
      x, "hash_encode_backward",
      [&] {
        AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "hash_encode_backward", [&] {
          hash_encode_backward_cpu<scalar_t>(grad_out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                             params.data_ptr<scalar_t>(), n, lv,
                                             need_params ? grad_params.data_ptr<scalar_t>() : nullptr,
                                             need_x ? grad_x.data_ptr<scalar_t>() : nullptr);
        });
      },
      FD_CUDA(return hash_encode_backward_cuda(grad_out.data_ptr<float>(), x.data_ptr<float>(), params.data_ptr(),
                                               params.scalar_type() == at::kHalf, n, lv,
                                               need_params ? grad_params.data_ptr<float>() : nullptr,
                                               need_x ? grad_x.data_ptr<float>() : nullptr, stream);));
  return {grad_params, grad_x};
}

void register_hash_encode(pybind11::module& m) {
  m.def("hash_encode_forward", &hash_encode_forward,
        "Hash-grid encoding (tcnn layout): x [N,3] -> [N, L*F]", pybind11::arg("x"), pybind11::arg("params"),
        pybind11::arg("level_meta"), pybind11::arg("level_scale"), pybind11::arg("n_features"));
  m.def("hash_encode_backward", &hash_encode_backward, "Hash-grid encoding backward: (grad_params, grad_x)",
        pybind11::arg("grad_out"), pybind11::arg("x"), pybind11::arg("params"), pybind11::arg("level_meta"),
        pybind11::arg("level_scale"), pybind11::arg("n_features"), pybind11::arg("need_params"),
        pybind11::arg("need_x"));
}

}  // namespace fastdream
