"""The SIS CUDA kernels compile with nvcc (no GPU needed) and their C ABI answers on the host."""

import shutil

import pytest

from mixqsam2.memory.sis_cuda import CUDA_ERROR_INVALID_VALUE, KernelRule, SISKernelLibrary, build_library
from mixqsam2.memory.synthesis import RULES

pytestmark = pytest.mark.skipif(
    shutil.which("nvcc") is None or shutil.which("cmake") is None, reason="nvcc/cmake not installed"
)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    # Jetson Orin (87) and H100 (90); warnings are errors in the CMake file
    return SISKernelLibrary(build_library(tmp_path_factory.mktemp("sis") / "build", architectures="87;90"))


def test_workspace_size_follows_the_layout_per_object(library):
    capacity, objects = 6, 3
    per_object = 4 * (capacity + 1) ** 2 + 4 * capacity + 4 * (capacity + 2)
    assert library.workspace_bytes(capacity, objects) == objects * per_object


@pytest.mark.parametrize("case", ["capacity 1", "capacity 65", "no object", "top_k 1", "top_k 0", "kind 4",
                                  "temperature 0"])
def test_bad_arguments_are_refused_before_any_launch(library, case):
    # raw structs: the spec's SynthesisRule refuses these rules itself
    rules = {"top_k 1": KernelRule(0, 1, 1.0), "top_k 0": KernelRule(0, 0, 1.0), "kind 4": KernelRule(4, 3, 1.0),
             "temperature 0": KernelRule(0, 3, 0.0)}
    rule = rules.get(case, KernelRule.from_spec(RULES["sis"]))
    capacity = {"capacity 1": 1, "capacity 65": 65}.get(case, 3)
    objects = 0 if case == "no object" else 2
    null = {k: 0 for k in ("features", "pointers", "positions", "scores", "counts", "valid")}
    new = {k: 0 for k in ("features", "pointer", "position", "score")}
    status = library.update("float32", null, new, capacity, 64, 8, rule, workspace=0, num_objects=objects)
    assert status == CUDA_ERROR_INVALID_VALUE
