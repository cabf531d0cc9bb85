#!/usr/bin/env bash
# Wheels of what `train-pico` and benchmarks/gpu_train.py need beyond a lent GPU machine's image
# (which has torch, numpy, opencv, scikit-image, matplotlib, scipy, tqdm, pyyaml, tensorboard,
# cloudpickle and portalocker, and cannot download anything), into .whl/ (git-ignored):
# sam2 1.1.0 built here without its CUDA extension, with sam2's own `training` package, and
# hydra-core, omegaconf, antlr4-python3-runtime, iopath, tensordict and pyvers, at the versions
# `make setup` installs. All are pure Python (the script checks), so one set serves the lent
# machine's Python 3.12 and this machine's 3.11 alike.
#
#   bash benchmarks/gpu_wheels.sh        (needs `make setup` first: sam2 builds against its torch)
#
# Then one device call, carrying .whl, trains and brings back what to evaluate here (3 runs:
# 3 checkpoints + 3 records + runs.md + runs.png, the 8 files a call returns):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site:$PWD/toolkit python3 benchmarks/gpu_train.py --out /tmp/gt --minutes 8 ... &&
#   cp /tmp/gt/*.pt /tmp/gt/*.json /tmp/gt/runs.* "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WHEELS=.whl
[ -x "$PY" ] || { echo "error: $PY not found: run 'make setup' first" >&2; exit 2; }
rm -rf "$WHEELS.tmp" && mkdir -p "$WHEELS.tmp"
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELS.tmp" sam2==1.1.0
pins=$("$PY" -m pip freeze | grep -iE '^(hydra-core|omegaconf|antlr4-python3-runtime|iopath|tensordict|pyvers)==')
[ "$(echo "$pins" | wc -l)" -eq 6 ] ||
    { echo "error: $PY lacks one of sam2's or training's packages: run 'make setup'" >&2; exit 2; }
"$PY" -m pip wheel -q --no-deps -w "$WHEELS.tmp" $pins
not_pure=$(ls "$WHEELS.tmp" | grep -v -- '-py3-none-any\.whl$' || true)
[ -z "$not_pure" ] || { echo "error: not pure-Python wheels: $not_pure" >&2; exit 1; }
rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
du -ch "$WHEELS"/*.whl | tail -n 1 | sed "s|total|in $WHEELS/ (a device call carries at most 64 MiB with the tree)|"
