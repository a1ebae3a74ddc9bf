#!/usr/bin/env bash
# The one prepared GPU check (H100/H200, 16 cores, torch 2.11+cu130), ~8 minutes, in order of priority: build with
# CUDA (in the background: nerfacc's JIT extension and tinycudann's encodings from the vendored source), the step
# benchmark through the Trainer (eager rows), `pytest -m cuda`, the torch.compile rows in their own process, the
# kernel and end-to-end benchmarks, and with what time is left compute-sanitizer and the CPU tests.
#
# From the repository root, with $OUT set (an empty folder whose files come back):
#   FASTDREAM_COMMIT=<sha> bash bench/gpu_check.sh
# Carry (git-ignored folders): .whl/ (wheels the image lacks, bench/RESULTS.md says which; fill with
# bench/prepare_device_carry.sh) and .device_carry/ (the tiny-cuda-nn source tarball). FASTDREAM_COMMIT names the
# commit the copied tree came from (a copied tree may carry no .git; write the sha literally into the device command).
# Every stage has its own timeout (capped so that later stages keep time) and runs under `set +e`: a failure or a hang
# loses that stage only, and the merged JSON is always written. Files in $OUT, flat:
#   gpu_check.log (stage stamps, environment, report)  build.log  nerfacc_build.log  tcnn_build.log  probe.log
#   pytest.log  sanitize.log  bench.log  bench.json and <date>-<card>-<commit>.json (the same merged results; commit
#   the latter into bench/results/)
# Dry run on a CPU machine (stage names to skip, extra bench flags):
#   OUT=/tmp/o GPU_CHECK_SKIP=wheels,nerfacc,tcnn,build,sanitize,pytest_cpu,bench_step_compiled \
#     GPU_CHECK_BENCH_ARGS=--quick bash bench/gpu_check.sh
set -u
set +e
: "${OUT:?set OUT to the folder that receives the logs}"
cd "$(dirname "$0")/.." || exit 1

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-480}
END=$((START + BUDGET))
LOG="$OUT/gpu_check.log"
STATUS=""
LAST_RC=0
skipped() { [[ ",${GPU_CHECK_SKIP:-}," == *",$1,"* ]]; }
stamp() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
# Seconds for a stage: at most CAP, leaving RESERVE seconds for the stages after it (never under 5). Reserves are
# sized for the default 480 s budget and scale with a smaller one.
allot() {
  local cap=$1 reserve=$2 left
  (( BUDGET < 480 )) && reserve=$(( reserve * BUDGET / 480 ))
  left=$(( END - $(date +%s) - reserve ))
  (( left > cap )) && left=$cap
  (( left < 5 )) && left=5
  echo "$left"
}
# stage NAME CAP RESERVE LOGFILE CMD...: run CMD under its own timeout, append its output to LOGFILE.
stage() {
  local name=$1 cap=$2 reserve=$3 logf=$4 t rc
  shift 4
  if skipped "$name"; then
    stamp "stage $name: skipped (GPU_CHECK_SKIP)"
    LAST_RC=0
    return 0
  fi
  t=$(allot "$cap" "$reserve")
  stamp "stage $name: start (timeout ${t}s) -> $(basename "$logf")"
  echo "===== $name: $* (timeout ${t}s)" >>"$logf"
  timeout -k 10 "$t" "$@" >>"$logf" 2>&1
  rc=$?
  if (( rc == 124 || rc == 137 )); then stamp "stage $name: TIMEOUT after ${t}s (rc=$rc)"; else stamp "stage $name: rc=$rc"; fi
  STATUS="$STATUS $name=$rc"
  LAST_RC=$rc
  return 0
}
# background NAME TIMEOUT LOGFILE CMD...: start CMD in the background under its own timeout.
declare -A BG_PIDS
background() {
  local name=$1 t=$2 logf=$3
  shift 3
  if skipped "$name"; then stamp "stage $name: skipped (GPU_CHECK_SKIP)"; return 0; fi
  stamp "stage $name: start in the background (timeout ${t}s) -> $(basename "$logf")"
  timeout -k 10 "$t" "$@" >"$logf" 2>&1 &
  BG_PIDS[$name]=$!
}
# wait_for NAME MAX_S: wait for a background stage at most MAX_S seconds; record its exit code once it is done.
wait_for() {
  local name=$1 max=$2 pid=${BG_PIDS[$1]:-} n=0 rc
  [ -n "$pid" ] || return 0
  while kill -0 "$pid" 2>/dev/null && (( n < max )); do sleep 2; n=$((n + 2)); done
  if kill -0 "$pid" 2>/dev/null; then
    stamp "stage $name: still running after waiting ${max}s"
  else
    wait "$pid"
    rc=$?
    stamp "stage $name: rc=$rc"
    STATUS="$STATUS $name=$rc"
    unset "BG_PIDS[$name]"
  fi
  return 0
}

