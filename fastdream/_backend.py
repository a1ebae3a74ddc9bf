"""Loads the compiled core fastdream._C, JIT-building it from csrc/ when no built module is present.

`load()` returns the module or raises ExtensionUnavailable with the reason; `capabilities()` reports what
is active for `fastdream info`; `resolve_device()` turns a --device name into a device that is here.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import sys
import time
from types import ModuleType

from fastdream import _buildcfg

log = logging.getLogger(__name__)

_module: ModuleType | None = None
_error: str | None = None


class ExtensionUnavailable(RuntimeError):
    """fastdream._C is neither installed nor buildable here."""


def _jit_build() -> ModuleType:
    cpp, cu = _buildcfg.read_sources(_buildcfg.REPO_ROOT)
    _buildcfg.ensure_cuda_home()
    mode = os.environ.get("FASTDREAM_BUILD_CUDA", "auto")
    with_cuda, why = _buildcfg.decide_cuda(mode)
    import torch
    from torch.utils import cpp_extension

    if with_cuda and mode.strip() != "1" and not torch.cuda.is_available():
        # A JIT build serves this machine only: CUDA kernels without a GPU would cost minutes for nothing.
        with_cuda, why = False, "no GPU visible, so the JIT build skips the CUDA kernels"

    if with_cuda:
        _buildcfg.default_arch_list()
        # cpp_extension reads CUDA_HOME once at import and guesses wrong beside a wrapper nvcc; correct it.
        cpp_extension.CUDA_HOME = _buildcfg.find_cuda_home()
    sources = [str(_buildcfg.REPO_ROOT / s) for s in cpp + (cu if with_cuda else [])]
    flags = _buildcfg.compile_args(with_cuda)
    # One cache folder per checkout: two checkouts with different sources must not overwrite each other's build.
    tag = hashlib.sha1(str(_buildcfg.REPO_ROOT).encode()).hexdigest()[:8]
    name = f"fastdream_C_{'cuda' if with_cuda else 'cpu'}_{tag}"
    print(f"fastdream: compiled extension not found; JIT-building {name} ({why}) into the torch extensions "
          "cache, this takes a few minutes once...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    module = cpp_extension.load(
        name=name,
        sources=sources,
        extra_include_paths=_buildcfg.include_dirs(_buildcfg.REPO_ROOT),
        extra_cflags=flags["cxx"],
        extra_cuda_cflags=flags["nvcc"] if with_cuda else None,
        extra_ldflags=_buildcfg.link_args(),
        with_cuda=with_cuda,
        verbose=False,
    )
    print(f"fastdream: JIT build of {name} took {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return module


def load() -> ModuleType:
    """Return fastdream._C, building it on first use if needed."""
    global _module, _error
    if _module is not None:
        return _module
    if _error is not None:
        raise ExtensionUnavailable(_error)
    import torch  # noqa: F401  (_C links libc10/libtorch, which torch's import loads)

    try:
        _module = importlib.import_module("fastdream._C")
        return _module
    except ImportError as exc:
        import_error = exc
    if not (_buildcfg.SOURCE_LIST.exists()):
        _error = (f"fastdream._C is not installed ({import_error}) and the C++ sources are not beside the "
                  "package to build it; reinstall with `pip install --no-build-isolation .` from a checkout")
        raise ExtensionUnavailable(_error)
    try:
        _module = _jit_build()
    except Exception as exc:  # a failed compiler run can raise many types; report it once, clearly
        _error = (f"fastdream._C could not be imported ({import_error}) nor JIT-built ({type(exc).__name__}: "
                  f"{exc}). Rendering, ray marching and the hash-grid kernels are unavailable; the pure-PyTorch "
                  "reference ops (fastdream.ops.reference) still work.")
        raise ExtensionUnavailable(_error) from exc
    return _module


def has_cuda_kernels() -> bool:
    """Whether the loaded extension was built with CUDA kernels (False if it cannot load)."""
    try:
        return bool(getattr(load(), "with_cuda", False))
    except ExtensionUnavailable:
        return False


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:  # optional backends may fail with any error on import (missing CUDA libs, ABI)
        return False


def capabilities() -> dict:
    """What `fastdream info` prints: versions, kernels, GPU, optional backends."""
    import torch

    import fastdream

    try:
        ext = load()
        ext_info = {"loaded": True, "file": getattr(ext, "__file__", None), "error": None}
    except ExtensionUnavailable as exc:
        ext_info = {"loaded": False, "file": None, "error": str(exc)}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "fastdream": fastdream.__version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "extension": ext_info,
        "cuda_kernels": has_cuda_kernels(),
        "gpu": gpu,
        "optional_backends": {name: _importable(name) for name in ("tinycudann", "nerfacc", "diffusers", "xatlas")},
    }


def resolve_device(name="auto"):
    """"auto" -> cuda when available, else cpu; a torch.device passes through; UserError for a device that is not
    there or that fastdream does not run on (only cpu and cuda[:N])."""
    import torch

    from fastdream.errors import UserError

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda") or (device.type == "cpu" and device.index):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device
