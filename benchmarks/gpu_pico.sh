#!/usr/bin/env bash
# Issue 13 on a lent GPU in one device call: three pico candidates trained side by side for
# MINUTES (default 8, the probe included) by benchmarks/gpu_train.py, all with the bundled
# v2.1's recipe at GPU batch sizes:
#   w32  the bundled pico continued;
#   w64  the bundled pico widened 2x (the same masks at step 0), then trained;
#   w48  a 48-wide pico from scratch (20 % image-only steps first, as v1 was made).
# On this machine first: `bash benchmarks/gpu_wheels.sh` (sam2 and its training packages as
# wheels in .whl/; the lent machine has torch but cannot download). Then one call of the device
# tool, from the repository root: command "bash benchmarks/gpu_pico.sh 8", carry [".whl"],
# timeout_s 600. It writes to $OUT (out/gpu_pico without one) w32.pt, w64.pt, w48.pt, their
# records NAME.json, runs.md and runs.png: the 8 files a call brings back. Score them here with
# pico_quality.py, object_scores.py, memory_bank.py on fresh seeds and bundle_gate.py
# (BENCHMARKS.md, "A lent GPU's minutes for issue 13").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
MINUTES=${1:-8}
DEST=${OUT:-out/gpu_pico}
PY=${PYTHON:-python3}  # DEVICE=cpu: the same run on the CPU (a check of this script)
[ -d .whl ] || { echo "error: no .whl/: run benchmarks/gpu_wheels.sh here and carry .whl" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"
"$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/mixqsam2-site .whl/*.whl || exit 2
export PYTHONPATH="/tmp/mixqsam2-site:$PWD/toolkit${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=2
RUNS=$(mktemp -d)
PICO=toolkit/mixqsam2/models/weights/pico.pt
"$PY" benchmarks/gpu_train.py --out "$RUNS" --minutes "$MINUTES" --device "${DEVICE:-cuda}" \
    --workers 4 --video-batch 4 --image-batch 12 \
    --set recolor=0.7 --set small_objects=0.5 --set absent_targets=0.7 --set clutter=0.5 \
    --set image_encoder_lr_scale=0.3 --set video_every=4 \
    --candidate "w32=32:$PICO" --candidate "w64=64:$PICO" --candidate w48=48
status=$?
mkdir -p "$DEST"
cp "$RUNS"/*.pt "$RUNS"/*.json "$RUNS"/runs.md "$RUNS"/runs.png "$DEST"/ 2>/dev/null
ls -l "$DEST"
exit $status
