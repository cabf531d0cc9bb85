"""Fixtures of the TensorRT tests on a GPU: each skips with its reason where TensorRT, cuda-python,
a GPU or the SIS plugin library is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