JSONS=(/tmp/fd_bench_step.json /tmp/fd_bench_step_compiled.json /tmp/fd_bench_kernels.json /tmp/fd_bench_e2e.json)
rm -f "${JSONS[@]}"
stamp "gpu_check start, budget ${BUDGET}s, commit ${FASTDREAM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1
  git status --short 2>&1 | head -20
} >>"$LOG" 2>&1

# --- toolchain for our build and the peers' builds
command -v nvcc >/dev/null 2>&1 || export PATH="/usr/local/cuda/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=9.0
# torch's ATen/cuda headers include cublas_v2.h; a trimmed toolkit may lack it while pip's nvidia-cublas has it.
CUDA_INC="$(dirname "$(command -v nvcc)")/../include"
if [ ! -f "$CUDA_INC/cublas_v2.h" ]; then
  NVINC=$(python3 -c "import os, nvidia; print(':'.join(p for d in nvidia.__path__ for p in (os.path.join(d, 'cu13', 'include'),) if os.path.isfile(os.path.join(p, 'cublas_v2.h'))))" 2>/dev/null)
  [ -n "$NVINC" ] && export CPLUS_INCLUDE_PATH="${CPLUS_INCLUDE_PATH:+$CPLUS_INCLUDE_PATH:}$NVINC"
fi
export PYTHONUNBUFFERED=1
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"  # carried wheels and the tcnn build land here

