"""Fixtures of the TensorRT tests on a GPU: each skips with its reason where TensorRT, cuda-python,
a GPU or the SIS plugin library is missing. The pico engine folders are built once per session by
deploy/build_engine.py from the exports of tests/conftest.py (``pico_onnx_fp32``, ``pico_onnx_plan``),
under ``$MIXQSAM2_GPU_ENGINES`` when it is set (benchmarks/gpu_check.sh times them afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tensorrt():
    """The tensorrt module, on a machine with a CUDA GPU and cuda-python."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here")
    pytest.importorskip("cuda", reason="cuda-python is not installed here (pip install .[trt])")
    from mixqsam2.trt.cuda import check, cudart

    try:
        count = check(cudart().cudaGetDeviceCount())
    except RuntimeError as exc:
        pytest.skip(f"no usable CUDA GPU: {exc}")
    if count < 1:
        pytest.skip("no CUDA GPU on this machine")
    return trt


@pytest.fixture(scope="session")
def sis_plugin(tensorrt, tmp_path_factory) -> Path:
    """libsis_plugin.so: $MIXQSAM2_SIS_PLUGIN, else built here against $TENSORRT_INCLUDE_DIRS' first folder."""
    from mixqsam2.memory.sis_cuda import build_library
    from mixqsam2.trt.cuda import check, cudart

    given = os.environ.get("MIXQSAM2_SIS_PLUGIN")
    if given:
        return Path(given)
    include = os.environ.get("TENSORRT_INCLUDE_DIRS", "").split(os.pathsep)[0]
    if not include:
        pytest.skip("no SIS plugin: set MIXQSAM2_SIS_PLUGIN or TENSORRT_INCLUDE_DIRS (TensorRT's headers)")
    properties = check(cudart().cudaGetDeviceProperties(0))
    build = tmp_path_factory.mktemp("sis_plugin")
    build_library(build, architectures=f"{properties.major}{properties.minor}", tensorrt_include=include)
    return build / "libsis_plugin.so"


@pytest.fixture(scope="session")
def engine_root(tmp_path_factory) -> Path:
    given = os.environ.get("MIXQSAM2_GPU_ENGINES")
    return Path(given) if given else tmp_path_factory.mktemp("engines")


def build_engines_cli(export: Path, out: Path, plugin: Path, *plan_args) -> Path:
    """deploy/build_engine.py as a user runs it (timing cache shared by the session's builds)."""
    done = subprocess.run([sys.executable, str(REPO / "deploy" / "build_engine.py"), "--onnx-dir", str(export),
                           *map(str, plan_args), "--out", str(out), "--plugin-lib", str(plugin),
                           "--timing-cache", str(out.parent / "timing.cache"), "--overwrite"],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"build_engine.py {export.name}: {done.stderr[-3000:]}"
    return out


@pytest.fixture(scope="session")
def pico_engines_fp32(sis_plugin, pico_onnx_fp32, engine_root) -> Path:
    """Engines of pico exported without a plan (fp32 graphs)."""
    return build_engines_cli(pico_onnx_fp32, engine_root / "fp32", sis_plugin)


@pytest.fixture(scope="session")
def pico_engines_plan(sis_plugin, pico_onnx_plan, pico_plan, engine_root) -> Path:
    """Engines of pico exported with the mixed int4/int8/fp16 ``pico_plan``."""
    return build_engines_cli(pico_onnx_plan, engine_root / "plan", sis_plugin, "--plan", pico_plan)
