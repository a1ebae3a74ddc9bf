"""Build settings shared by setup.py (wheel) and fastdream._backend (JIT): sources, CUDA discovery, flags.

Imported by path from setup.py, so it must not import the fastdream package or torch at module level.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_LIST = REPO_ROOT / "csrc" / "sources.txt"
# Default architectures for distributed wheels when no GPU is visible at build time (CUDA 13 starts at 7.5).
WHEEL_ARCH_LIST = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"


def read_sources(root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """Return (cpp_sources, cuda_sources), repo-relative, from csrc/sources.txt."""
    cpp, cu = [], []
    for line in (root / "csrc" / "sources.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        (cu if line.endswith(".cu") else cpp).append(line)
    return cpp, cu


def find_cuda_home() -> str | None:
    """Locate the CUDA toolkit: $CUDA_HOME/$CUDA_PATH, then the real nvcc behind PATH, then /usr/local/cuda."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and (Path(home) / "bin" / "nvcc").exists():
            return home
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = Path(nvcc).resolve()
        # A wrapper script (as on our machines) is not inside the toolkit; read its target.
        if real.parent.name == "bin" and (real.parent.parent / "include" / "cuda_runtime.h").exists():
            return str(real.parent.parent)
        try:
            for token in real.read_text(errors="ignore").split():
                cand = Path(token)
                if cand.name == "nvcc" and cand.is_absolute() and cand.exists():
                    return str(cand.resolve().parent.parent)
        except OSError:
            pass
    for cand in ("/usr/local/cuda", "/opt/cuda"):
        if (Path(cand) / "bin" / "nvcc").exists():
            return cand
    return None


def ensure_cuda_home() -> str | None:
    """Set CUDA_HOME for torch.utils.cpp_extension (which reads it at import) when we can find a toolkit."""
    home = find_cuda_home()
    if home and not os.environ.get("CUDA_HOME"):
        os.environ["CUDA_HOME"] = home
    return home


def decide_cuda(mode: str) -> tuple[bool, str]:
    """Whether to build CUDA kernels for FASTDREAM_BUILD_CUDA=mode, and why. mode '1' raises if impossible."""
    import torch

    mode = (mode or "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise ValueError(f"FASTDREAM_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
    if mode == "0":
        return False, "FASTDREAM_BUILD_CUDA=0"
    reasons = []
    if torch.version.cuda is None:
        reasons.append(f"torch {torch.__version__} is a CPU-only build")
    if find_cuda_home() is None:
        reasons.append("no CUDA toolkit (nvcc) found; set CUDA_HOME")
    if reasons:
        if mode == "1":
            raise RuntimeError("FASTDREAM_BUILD_CUDA=1 but CUDA kernels cannot be built: " + "; ".join(reasons))
        return False, "; ".join(reasons)
    return True, f"torch CUDA {torch.version.cuda}, toolkit at {find_cuda_home()}"


def default_arch_list() -> None:
    """Give wheels the usual architecture list when the user set none and no GPU is visible."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = WHEEL_ARCH_LIST


def compile_args(with_cuda: bool) -> dict[str, list[str]]:
    """Compiler flags for the C++ and CUDA sources."""
    defines = ["-DFASTDREAM_WITH_CUDA"] if with_cuda else []
    cxx = ["-O3"] + defines
    nvcc = ["-O3", "--expt-relaxed-constexpr", "-std=c++17"] + defines
    if os.environ.get("LINE_INFO", "0") == "1":
        nvcc.append("-lineinfo")
    nvcc += os.environ.get("NVCC_FLAGS", "").split()
    return {"cxx": cxx, "nvcc": nvcc}


def link_args() -> list[str]:
    """Linker flags. Some toolchains (the lent GPU machines' /opt/gcc) link libstdc++ statically into shared
    objects. Exported, that private copy mixes with the libstdc++.so that torch loads: our functions bind to the
    copy (-Bsymbolic-functions) while its data (locale facets) binds to the shared library, and the first number
    formatted into a TORCH_CHECK message crashes. Hiding the symbols of static archives keeps a private copy
    self-contained; with a shared libstdc++ (the usual case) the flag changes nothing."""
    return ["-Wl,--exclude-libs,ALL"] if sys.platform.startswith("linux") else []


def include_dirs(root: Path = REPO_ROOT) -> list[str]:
    return [str(root / "csrc" / "include"), str(root / "csrc")]