# --- wheels for what the image lacks (diffusers, nerfacc, xatlas, trimesh, fast-simplification, ...)
if ls .whl/*.whl >/dev/null 2>&1; then
  stage wheels 60 420 "$LOG" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
else
  stamp "no .whl/ folder: diffusers, nerfacc, xatlas etc. must already be installed"
fi

# --- in the background: nerfacc's CUDA extension (JIT-built at first use) and tinycudann's encodings
background nerfacc 240 "$OUT/nerfacc_build.log" env MAX_JOBS=4 python3 -c "
import time; t = time.time()
from nerfacc.cuda._backend import _C
assert _C is not None, 'nerfacc could not build its CUDA extension'
print('nerfacc CUDA extension ready in %.1f s' % (time.time() - t))"
background tcnn 330 "$OUT/tcnn_build.log" env MAX_JOBS=6 TCNN_CUDA_ARCHITECTURES=90 bash bench/build_tcnn.sh "" /tmp/site

# --- build fastdream._C in place with CUDA kernels
stage build 120 330 "$OUT/build.log" env FASTDREAM_BUILD_CUDA=1 MAX_JOBS=8 python3 setup.py build_ext --inplace
stage capabilities 20 320 "$OUT/build.log" python3 -m fastdream info
stage linkinfo 10 315 "$OUT/build.log" bash -c 'c++ --version | head -1; so=$(ls fastdream/_C*.so); ldd "$so" | grep -i "stdc++" || echo "no shared libstdc++ dependency"; echo "exported std::ostream symbols: $(nm -D --defined-only "$so" | grep -c " _ZNSo")"'
stage probe 30 310 "$OUT/probe.log" python3 bench/probe_exceptions.py

# --- the step through the Trainer, eager rows: default, baseline, peer renderers, levers, fast recipes
wait_for nerfacc 60
BENCH=(python3 -m fastdream bench)
stage bench_step 150 220 "$OUT/bench.log" "${BENCH[@]}" step ${GPU_CHECK_BENCH_ARGS:-} --variants eager --json /tmp/fd_bench_step.json

# --- CUDA tests: the no-sync Trainer test, graphs vs eager, fused Adam, the tcnn encoding backend when built
wait_for tcnn 30
python3 -c "import tinycudann" >>"$LOG" 2>&1 && stamp "tinycudann imports" || stamp "tinycudann does not import (see tcnn_build.log)"
PYTEST_OPTS="-q -p no:cacheprovider --continue-on-collection-errors"
python3 -c "import pytest_timeout" >/dev/null 2>&1 && PYTEST_OPTS="$PYTEST_OPTS --timeout=90"
XDIST=0
python3 -c "import xdist" >/dev/null 2>&1 && XDIST=1
stage pytest_cuda 90 150 "$OUT/pytest.log" python3 -m pytest -m cuda $PYTEST_OPTS $( ((XDIST)) && echo "-n 4") tests
[ -f "$OUT/pytest.log" ] && tail -n 3 "$OUT/pytest.log" | tee -a "$LOG"

# --- the torch.compile rows in their own process (compilation is slow; a timeout loses these rows only)
stage bench_step_compiled 120 60 "$OUT/bench.log" "${BENCH[@]}" step ${GPU_CHECK_BENCH_ARGS:-} --variants compiled --json /tmp/fd_bench_step_compiled.json

# --- kernels (the encoding against tcnn now) and end to end
wait_for tcnn 10
stage bench_kernels 50 25 "$OUT/bench.log" "${BENCH[@]}" kernels ${GPU_CHECK_BENCH_ARGS:-} --json /tmp/fd_bench_kernels.json
stage bench_e2e 60 0 "$OUT/bench.log" "${BENCH[@]}" e2e ${GPU_CHECK_BENCH_ARGS:-} --json /tmp/fd_bench_e2e.json
timeout 30 python3 - "${JSONS[@]}" 2>&1 <<'EOF_PY' | tee -a "$LOG"
import os, sys
sys.path.insert(0, ".")
from bench import common, sections
out = os.environ["OUT"]
merged = sections.merge_results(sys.argv[1:], os.path.join(out, "bench.json"))
env = merged.get("environment", {})
if env:
    name = common.results_name(env)
    common.write_json(os.path.join(out, os.path.basename(name)), merged)
    print("commit this file as", name)
print(sections.report(merged))
EOF_PY

# --- with what time is left: compute-sanitizer memcheck over every op, then the CPU tests on this machine's build
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if (( END - $(date +%s) > 40 )); then
  stage sanitize 80 0 "$OUT/sanitize.log" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck \
    --error-exitcode 3 --print-limit 30 python3 bench/sanitize_ops.py
  [ -f "$OUT/sanitize.log" ] && grep -E "ERROR SUMMARY|sanitize_ops: .*(FAILED|missing|without error)" "$OUT/sanitize.log" | tee -a "$LOG"
fi
if ((XDIST)) && (( END - $(date +%s) > 40 )); then
  NO_FFMPEG=""
  python3 -c "import imageio_ffmpeg" >/dev/null 2>&1 || NO_FFMPEG="--deselect tests/export/test_io.py::test_turntable_mp4_has_every_frame_in_order --deselect tests/export/test_cli.py::test_render_command_writes_a_turntable"
  stage pytest_cpu 120 0 "$OUT/pytest.log" env OMP_NUM_THREADS=1 python3 -m pytest -m "not cuda and not slow" \
    $PYTEST_OPTS $NO_FFMPEG -n 12 tests
  tail -n 3 "$OUT/pytest.log" | tee -a "$LOG"
fi
for name in "${!BG_PIDS[@]}"; do  # a background build still running: stop it (timeout passes the signal on)
  kill -0 "${BG_PIDS[$name]}" 2>/dev/null && kill "${BG_PIDS[$name]}" 2>/dev/null && stamp "stopped $name"
done
stamp "gpu_check done:$STATUS"
