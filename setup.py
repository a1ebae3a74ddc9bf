"""Builds fastdream and its one extension, fastdream._C (CPU kernels always, CUDA kernels when possible).

Environment: FASTDREAM_BUILD_CUDA=auto|0|1, TORCH_CUDA_ARCH_LIST, MAX_JOBS, LINE_INFO=1, NVCC_FLAGS.
"""
import importlib.util
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_fastdream_buildcfg", ROOT / "fastdream" / "_buildcfg.py")
cfg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cfg)

cfg.ensure_cuda_home()  # must precede the cpp_extension import, which reads CUDA_HOME once
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

try:
    with_cuda, why = cfg.decide_cuda(os.environ.get("FASTDREAM_BUILD_CUDA", "auto"))
except (RuntimeError, ValueError) as exc:
    sys.exit(f"fastdream setup: {exc}")
print(f"fastdream setup: CUDA kernels {'ON' if with_cuda else 'OFF'} ({why})", flush=True)

cpp_sources, cuda_sources = cfg.read_sources(ROOT)
if with_cuda:
    cfg.default_arch_list()
    print(f"fastdream setup: TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')}", flush=True)
    ext = CUDAExtension(
        "fastdream._C",
        cpp_sources + cuda_sources,
        include_dirs=cfg.include_dirs(ROOT),
        extra_compile_args=cfg.compile_args(True),
        extra_link_args=cfg.link_args(),
    )
else:
    ext = CppExtension(
        "fastdream._C",
        cpp_sources,
        include_dirs=cfg.include_dirs(ROOT),
        extra_compile_args={"cxx": cfg.compile_args(False)["cxx"]},
        extra_link_args=cfg.link_args(),
    )

setup(
    packages=find_packages(include=["fastdream", "fastdream.*"]),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    include_package_data=True,
)
