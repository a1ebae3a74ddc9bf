#include "march_launchers.h"

#include "fastdream/cuda_launch.h"

namespace fastdream {
namespace {

// One thread per ray. The count pass and the fill pass run the same march, so they agree sample for sample.
template <bool kWrite>
__global__ void march_kernel(const float* __restrict__ rays_o, const float* __restrict__ rays_d,
                             const float* __restrict__ jitter, int64_t n_rays, const MarchParams p,
                             const uint8_t* __restrict__ bits, const int64_t* __restrict__ offsets, int64_t* counts,
                             int64_t* ray_out, float* ts_out, float* te_out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n_rays) return;
  if (kWrite && offsets[i] >= p.capacity) return;
  const float3_ o = load_f3(rays_o + 3 * i), d = load_f3(rays_d + 3 * i);
  float t0, t_hi;
  int64_t n = 0;
  if (march_setup(p, o, d, jitter ? jitter[i] : 0.0f, &t0, &t_hi)) {
    n = march_ray<kWrite>(p, bits, o, d, t0, t_hi, i, kWrite ? offsets[i] : 0, ray_out, ts_out, te_out);
  }
  if (!kWrite) counts[i] = n;
}

}  // namespace

const char* march_count_cuda(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                             const MarchParams& p, const uint8_t* bits, int64_t* counts, void* stream) {
  if (n_rays == 0) return nullptr;
  march_kernel<false><<<blocks_for(n_rays, 128), 128, 0, static_cast<cudaStream_t>(stream)>>>(
      rays_o, rays_d, jitter, n_rays, p, bits, nullptr, counts, nullptr, nullptr, nullptr);
  return launch_error();
}

const char* march_fill_cuda(const float* rays_o, const float* rays_d, const float* jitter, int64_t n_rays,
                            const MarchParams& p, const uint8_t* bits, const int64_t* offsets, int64_t* ray_out,
                            float* ts_out, float* te_out, void* stream) {
  if (n_rays == 0 || p.capacity == 0) return nullptr;
  march_kernel<true><<<blocks_for(n_rays, 128), 128, 0, static_cast<cudaStream_t>(stream)>>>(
      rays_o, rays_d, jitter, n_rays, p, bits, offsets, nullptr, ray_out, ts_out, te_out);
  return launch_error();
}

}  // namespace fastdream
