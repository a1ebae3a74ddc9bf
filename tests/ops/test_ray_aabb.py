"""ray_aabb_intersect: the C++ (and CUDA) kernels against the PyTorch reference."""
from __future__ import annotations

import pytest
import torch

from fastdream import ops
from fastdream.ops import reference as ref

AABB = torch.tensor([-1.0, -0.5, -2.0, 1.0, 1.5, 0.5])


def random_rays(n: int, gen: torch.Generator):
    """Origins inside and outside the box, random directions, some exactly parallel to slabs."""
    rays_o = torch.rand(n, 3, generator=gen) * 6 - 3
    rays_d = torch.randn(n, 3, generator=gen)
    parallel = torch.rand(n, 3, generator=gen) < 0.15
    rays_d[parallel] = 0.0
    rays_d[(rays_d == 0).all(-1), 0] = 1.0
    return rays_o, rays_d


def assert_matches(out, expected):
    t_near, t_far, hit = out
    e_near, e_far, e_hit = expected
    assert torch.equal(hit, e_hit)
    torch.testing.assert_close(t_near, e_near, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(t_far, e_far, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_cpu_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    rays_o, rays_d = random_rays(2000, gen)
    out = ops.ray_aabb_intersect(rays_o, rays_d, AABB)
    assert_matches(out, ref.ray_aabb_intersect(rays_o, rays_d, AABB))
    assert out[2].any() and (~out[2]).any(), "the random rays should both hit and miss"


def test_known_cases():
    rays_o = torch.tensor([
        [0.0, 0.5, -1.0],   # inside the box
        [-5.0, 0.5, -1.0],  # hits the x slabs head on
        [-5.0, 0.5, -1.0],  # points away: miss
        [0.0, 3.0, -1.0],   # parallel to y slab, outside it: miss
        [0.0, 0.5, -1.0],   # parallel to two slabs, inside: hit
    ])
    rays_d = torch.tensor([
        [1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
    ])
    t_near, t_far, hit = ops.ray_aabb_intersect(rays_o, rays_d, AABB)
    assert hit.tolist() == [True, True, False, False, True]
    torch.testing.assert_close(t_near[[0, 1, 4]], torch.tensor([0.0, 4.0, 0.0]))
    torch.testing.assert_close(t_far[[0, 1, 4]], torch.tensor([1.0, 6.0, 1.5]))
    assert torch.isinf(t_near[[2, 3]]).all()


def test_nonfinite_rays_and_degenerate_box_miss():
    rays_o = torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    rays_d = torch.tensor([[1.0, 0.0, 0.0], [float("inf"), 0.0, 0.0], [1.0, 0.0, 0.0]])
    t_near, t_far, hit = ops.ray_aabb_intersect(rays_o, rays_d, AABB)
    assert hit.tolist() == [False, False, True]
    assert_matches((t_near, t_far, hit), ref.ray_aabb_intersect(rays_o, rays_d, AABB))
    flipped = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    assert not ops.ray_aabb_intersect(rays_o, rays_d, flipped)[2].any()
    assert not ref.ray_aabb_intersect(rays_o, rays_d, flipped)[2].any()


def test_zero_rays():
    empty = torch.zeros(0, 3)
    t_near, t_far, hit = ops.ray_aabb_intersect(empty, empty, AABB)
    assert t_near.shape == (0,) and hit.dtype == torch.bool


def test_non_contiguous_input_is_accepted():
    rays = torch.randn(100, 6)
    rays_o, rays_d = rays[:, :3], rays[:, 3:]
    assert not rays_o.is_contiguous()
    assert_matches(ops.ray_aabb_intersect(rays_o, rays_d, AABB), ref.ray_aabb_intersect(rays_o, rays_d, AABB))


@pytest.mark.parametrize(
    "rays_o, rays_d, aabb, match",
    [
        (torch.zeros(4, 2), torch.zeros(4, 2), AABB, "rays_o must have shape"),
        (torch.zeros(4, 3), torch.zeros(5, 3), AABB, "rays_d must have shape"),
        (torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, 3), AABB, "rays_o must be torch.float32"),
        (torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.int32), AABB, "rays_d must be torch.float32"),
        (torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(5), "aabb must have shape"),
        (torch.zeros(4, 3), torch.zeros(4, 3), [0, 0, 0, 1, 1, 1], "aabb must be a torch.Tensor"),
        (torch.zeros(4, 3), torch.zeros(4, 3), AABB.to(torch.float16), "aabb must be torch.float32"),
        (torch.zeros(4, 3), torch.zeros(4, 3, device="meta"), AABB, "rays_d is on meta"),
    ],
)
def test_bad_input_names_the_argument(rays_o, rays_d, aabb, match):
    with pytest.raises(ValueError, match=match):
        ops.ray_aabb_intersect(rays_o, rays_d, aabb)


def test_kernel_checks_directly():
    """The C++ layer checks too, for callers that bypass the Python wrapper."""
    from fastdream import _backend

    C = _backend.load()
    with pytest.raises(RuntimeError, match="rays_o must be contiguous"):
        C.ray_aabb_intersect(torch.zeros(3, 4)[:, :3], torch.zeros(3, 3), AABB)
    with pytest.raises(RuntimeError, match="aabb must have size 6"):
        C.ray_aabb_intersect(torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(4))
    with pytest.raises(RuntimeError, match="rays_d must be Float"):
        C.ray_aabb_intersect(torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.float64), AABB)


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda_device):
    gen = torch.Generator().manual_seed(7)
    rays_o, rays_d = random_rays(100_000, gen)
    cpu = ops.ray_aabb_intersect(rays_o, rays_d, AABB)
    gpu = ops.ray_aabb_intersect(rays_o.to(cuda_device), rays_d.to(cuda_device), AABB.to(cuda_device))
    assert_matches(tuple(t.cpu() for t in gpu), cpu)


@pytest.mark.cuda
def test_cuda_device_mix_is_rejected(cuda_device):
    with pytest.raises(ValueError, match="is on"):
        ops.ray_aabb_intersect(torch.zeros(2, 3, device=cuda_device), torch.zeros(2, 3), AABB)
