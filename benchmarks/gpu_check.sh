#!/usr/bin/env bash
# Every check that needs a GPU, in one run (about 15 minutes on one H100/H200 or an Orin):
#   1. the SIS plugin library, built when TensorRT's headers are found
#   2. tests/gpu and tests/plugins: kernels and plugin engines vs the NumPy spec; pico exported
#      without a plan (fp32) and with a mixed int4/int8/fp16 plan, engines built by
#      deploy/build_engine.py into OUT/engines/{fp32,plan}, run_stream --engine-dir vs --onnx-dir
#      (mask IoU >= 0.98 per frame and object), engines reloaded from disk; skips say why
#   3. the SIS kernel benchmark (benchmarks/sis_kernel.py; needs CUDA torch)
#   4. with TensorRT: pico with an all-fp16 plan (calibrate --formats fp16) exported and built into
#      OUT/engines/fp16, then the per-engine latency table of fp32, fp16 and plan (deploy/engine_latency.py)
#   5. with TensorRT: sam2.1_hiera_t's memory attention (random weights, fp32 engines of that graph
#      only) with FIFO@6's bank read whole, read 4x4-pooled (--memory-pool 4) and with a bank of 3:
#      the issue-14 cost ratio on a GPU (OUT/attention_latency.md; engine_latency.py copies every
#      input to the GPU each run, the whole bank included, so the ratio is diluted toward 1)
#
#   bash benchmarks/gpu_check.sh [OUT]          (default OUT: out/gpu_check)
#
# Writes OUT/log.txt, OUT/pytest.txt, OUT/sis_kernel.json, OUT/latency.json, OUT/latency.md and
# OUT/attention_latency.{json,md}.
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
export MIXQSAM2_GPU_ENGINES="$OUT/engines"  # the tests build the fp32 and plan engines here
timeout 360 "$PY" -m pytest -q -rs tests/gpu tests/plugins -p no:cacheprovider > "$OUT/pytest.txt" 2>&1
tests=$?
tail -n 40 "$OUT/pytest.txt" | tee -a "$LOG"

if has_module torch && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    step "SIS kernel benchmark" 60 "$PY" benchmarks/sis_kernel.py --out "$OUT/sis_kernel.json"
fi

if has_module tensorrt; then
    work="$OUT/pico-fp16"
    rm -rf "$work" && mkdir -p "$work"
    mq="$PY -m mixqsam2.cli.main"
    step "pico: all-fp16 plan, export, engines" 240 bash -c "
        set -e
        $mq synth images --out '$work/images' --num 4 --seed 901
        $mq synth videos --out '$work/videos' --num 2 --frames 8 --seed 902
        $mq calibrate --model pico --images '$work/images' --videos '$work/videos' --max-frames 3 \
            --formats fp16 --budget-bits 16 --out '$work/plan.json'
        $mq export --model pico --plan '$work/plan.json' --out '$work/export'
        '$PY' deploy/build_engine.py --onnx-dir '$work/export' --plan '$work/plan.json' \
            --out '$MIXQSAM2_GPU_ENGINES/fp16' --timing-cache '$MIXQSAM2_GPU_ENGINES/timing.cache' --overwrite"
    folders=()
    for kind in fp32 fp16 plan; do
        [ -f "$MIXQSAM2_GPU_ENGINES/$kind/engines.json" ] && folders+=(--engine-dir "$MIXQSAM2_GPU_ENGINES/$kind")
    done
    step "latency per engine" 90 bash -c "'$PY' deploy/engine_latency.py ${folders[*]} \
        --out '$OUT/latency.json' > '$OUT/latency.md'"
    [ -s "$OUT/latency.md" ] && tee -a "$LOG" < "$OUT/latency.md"

    attention="$OUT/hiera-attention"
    rm -rf "$attention" && mkdir -p "$attention"
    step "sam2.1_hiera_t memory attention: bank of 6 whole, 6 pooled 4x4, 3 whole" 480 bash -c "
        set -e
        for variant in k6:6:1 k6-pool4:6:4 k3:3:1; do
            IFS=: read -r name capacity pool <<< \"\$variant\"
            $mq export --model sam2.1_hiera_t --capacity \$capacity --memory-pool \$pool --out '$attention/export-'\$name
            '$PY' deploy/build_engine.py --onnx-dir '$attention/export-'\$name --graphs memory_attention \\
                --out '$attention/'\$name --timing-cache '$attention/timing.cache'
        done
        '$PY' deploy/engine_latency.py --engine-dir '$attention/k6' --engine-dir '$attention/k6-pool4' \\
            --engine-dir '$attention/k3' --out '$OUT/attention_latency.json' > '$OUT/attention_latency.md'"
    [ -s "$OUT/attention_latency.md" ] && tee -a "$LOG" < "$OUT/attention_latency.md"
fi

say "done: tests exit $tests, other steps $([ $status = 0 ] && echo ok || echo FAILED); log in $LOG"
[ "$tests" = 0 ] && exit $status
exit "$tests"
