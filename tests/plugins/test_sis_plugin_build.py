"""The SISSynthesize TensorRT plugin builds against real TensorRT headers and answers TensorRT's
plugin interfaces on the host (no GPU, no libnvinfer): what the ONNX parser and the builder ask
before any kernel runs. The headers come from TENSORRT_INCLUDE_DIRS (folders holding NvInfer.h,
separated by os.pathsep), e.g. extracted from NVIDIA's public TensorRT repository:

    git --git-dir=TensorRT.git archive release/10.3 include | tar -x -C /tmp/trt-10.3
    TENSORRT_INCLUDE_DIRS=/tmp/trt-10.3/include:/tmp/trt-10.16/include pytest tests/plugins
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mixqsam2.memory.sis_cuda import PLUGIN_SOURCE, build_library

pytestmark = pytest.mark.skipif(
    shutil.which("nvcc") is None or shutil.which("cmake") is None, reason="nvcc/cmake not installed"
)
HEADER_DIRS = [d for d in os.environ.get("TENSORRT_INCLUDE_DIRS", "").split(os.pathsep) if d]
NO_HEADERS = "TENSORRT_INCLUDE_DIRS is not set (folders with TensorRT's NvInfer.h)"


def _tensorrt_version(include: str) -> str:
    text = (Path(include) / "NvInferVersion.h").read_text()
    number = {name: re.search(rf"#define (?:TRT_{name}_ENTERPRISE|NV_TENSORRT_{name}) (\d+)", text).group(1)
              for name in ("MAJOR", "MINOR")}
    return f"{number['MAJOR']}.{number['MINOR']}"


@pytest.fixture(scope="module", params=HEADER_DIRS or [None], ids=lambda d: _tensorrt_version(d) if d else "none")
def plugin(request, tmp_path_factory):
    """(library path, TensorRT include folder) of the plugin built with CMake for one header version."""
    if request.param is None:
        pytest.skip(NO_HEADERS)
    build = tmp_path_factory.mktemp("plugin")
    build_library(build, architectures="87", tensorrt_include=request.param)
    return build / "libsis_plugin.so", request.param


def test_cmake_without_tensorrt_builds_the_kernels_only_and_says_so(tmp_path):
    done = subprocess.run(["cmake", "-S", str(PLUGIN_SOURCE), "-B", str(tmp_path), "-DCMAKE_CUDA_ARCHITECTURES=87",
                           "-DTensorRT_INCLUDE_DIR=TensorRT_INCLUDE_DIR-NOTFOUND"],
                          capture_output=True, text=True, check=True)
    assert "building the SIS kernels only, without the TensorRT plugin" in done.stdout
    targets = subprocess.run(["cmake", "--build", str(tmp_path), "--target", "help"], capture_output=True,
                             text=True, check=True).stdout
    assert "sis_synthesis" in targets and "sis_plugin" not in targets


def test_plugin_library_exports_the_load_library_entry_points_and_needs_no_libnvinfer(plugin):
    library, _ = plugin
    defined = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert {"getCreators", "setLoggerFinder"} <= set(defined)
    needed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    assert "libnvinfer" not in needed  # and the link used --no-undefined: nothing is left to resolve


@pytest.fixture(scope="module")
def answers(plugin):
    """The host harness's facts about the plugin, {fact: value text}."""
    library, _ = plugin
    subprocess.run(["cmake", "--build", str(library.parent), "--target", "plugin_contract_host"], check=True,
                   capture_output=True)
    harness = library.parent / "plugin_contract_host"
    lines = subprocess.run([str(harness)], capture_output=True, text=True, check=True).stdout.splitlines()
    return dict(line.split(" ", 1) for line in lines)


def test_creator_is_found_under_the_onnx_node_identity(answers):
    assert answers["creators"] == "1" and answers["creator_kind"] == "PLUGIN CREATOR_V3ONE"
    assert answers["identity"] == answers["plugin_identity"] == "SISSynthesize 1 mixqsam2"
    assert answers["fields"] == "kind top_k temperature"


def test_rules_the_spec_refuses_are_refused(answers):
    assert answers["refuses_top_k_1"] == "1" and answers["refuses_float_kind"] == "1"
    assert answers["default_rule"] == "kind=0 top_k=3 temperature=1"  # the spec's RULES["sis"]


def test_fields_survive_serialization(answers):
    assert answers["rule"] == answers["restored_rule"] == "kind=0 top_k=4 temperature=0.5"


def test_build_interface_is_v2_with_every_bank_output_aliased(answers):
    assert answers["capabilities"] == "PLUGIN_V3ONE_CORE/1 PLUGIN_V3ONE_BUILD/2 PLUGIN_V3ONE_RUNTIME/1"
    assert answers["outputs"] == "6"
    assert answers["aliases"] == "0 1 2 3 4 5 -1"


def test_types_fp32_and_fp16_banks_with_int32_flags(answers):
    half, flt, int32 = "1", "0", "3"  # nvinfer1::DataType values
    assert answers["output_types"].split() == [half, half, flt, flt, flt, int32]
    assert answers["formats_fp32"] == answers["formats_fp16"] == "1"
    assert answers["formats_bool_valid"] == answers["formats_int8_bank"] == "0"


def test_shapes_are_checked_when_the_builder_configures(answers):
    assert answers["configure_ok"] == "0"
    assert answers["configure_capacity_65"] == answers["configure_9_inputs"] == "-1"
    got, expected = answers["workspace"].split()
    assert got == expected  # sized for the profile's largest number of objects
