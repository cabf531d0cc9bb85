#!/usr/bin/env bash
# GPU CI: build the workstation image, then inside it on the GPU: the whole test suite without
# tests/gpu, then benchmarks/gpu_check.sh (SIS plugin build, tests/gpu + tests/plugins against the
# container's TensorRT, pico engines fp32, all-fp16 and the mixed int4/int8/fp16 plan, latency
# table). Needs docker with the NVIDIA container toolkit. Results: out/ci-gpu/ (log.txt, pytest.txt,
# latency.md, ...).
#
#   bash docker/ci-gpu.sh                  (IMAGE=..., TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:<tag> to override)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-mixqsam2-workstation:ci}
build_args=()
[ -n "${TENSORRT_IMAGE:-}" ] && build_args=(--build-arg "TENSORRT_IMAGE=$TENSORRT_IMAGE")
docker build "${build_args[@]}" -f docker/Dockerfile.workstation -t "$IMAGE" .
mkdir -p out/ci-gpu
docker run --rm --gpus all --user "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD/out/ci-gpu:/results" "$IMAGE" bash -c '
    set -euo pipefail
    python3 -m pytest -q --ignore=tests/gpu -p no:cacheprovider
    bash benchmarks/gpu_check.sh /results'
