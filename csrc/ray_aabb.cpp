// Torch-facing ray_aabb_intersect: checks, allocation, dispatch.
#include "ray_aabb_launchers.h"

#include "fastdream/dispatch.h"

namespace fastdream {

std::vector<at::Tensor> ray_aabb_intersect(const at::Tensor& rays_o, const at::Tensor& rays_d,
                                           const at::Tensor& aabb) {
  check_rays(rays_o, rays_d);
  FD_CHECK_DIM(aabb, 1);
  FD_CHECK_SIZE(aabb, 0, 6);
  FD_CHECK_DTYPE(aabb, at::kFloat);
  FD_CHECK_SAME_DEVICE(rays_o, aabb);
  FD_CHECK_CONTIGUOUS(aabb);

  const int64_t n = rays_o.size(0);
  auto t_near = at::empty({n}, rays_o.options());
  auto t_far = at::empty({n}, rays_o.options());
  auto hit = at::empty({n}, rays_o.options().dtype(at::kBool));
  dispatch(
      rays_o, "ray_aabb_intersect",
      [&] {
        ray_aabb_intersect_cpu(rays_o.data_ptr<float>(), rays_d.data_ptr<float>(), aabb.data_ptr<float>(), n,
                               t_near.data_ptr<float>(), t_far.data_ptr<float>(), hit.data_ptr<bool>());
      },
      FD_CUDA(return ray_aabb_intersect_cuda(rays_o.data_ptr<float>(), rays_d.data_ptr<float>(),
                                             aabb.data_ptr<float>(), n, t_near.data_ptr<float>(),
                                             t_far.data_ptr<float>(), hit.data_ptr<bool>(), stream);));
  return {t_near, t_far, hit};
}

void register_ray_aabb(pybind11::module& m) {
  m.def("ray_aabb_intersect", &ray_aabb_intersect, "Slab test: (t_near [R], t_far [R], hit [R] bool)",
        pybind11::arg("rays_o"), pybind11::arg("rays_d"), pybind11::arg("aabb"));
}

}  // namespace fastdream
