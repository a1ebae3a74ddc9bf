#!/usr/bin/env bash
# The one prepared GPU check (H100/H200, 16 cores, torch 2.11+cu130): build with CUDA, `pytest -m cuda`,
# compute-sanitizer memcheck over every op, then every benchmark, all inside ~9 minutes.
#
# Run from the repository root with $OUT set (an empty folder whose files come back):
#   FASTDREAM_COMMIT=$(git rev-parse HEAD) bash bench/gpu_check.sh
# (a copied tree may travel without .git; FASTDREAM_COMMIT then names the commit in the JSON — write the sha
# literally into the device command, it is expanded on the machine that has .git)
# Missing Python packages travel as wheels in .whl/ (see bench/RESULTS.md for how they were fetched).
# Every stage has its own timeout (capped so that the later stages keep time) and runs under `set +e`, so one
# failure or hang cannot eat the slot. At most 8 files land in $OUT, flat:
#   gpu_check.log (stage stamps, environment, summary)  build.log  nerfacc_build.log  probe.log  pytest.log
#   sanitize.log  bench.log  bench.json (merged results of the three benchmark runs)
# Dry run on a CPU machine (stage names to skip, extra bench flags):
#   OUT=/tmp/o GPU_CHECK_SKIP=wheels,nerfacc,build,sanitize,pytest_cpu GPU_CHECK_BENCH_ARGS=--quick bash bench/gpu_check.sh
set -u
set +e
: "${OUT:?set OUT to the folder that receives the logs}"
cd "$(dirname "$0")/.." || exit 1

START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-500}
END=$((START + BUDGET))
LOG="$OUT/gpu_check.log"
STATUS=""
LAST_RC=0

stamp() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
# Seconds for a stage: at most CAP, leaving RESERVE seconds for the stages after it (never under 5). Reserves are
# sized for the default 500 s budget and scale with a smaller one (a 190 s budget once starved every stage to 5 s).
allot() {
  local cap=$1 reserve=$2 left
  (( BUDGET < 500 )) && reserve=$(( reserve * BUDGET / 500 ))
  left=$(( END - $(date +%s) - reserve ))
  (( left > cap )) && left=$cap
  (( left < 5 )) && left=5
  echo "$left"
}
# stage NAME CAP RESERVE LOGFILE CMD...: run CMD under its own timeout, append its output to LOGFILE.
stage() {
  local name=$1 cap=$2 reserve=$3 logf=$4 t rc
  shift 4
  if [[ ",${GPU_CHECK_SKIP:-}," == *",$name,"* ]]; then
    stamp "stage $name: skipped (GPU_CHECK_SKIP)"
    LAST_RC=0
    return 0
  fi
  t=$(allot "$cap" "$reserve")
  stamp "stage $name: start (timeout ${t}s) -> $(basename "$logf")"
  echo "===== $name: $* (timeout ${t}s)" >>"$logf"
  timeout -k 10 "$t" "$@" >>"$logf" 2>&1
  rc=$?
  if (( rc == 124 || rc == 137 )); then
    stamp "stage $name: TIMEOUT after ${t}s (rc=$rc)"
  else
    stamp "stage $name: rc=$rc"
  fi
  STATUS="$STATUS $name=$rc"
  LAST_RC=$rc
  return 0
}

rm -f /tmp/fd_bench_kernels.json /tmp/fd_bench_step.json /tmp/fd_bench_e2e.json
stamp "gpu_check start, budget ${BUDGET}s, commit ${FASTDREAM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1
  git status --short 2>&1 | head -20
} >>"$LOG" 2>&1

# --- toolchain for our build and nerfacc's JIT build
command -v nvcc >/dev/null 2>&1 || export PATH="/usr/local/cuda/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=9.0
# torch's ATen/cuda headers include cublas_v2.h; a trimmed toolkit may lack it while pip's nvidia-cublas has it.
CUDA_INC="$(dirname "$(command -v nvcc)")/../include"
if [ ! -f "$CUDA_INC/cublas_v2.h" ]; then
  NVINC=$(python3 -c "import os, nvidia; print(':'.join(p for d in nvidia.__path__ for p in (os.path.join(d, 'cu13', 'include'),) if os.path.isfile(os.path.join(p, 'cublas_v2.h'))))" 2>/dev/null)
  [ -n "$NVINC" ] && export CPLUS_INCLUDE_PATH="${CPLUS_INCLUDE_PATH:+$CPLUS_INCLUDE_PATH:}$NVINC"
fi
export PYTHONUNBUFFERED=1

