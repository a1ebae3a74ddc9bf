#!/usr/bin/env bash
# Build tiny-cuda-nn's encodings-only PyTorch extension (no networks: they need the cutlass submodule the snapshot
# leaves out) from the vendored source snapshot, and install it into a folder on PYTHONPATH. Built where it runs, so
# it matches that machine's Python and torch (a wheel built elsewhere would not load). Recipe and why each step is
# needed: /work/shared/vendor/README.md.
#
#   bash bench/build_tcnn.sh [TARBALL] [TARGET]
# TARBALL: default .device_carry/tiny-cuda-nn-*.tar.gz (copy it there from /work/shared/vendor/ before a device
# call that carries .device_carry); TARGET: default /tmp/site.
# Env: TCNN_CUDA_ARCHITECTURES (default 90 = H100/H200), MAX_JOBS, CUDA_HOME (default /usr/local/cuda), PYTHON,
# TCNN_BUILD_DIR (scratch, default a new /tmp folder).
set -euo pipefail
TARBALL=${1:-$(ls .device_carry/tiny-cuda-nn-*.tar.gz 2>/dev/null | head -1 || true)}
TARGET=${2:-/tmp/site}
PY=${PYTHON:-python3}
[ -n "$TARBALL" ] && [ -f "$TARBALL" ] || { echo "build_tcnn: no tarball (pass one or copy it to .device_carry/)"; exit 2; }
W=${TCNN_BUILD_DIR:-$(mktemp -d /tmp/tcnn-build.XXXXXX)}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH="$CUDA_HOME/bin:$PATH"
export TCNN_CUDA_ARCHITECTURES=${TCNN_CUDA_ARCHITECTURES:-90}
echo "build_tcnn: $TARBALL -> $TARGET (arch $TCNN_CUDA_ARCHITECTURES, MAX_JOBS=${MAX_JOBS:-unset}, scratch $W)"
tar -xzf "$TARBALL" -C "$W"
SRC=$(ls -d "$W"/tiny-cuda-nn-*/bindings/torch)
cd "$SRC"
# current setuptools has no pkg_resources; torch >= 2.10 headers need C++20
sed -i 's/from pkg_resources import parse_version/from packaging.version import parse as parse_version/' setup.py
sed -i 's/cpp_standard = 17/cpp_standard = 20/' setup.py
mkdir -p "$W/stubs"
# nvrtc: the toolkit's when it has it, else the one in torch's nvidia wheels
NV=$($PY -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu13'))" 2>/dev/null || true)
if [ ! -f "$CUDA_HOME/include/nvrtc.h" ] && [ -n "$NV" ] && [ -f "$NV/include/nvrtc.h" ]; then
  export CPATH="$NV/include${CPATH:+:$CPATH}"
fi
if ! ls "$CUDA_HOME"/lib64/libnvrtc.so >/dev/null 2>&1; then
  so=$(ls "$NV"/lib/libnvrtc.so* 2>/dev/null | head -1 || true)
  [ -n "$so" ] && ln -sf "$so" "$W/stubs/libnvrtc.so"
fi
# an unversioned libcuda.so for the linker: the toolkit's stub, else an empty one with the driver's soname (the
# real driver library is what loads at run time)
if [ -f "$CUDA_HOME/lib64/stubs/libcuda.so" ]; then
  ln -sf "$CUDA_HOME/lib64/stubs/libcuda.so" "$W/stubs/libcuda.so"
else
  echo "" | gcc -shared -x c - -Wl,-soname,libcuda.so.1 -o "$W/stubs/libcuda.so"
fi
export LIBRARY_PATH="$W/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
t0=$(date +%s)
"$PY" setup.py --no-networks bdist_wheel
"$PY" -m pip install -q --no-deps --no-index --no-compile --upgrade --target "$TARGET" dist/*.whl
echo "build_tcnn: installed $(ls dist/*.whl) into $TARGET in $(( $(date +%s) - t0 )) s"
