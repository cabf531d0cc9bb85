"""The SIS CUDA kernels compile with nvcc (no GPU needed) and their C ABI answers on the host."""

import shutil

import pytest

from mixqsam2.memory.sis_cuda import CUDA_ERROR_INVALID_VALUE, SISKernelLibrary, build_library
from mixqsam2.memory.synthesis import RULES

pytestmark = pytest.mark.skipif(
    shutil.which("nvcc") is None or shutil.which("cmake") is None, reason="nvcc/cmake not installed"
)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    # Jetson Orin (87) and H100 (90); warnings are errors in the CMake file
    return SISKernelLibrary(build_library(tmp_path_factory.mktemp("sis") / "build", architectures="87;90"))


def test_workspace_size_follows_the_layout(library):
    capacity = 6
    assert library.workspace_bytes(capacity) == 4 * (capacity + 1) ** 2 + 4 * capacity + 4 * (capacity + 2)


@pytest.mark.parametrize("capacity,rule", [(1, "sis"), (65, "sis"), (3, None)])
def test_bad_arguments_are_refused_before_any_launch(library, capacity, rule):
    from dataclasses import replace

    chosen = RULES["sis"] if rule else replace(RULES["sis"], kind="topk-to-newest", top_k=0)
    null = {k: 0 for k in ("features", "pointers", "positions", "scores", "counts", "valid")}
    new = {k: 0 for k in ("features", "pointer", "position", "score")}
    status = library.update("float32", null, new, capacity, 64, 8, chosen, workspace=0)
    assert status == CUDA_ERROR_INVALID_VALUE