# --- wheels for what the image lacks (diffusers, nerfacc, xatlas, trimesh, fast-simplification, ...)
if ls .whl/*.whl >/dev/null 2>&1 && [[ ",${GPU_CHECK_SKIP:-}," != *",wheels,"* ]]; then
  stage wheels 60 450 "$LOG" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  stamp "no .whl/ folder: diffusers, nerfacc, xatlas etc. must already be installed"
fi

# --- nerfacc's CUDA extension is JIT-built at first use: build it now, in the background, beside ours
NERFACC_PID=""
[[ ",${GPU_CHECK_SKIP:-}," == *",nerfacc,"* ]] || (
  stamp "nerfacc JIT build: start (background)"
  MAX_JOBS=6 timeout -k 10 300 python3 -c "
import time; t = time.time()
from nerfacc.cuda._backend import _C
assert _C is not None, 'nerfacc could not build its CUDA extension'
print('nerfacc CUDA extension ready in %.1f s' % (time.time() - t))" >"$OUT/nerfacc_build.log" 2>&1
  stamp "nerfacc JIT build: rc=$?"
) &
NERFACC_PID=$!

# --- build fastdream._C in place with CUDA kernels
stage build 200 290 "$OUT/build.log" env FASTDREAM_BUILD_CUDA=1 MAX_JOBS=16 python3 setup.py build_ext --inplace
stage capabilities 20 280 "$OUT/build.log" python3 -m fastdream info
# how the module was linked: a statically linked libstdc++ must not export its symbols (see _buildcfg.link_args)
stage linkinfo 10 270 "$OUT/build.log" bash -c 'c++ --version | head -1; so=$(ls fastdream/_C*.so); ldd "$so" | grep -i "stdc++" || echo "no shared libstdc++ dependency"; echo "exported std::ostream symbols: $(nm -D --defined-only "$so" | grep -c " _ZNSo")"'

# --- does a C++ TORCH_CHECK reach Python as an exception here? (one earlier device build died by SIGSEGV instead)
stage probe 30 260 "$OUT/probe.log" python3 bench/probe_exceptions.py
if (( LAST_RC > 128 && LAST_RC != 137 )); then
  GDB=$(command -v cuda-gdb || echo /usr/local/cuda/bin/cuda-gdb)
  stage probe_gdb 40 240 "$OUT/probe.log" "$GDB" -batch -ex run -ex bt -ex "info sharedlibrary" \
    --args python3 bench/probe_exceptions.py
fi

# --- CUDA tests, in pytest-xdist workers when present (a crashed worker then fails one test, not the run);
# pytest-timeout, when present, stops a single hung test
PYTEST_OPTS="-q -p no:cacheprovider --continue-on-collection-errors"
python3 -c "import pytest_timeout" >/dev/null 2>&1 && PYTEST_OPTS="$PYTEST_OPTS --timeout=90"
XDIST=0
python3 -c "import xdist" >/dev/null 2>&1 && XDIST=1
stage pytest_cuda 90 220 "$OUT/pytest.log" python3 -m pytest -m cuda $PYTEST_OPTS $( ((XDIST)) && echo "-n 4") tests

# --- compute-sanitizer memcheck over every op (no caching allocator: each tensor is its own allocation)
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
stage sanitize 80 170 "$OUT/sanitize.log" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck \
  --error-exitcode 3 --print-limit 30 python3 bench/sanitize_ops.py
[ -f "$OUT/sanitize.log" ] && grep -E "ERROR SUMMARY|sanitize_ops: .*(FAILED|missing|without error)" "$OUT/sanitize.log" | tee -a "$LOG"
[ -f "$OUT/pytest.log" ] && tail -n 3 "$OUT/pytest.log" | tee -a "$LOG"

# --- benchmarks, one process per section so that a hang loses one section only
[ -n "$NERFACC_PID" ] && wait "$NERFACC_PID" 2>/dev/null
stage bench_kernels 80 120 "$OUT/bench.log" python3 -m fastdream bench kernels ${GPU_CHECK_BENCH_ARGS:-} --json /tmp/fd_bench_kernels.json
stage bench_step 100 70 "$OUT/bench.log" python3 -m fastdream bench step ${GPU_CHECK_BENCH_ARGS:-} --json /tmp/fd_bench_step.json
stage bench_e2e 120 25 "$OUT/bench.log" python3 -m fastdream bench e2e ${GPU_CHECK_BENCH_ARGS:-} --json /tmp/fd_bench_e2e.json
timeout 30 python3 - 2>&1 <<'EOF' | tee -a "$LOG"
import sys
sys.path.insert(0, ".")
from bench import common
merged = common.merge_results(["/tmp/fd_bench_kernels.json", "/tmp/fd_bench_step.json", "/tmp/fd_bench_e2e.json"],
                              __import__("os").environ["OUT"] + "/bench.json")
env = merged.get("environment", {})
if env:
    print("commit this file as", common.results_name(env))
print(common.report(merged))
EOF


# --- with what time is left: the CPU tests on this machine's build (torch and Python differ from CI's)
if ((XDIST)); then
  # imageio-ffmpeg (a declared dependency) is too large to carry (68 MB); without it the MP4 tests cannot pass
  NO_FFMPEG=""
  python3 -c "import imageio_ffmpeg" >/dev/null 2>&1 || NO_FFMPEG="--deselect tests/test_export_io.py::test_turntable_mp4_has_every_frame_in_order --deselect tests/test_export_cli.py::test_render_command_writes_a_turntable"
  stage pytest_cpu 120 0 "$OUT/pytest.log" env OMP_NUM_THREADS=1 python3 -m pytest -m "not cuda and not slow" \
    $PYTEST_OPTS $NO_FFMPEG -n 12 tests
  tail -n 3 "$OUT/pytest.log" | tee -a "$LOG"
fi
stamp "gpu_check done:$STATUS"
