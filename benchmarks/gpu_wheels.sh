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
# Then benchmarks/gpu_pico.sh, in one device call carrying .whl, trains pico candidates.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WHEELS=.whl
[ -x "$PY" ] || { echo "error: $PY not found: run 'make setup' first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$tmp" sam2==1.1.0
pins=$("$PY" -m pip freeze | grep -iE '^(hydra-core|omegaconf|antlr4-python3-runtime|iopath|tensordict|pyvers)==')
[ "$(echo "$pins" | wc -l)" -eq 6 ] ||
    { echo "error: $PY lacks one of sam2's or training's packages: run 'make setup'" >&2; exit 2; }
"$PY" -m pip wheel -q --no-deps -w "$tmp" $pins
not_pure=$(ls "$tmp" | grep -v -- '-py3-none-any\.whl$' || true)
[ -z "$not_pure" ] || { echo "error: not pure-Python wheels: $not_pure" >&2; exit 1; }
rm -rf "$WHEELS" && mkdir "$WHEELS" && mv "$tmp"/*.whl "$WHEELS"/
du -ch "$WHEELS"/*.whl | tail -n 1 | sed "s|total|in $WHEELS/ (a device call carries at most 64 MiB with the tree)|"
