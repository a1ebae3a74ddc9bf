"""The build chain: the compiled module, `fastdream info`, and the JIT fallback's messages."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastdream import _backend, _buildcfg

REPO = Path(__file__).resolve().parent.parent


def test_source_list_is_complete_and_exists():
    cpp, cu = _buildcfg.read_sources(REPO)
    assert "csrc/bindings.cpp" in cpp
    for path in cpp + cu:
        assert (REPO / path).is_file(), path
    # every kernel source in csrc/ is listed, so setup.py and CMake cannot drift from the tree
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "csrc").glob("*.c*")}
    assert on_disk == set(cpp + cu)


def _with_local_includes(path: Path) -> set[Path]:
    """path and every project header it includes, transitively."""
    seen, todo = set(), [path]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for name in re.findall(r'#include "([^"]+)"', p.read_text()):
            todo += [d / name for d in (REPO / "csrc", REPO / "csrc" / "include") if (d / name).is_file()]
    return seen


def test_cu_files_do_not_include_torch_headers():
    # nvcc stays fast only if no .cu file reaches torch, also through our own headers
    for cu in (REPO / "csrc").glob("*.cu"):
        for path in _with_local_includes(cu):
            text = path.read_text()
            assert "torch/extension.h" not in text and "ATen/" not in text, (cu.name, path.name)


def test_one_dispatch_path_and_unique_header_names():
    headers = [p.name for p in (REPO / "csrc").rglob("*.h")]
    assert len(headers) == len(set(headers)), sorted(headers)
    # ops reach CUDA only through fastdream/dispatch.h, so the build switch is tested there alone
    guarded = {p.name for p in (REPO / "csrc").rglob("*.*") if "FASTDREAM_WITH_CUDA" in p.read_text()}
    assert guarded == {"dispatch.h"}


def test_extension_loads_and_reports_cuda_flag():
    ext = _backend.load()
    assert isinstance(ext.with_cuda, bool)
    assert hasattr(ext, "ray_aabb_intersect")


def test_info_prints_valid_json():
    out = subprocess.run([sys.executable, "-m", "fastdream", "info"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["fastdream"]
    assert info["extension"]["loaded"] is True
    assert set(info["optional_backends"]) == {"tinycudann", "nerfacc", "diffusers", "xatlas"}
    assert info["gpu"] is None or isinstance(info["gpu"], str)


def test_find_cuda_home_follows_wrapper_script(tmp_path, monkeypatch):
    toolkit = tmp_path / "cuda-x"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "include").mkdir()
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    (toolkit / "bin" / "nvcc").chmod(0o755)
    wrapper_dir = tmp_path / "wrapbin"
    wrapper_dir.mkdir()
    (wrapper_dir / "nvcc").write_text(f'#!/bin/sh\nexec {toolkit}/bin/nvcc "$@"\n')
    (wrapper_dir / "nvcc").chmod(0o755)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", str(wrapper_dir))
    assert _buildcfg.find_cuda_home() == str(toolkit)


def test_build_mode_is_validated():
    with pytest.raises(ValueError, match="FASTDREAM_BUILD_CUDA"):
        _buildcfg.decide_cuda("yes")
    assert _buildcfg.decide_cuda("0") == (False, "FASTDREAM_BUILD_CUDA=0")


def test_missing_extension_without_sources_explains(monkeypatch):
    """No _C and no csrc/: a clear ExtensionUnavailable, not an ImportError traceback."""
    import builtins
    import importlib

    real_import = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "fastdream._C":
            raise ImportError("simulated: no compiled module")
        return real_import(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    monkeypatch.setattr(_backend, "_module", None)
    monkeypatch.setattr(_backend, "_error", None)
    monkeypatch.setattr(_buildcfg, "SOURCE_LIST", Path("/nonexistent/csrc/sources.txt"))
    with pytest.raises(_backend.ExtensionUnavailable, match="sources are not beside the package"):
        _backend.load()
    assert builtins  # keep the import used; the patch above is what matters


@pytest.mark.slow
def test_jit_build_without_compiled_module(tmp_path):
    """A checkout with no _C builds it on first use (CPU kernels, to keep the test short) and says so."""
    code = (
        "import importlib, sys\n"
        "from fastdream import _backend\n"
        "real = importlib.import_module\n"
        "def fake(name, *a, **k):\n"
        "    if name == 'fastdream._C': raise ImportError('simulated')\n"
        "    return real(name, *a, **k)\n"
        "importlib.import_module = fake\n"
        "ext = _backend.load()\n"
        "importlib.import_module = real\n"
        "import torch\n"
        "print('OK', ext.with_cuda, ext.ray_aabb_intersect(torch.zeros(1,3), torch.ones(1,3), "
        "torch.tensor([-1.,-1,-1,1,1,1]))[2].item())\n"
    )
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path), FASTDREAM_BUILD_CUDA="0", MAX_JOBS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK False True" in out.stdout
    assert "JIT-building" in out.stderr and "took" in out.stderr
