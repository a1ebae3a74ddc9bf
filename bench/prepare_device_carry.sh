#!/usr/bin/env bash
# Fill the git-ignored folders a device call carries for bench/gpu_check.sh:
#   .whl/           wheels the GPU image lacks, for its Python 3.12 (list and versions: bench/RESULTS.md)
#   .device_carry/  the tiny-cuda-nn source snapshot that bench/build_tcnn.sh builds on the GPU machine
# Run on a machine with the package index reachable, from anywhere in the checkout:
#   bash bench/prepare_device_carry.sh [VENDOR_DIR]     (VENDOR_DIR default /work/shared/vendor)
set -euo pipefail
cd "$(dirname "$0")/.."
VENDOR=${1:-/work/shared/vendor}
mkdir -p .whl .device_carry
cp -f "$VENDOR"/tiny-cuda-nn-*.tar.gz .device_carry/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  nerfacc==0.5.3 diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer==0.1.0 xatlas==0.0.11 trimesh==5.2.0 \
  fast-simplification==0.2.0
ls .whl .device_carry
du -sh .whl .device_carry
