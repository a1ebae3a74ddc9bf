// Torch-facing compositing (composite, render_weights and their backward passes): checks, allocation, dispatch.
#include "composite_launchers.h"

#include "fastdream/dispatch.h"

namespace fastdream {
namespace {

void check_samples(const at::Tensor& sigmas, const at::Tensor& ts, const at::Tensor& te, const at::Tensor& ray,
                   int64_t n_rays) {
  FD_CHECK_DIM(sigmas, 1);
  const int64_t n = sigmas.size(0);
  check_float_or_cpu_double(sigmas, "sigmas");
  FD_CHECK_CONTIGUOUS(sigmas);
  check_like(ts, "t_starts", sigmas, "sigmas", {n});
  check_like(te, "t_ends", sigmas, "sigmas", {n});
  TORCH_CHECK(ray.dim() == 1 && ray.size(0) == n, "ray_indices must have shape [", n, "], got ", ray.sizes());
  FD_CHECK_DTYPE(ray, at::kLong);
  FD_CHECK_SAME_DEVICE(sigmas, ray);
  FD_CHECK_CONTIGUOUS(ray);
  TORCH_CHECK(n_rays >= 0, "n_rays must be >= 0, got ", n_rays);
}

// Each ray's [begin, end) in the packed samples; both kernels of an op read them.
struct Segments {
  at::Tensor begin, end;
  const int64_t* b() const { return begin.data_ptr<int64_t>(); }
  const int64_t* e() const { return end.data_ptr<int64_t>(); }
};

Segments segments(const at::Tensor& ray, int64_t n_rays) {
  Segments s{at::zeros({n_rays}, ray.options()), at::zeros({n_rays}, ray.options())};
  int64_t* b = s.begin.data_ptr<int64_t>();
  int64_t* e = s.end.data_ptr<int64_t>();
  dispatch(
      ray, "ray_segments", [&] { ray_segments_cpu(ray.data_ptr<int64_t>(), ray.numel(), n_rays, b, e); },
      FD_CUDA(return ray_segments_cuda(ray.data_ptr<int64_t>(), ray.numel(), n_rays, b, e, stream);));
  return s;
}

template <typename T>
T* ptr_or_null(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? t->data_ptr<T>() : nullptr;
}

}  // namespace

// (colors [R,3], opacities [R], depths [R]); with rgbs = None, colors is empty and with_weights adds weights [N].
std::vector<at::Tensor> composite_forward(const at::Tensor& sigmas, const c10::optional<at::Tensor>& rgbs,
                                          const at::Tensor& ts, const at::Tensor& te, const at::Tensor& ray,
                                          int64_t n_rays, double thre, bool with_weights) {
  check_samples(sigmas, ts, te, ray, n_rays);
  const int64_t n = sigmas.size(0);
  if (rgbs.has_value()) check_like(*rgbs, "rgbs", sigmas, "sigmas", {n, 3});
  auto opts = sigmas.options();
  auto color = rgbs.has_value() ? at::zeros({n_rays, 3}, opts) : at::zeros({0, 3}, opts);
  auto opacity = at::zeros({n_rays}, opts);
  auto depth = at::zeros({n_rays}, opts);
  auto weights = with_weights ? at::zeros({n}, opts) : at::zeros({0}, opts);
  // Segments are built inside each branch, so a CPU-only build names this op when given CUDA tensors.
  dispatch(
      sigmas, "composite_forward",
      [&] {
        const Segments seg = segments(ray, n_rays);
        AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_forward", [&] {
          composite_forward_cpu<scalar_t>(seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(),
                                          sigmas.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(rgbs),
                                          ts.data_ptr<scalar_t>(), te.data_ptr<scalar_t>(),
                                          static_cast<scalar_t>(thre),
                                          with_weights ? weights.data_ptr<scalar_t>() : nullptr,
                                          rgbs.has_value() ? color.data_ptr<scalar_t>() : nullptr,
                                          opacity.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(const Segments seg = segments(ray, n_rays);
              return composite_forward_cuda(seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(),
                                            sigmas.data_ptr<float>(), ptr_or_null<float>(rgbs),
                                            ts.data_ptr<float>(), te.data_ptr<float>(), static_cast<float>(thre),
                                            with_weights ? weights.data_ptr<float>() : nullptr,
                                            rgbs.has_value() ? color.data_ptr<float>() : nullptr,
                                            opacity.data_ptr<float>(), depth.data_ptr<float>(), stream);));
  return {color, opacity, depth, weights};
}

// (grad_sigmas [N], grad_rgbs [N,3]) from the inputs, the forward outputs and their gradients.
std::vector<at::Tensor> composite_backward(const at::Tensor& g_color, const at::Tensor& g_opacity,
                                           const at::Tensor& g_depth, const at::Tensor& sigmas,
                                           const at::Tensor& rgbs, const at::Tensor& ts, const at::Tensor& te,
                                           const at::Tensor& ray, const at::Tensor& color,
                                           const at::Tensor& opacity, const at::Tensor& depth, double thre) {
  const int64_t n_rays = opacity.size(0);
  check_samples(sigmas, ts, te, ray, n_rays);
  const int64_t n = sigmas.size(0);
  check_like(rgbs, "rgbs", sigmas, "sigmas", {n, 3});
  check_like(color, "colors", sigmas, "sigmas", {n_rays, 3});
  check_like(opacity, "opacities", sigmas, "sigmas", {n_rays});
  check_like(depth, "depths", sigmas, "sigmas", {n_rays});
  check_like(g_color, "grad_colors", sigmas, "sigmas", {n_rays, 3});
  check_like(g_opacity, "grad_opacities", sigmas, "sigmas", {n_rays});
  check_like(g_depth, "grad_depths", sigmas, "sigmas", {n_rays});
  auto grad_sigmas = at::zeros_like(sigmas);
  auto grad_rgbs = at::zeros_like(rgbs);
  dispatch(
      sigmas, "composite_backward",
      [&] {
        const Segments seg = segments(ray, n_rays);
        AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "composite_backward", [&] {
          composite_backward_cpu<scalar_t>(
              seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(), sigmas.data_ptr<scalar_t>(),
              rgbs.data_ptr<scalar_t>(), ts.data_ptr<scalar_t>(), te.data_ptr<scalar_t>(),
              static_cast<scalar_t>(thre), color.data_ptr<scalar_t>(), opacity.data_ptr<scalar_t>(),
              depth.data_ptr<scalar_t>(), g_color.data_ptr<scalar_t>(), g_opacity.data_ptr<scalar_t>(),
              g_depth.data_ptr<scalar_t>(), grad_sigmas.data_ptr<scalar_t>(), grad_rgbs.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(const Segments seg = segments(ray, n_rays);
              return composite_backward_cuda(
                  seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(), sigmas.data_ptr<float>(), rgbs.data_ptr<float>(),
                  ts.data_ptr<float>(), te.data_ptr<float>(), static_cast<float>(thre), color.data_ptr<float>(),
                  opacity.data_ptr<float>(), depth.data_ptr<float>(), g_color.data_ptr<float>(),
                  g_opacity.data_ptr<float>(), g_depth.data_ptr<float>(), grad_sigmas.data_ptr<float>(),
                  grad_rgbs.data_ptr<float>(), stream);));
  return {grad_sigmas, grad_rgbs};
}

at::Tensor render_weights_backward(const at::Tensor& g_weights, const at::Tensor& weights, const at::Tensor& sigmas,
                                   const at::Tensor& ts, const at::Tensor& te, const at::Tensor& ray, int64_t n_rays,
                                   double thre) {
  check_samples(sigmas, ts, te, ray, n_rays);
  const int64_t n = sigmas.size(0);
  check_like(weights, "weights", sigmas, "sigmas", {n});
  check_like(g_weights, "grad_weights", sigmas, "sigmas", {n});
  auto grad_sigmas = at::zeros_like(sigmas);
  dispatch(
      sigmas, "render_weights_backward",
      [&] {
        const Segments seg = segments(ray, n_rays);
        AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "render_weights_backward", [&] {
          weights_backward_cpu<scalar_t>(seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(),
                                         sigmas.data_ptr<scalar_t>(), ts.data_ptr<scalar_t>(),
                                         te.data_ptr<scalar_t>(), static_cast<scalar_t>(thre),
                                         weights.data_ptr<scalar_t>(), g_weights.data_ptr<scalar_t>(),
                                         grad_sigmas.data_ptr<scalar_t>());
        });
      },
      FD_CUDA(const Segments seg = segments(ray, n_rays);
              return weights_backward_cuda(seg.b(), seg.e(), n_rays, ray.data_ptr<int64_t>(),
                                           sigmas.data_ptr<float>(), ts.data_ptr<float>(), te.data_ptr<float>(),
                                           static_cast<float>(thre), weights.data_ptr<float>(),
                                           g_weights.data_ptr<float>(), grad_sigmas.data_ptr<float>(), stream);));
  return grad_sigmas;
}

void register_composite(pybind11::module& m) {
  m.def("composite_forward", &composite_forward,
        "Volume compositing: (colors [R,3], opacities [R], depths [R], weights [N] or empty)",
        pybind11::arg("sigmas"), pybind11::arg("rgbs"), pybind11::arg("t_starts"), pybind11::arg("t_ends"),
        pybind11::arg("ray_indices"), pybind11::arg("n_rays"), pybind11::arg("transmittance_thre"),
        pybind11::arg("with_weights"));
  m.def("composite_backward", &composite_backward, "Backward of composite: (grad_sigmas, grad_rgbs)");
  m.def("render_weights_backward", &render_weights_backward, "Backward of render_weights: grad_sigmas");
}

}  // namespace fastdream
