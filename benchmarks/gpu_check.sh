#!/usr/bin/env bash
# Every check that needs a GPU, in one run (about 10 minutes on one H100/H200 or an Orin):
#   1. the SIS plugin library, built when TensorRT's headers are found
#   2. tests/gpu and tests/plugins (kernels and plugin vs the NumPy spec, pico engine builds,
#      TensorRT vs ONNX Runtime masks, engines reloaded from disk); skips print their reason
#   3. the SIS kernel benchmark (benchmarks/sis_kernel.py; needs CUDA torch)
#   4. with TensorRT: pico exported without a plan (fp16) and with a 6-bit plan, engines built,
#      and the per-engine latency table of both (deploy/engine_latency.py)
#
#   bash benchmarks/gpu_check.sh [OUT]          (default OUT: out/gpu_check)
#
# Writes OUT/log.txt, OUT/pytest.txt, OUT/sis_kernel.json, OUT/latency.json and OUT/latency.md.
# Exit status: that of the tests (a failed step after them is reported in the log and fails too).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT=${1:-out/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH="$PWD/toolkit${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/log.txt"
: > "$LOG"
status=0

say() { echo "== $*" | tee -a "$LOG"; }
has_module() { "$PY" -c "import $1" 2>/dev/null; }
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, remember a failure
    local name=$1 limit=$2; shift 2
    say "$name"
    timeout "$limit" "$@" >> "$LOG" 2>&1 || { echo "   FAILED ($name, exit $?)" | tee -a "$LOG"; status=1; }
}

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"; } | tee -a "$LOG"
"$PY" -c "import tensorrt; print('TensorRT', tensorrt.__version__)" 2>/dev/null | tee -a "$LOG" || say "no TensorRT"

headers=${TENSORRT_INCLUDE_DIRS:-}
for d in /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/local/tensorrt/include; do
    [ -z "$headers" ] && [ -f "$d/NvInfer.h" ] && headers=$d
done
if [ -z "${MIXQSAM2_SIS_PLUGIN:-}" ] && [ -n "$headers" ]; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d .)
    step "SIS plugin (TensorRT headers ${headers%%:*}, sm_$arch)" 300 \
        bash -c "cmake -S plugins/sis -B '$OUT/sis' -DCMAKE_CUDA_ARCHITECTURES=$arch -DTensorRT_INCLUDE_DIR='${headers%%:*}' \
                 && cmake --build '$OUT/sis' -j"
    [ -f "$OUT/sis/libsis_plugin.so" ] && export MIXQSAM2_SIS_PLUGIN="$OUT/sis/libsis_plugin.so"
fi
export TENSORRT_INCLUDE_DIRS=$headers

say "tests/gpu tests/plugins"
timeout 420 "$PY" -m pytest -q -rs tests/gpu tests/plugins -p no:cacheprovider > "$OUT/pytest.txt" 2>&1
tests=$?
tail -n 40 "$OUT/pytest.txt" | tee -a "$LOG"

if has_module torch && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    step "SIS kernel benchmark" 120 "$PY" benchmarks/sis_kernel.py --out "$OUT/sis_kernel.json"
fi

if has_module tensorrt; then
    work="$OUT/pico"
    rm -rf "$work" && mkdir -p "$work"
    mq="$PY -m mixqsam2.cli.main"
    step "pico data, 6-bit plan, exports" 300 bash -c "
        set -e
        $mq synth images --out '$work/images' --num 4 --seed 901
        $mq synth videos --out '$work/videos' --num 2 --frames 8 --seed 902
        $mq calibrate --model pico --images '$work/images' --videos '$work/videos' --max-frames 3 \
            --budget-bits 6 --importance wais --out '$work/plan.json'
        $mq export --model pico --out '$work/export-fp16'
        $mq export --model pico --plan '$work/plan.json' --out '$work/export-plan'"
    step "engines (fp16, plan)" 400 bash -c "
        set -e
        '$PY' deploy/build_engine.py --onnx-dir '$work/export-fp16' --out '$work/engines-fp16' \
            --timing-cache '$work/timing.cache'
        '$PY' deploy/build_engine.py --onnx-dir '$work/export-plan' --plan '$work/plan.json' \
            --out '$work/engines-plan' --timing-cache '$work/timing.cache'"
    step "latency per engine" 120 bash -c "'$PY' deploy/engine_latency.py --engine-dir '$work/engines-fp16' \
        --engine-dir '$work/engines-plan' --out '$OUT/latency.json' > '$OUT/latency.md'"
    [ -s "$OUT/latency.md" ] && tee -a "$LOG" < "$OUT/latency.md"
fi

say "done: tests exit $tests, other steps $([ $status = 0 ] && echo ok || echo FAILED); log in $LOG"
[ "$tests" = 0 ] && exit $status
exit "$tests"
