"""Does a C++ TORCH_CHECK failure in fastdream._C reach Python as a RuntimeError on this machine's build?

One device run (torch 2.11, Python 3.12) saw the tests that call _C directly with bad input die with SIGSEGV
instead. This script calls each binding once with an input its C++ checks refuse, prints one line per case, and
exits 0 when every case raised RuntimeError. bench/gpu_check.sh runs it, and when it dies by a signal, runs it
again under cuda-gdb for a native backtrace.

    python bench/probe_exceptions.py            # all cases
    python bench/probe_exceptions.py CASE       # one case by name
"""
from __future__ import annotations

import faulthandler
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout, not installed

faulthandler.enable()


def cases(C):
    aabb = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    yield "ray_aabb_noncontiguous", lambda: C.ray_aabb_intersect(torch.zeros(3, 4)[:, :3], torch.zeros(3, 3), aabb)
    yield "ray_aabb_bad_aabb", lambda: C.ray_aabb_intersect(torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(4))
    yield "hash_bad_features", lambda: C.hash_encode_forward(
        torch.rand(10, 3), torch.zeros(64), torch.zeros(1, 4, dtype=torch.int64), torch.ones(1), 3)
    z3 = torch.zeros(4, 3)
    yield "shade_bad_light", lambda: C.shade_forward(z3, z3, z3, torch.zeros(2), 0.1, 1)
    z = torch.zeros(5)
    yield "composite_bad_indices", lambda: C.composite_forward(z, None, z, z, z, 2, 1e-4, False)
    yield "march_bad_bits", lambda: C.march(z3, z3, None, torch.zeros(3), [-1, -1, -1, 1, 1, 1], 1, 8, 0.0, 1e10,
                                            0.01, 0.0, 64)
    if torch.cuda.is_available() and getattr(C, "with_cuda", False):  # the same checks in front of the kernels
        g3 = torch.zeros(4, 3, device="cuda")
        yield "cuda_ray_aabb_noncontiguous", lambda: C.ray_aabb_intersect(
            torch.zeros(3, 4, device="cuda")[:, :3], torch.zeros(3, 3, device="cuda"), aabb.cuda())
        yield "cuda_shade_bad_light", lambda: C.shade_forward(g3, g3, g3, torch.zeros(2, device="cuda"), 0.1, 1)


def main(argv: list[str]) -> int:
    from fastdream import _backend

    C = _backend.load()
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}, _C from {C.__file__}", flush=True)
    failed = 0
    for name, call in cases(C):
        if argv and name not in argv:
            continue
        print(f"{name}: calling", flush=True)
        try:
            call()
        except RuntimeError as e:
            print(f"{name}: ok, RuntimeError: {str(e).splitlines()[0][:120]}", flush=True)
        except TypeError as e:  # argument count/type refused by pybind11 itself: still a clean Python error
            print(f"{name}: ok, TypeError from pybind11: {str(e).splitlines()[0][:120]}", flush=True)
        except Exception as e:  # noqa: BLE001 - report any other clean exception as a finding
            failed += 1
            print(f"{name}: UNEXPECTED {type(e).__name__}: {e}", flush=True)
        else:
            failed += 1
            print(f"{name}: UNEXPECTED, no exception", flush=True)
    print(f"probe_exceptions: {'all cases raised' if not failed else f'{failed} case(s) misbehaved'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
