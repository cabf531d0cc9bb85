"""Build and call the SIS CUDA kernels of ``plugins/sis`` (C ABI, ``include/sis_synthesis.h``).

:func:`build_library` runs CMake + nvcc (no GPU needed); :class:`SISKernelLibrary` loads the
shared library with ctypes and enqueues updates on device buffers given as raw pointers
(e.g. ``tensor.data_ptr()`` of CUDA tensors), so it depends on neither torch nor CuPy.

>>> lib = SISKernelLibrary(build_library("/tmp/sis-build"))  # doctest: +SKIP
>>> lib.workspace_bytes(capacity=6)  # doctest: +SKIP
252
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

from mixqsam2.memory.synthesis import SynthesisRule

PLUGIN_SOURCE = Path(__file__).resolve().parents[3] / "plugins" / "sis"
DTYPES = {"float32": 0, "float16": 1}
RULE_KINDS = {"topk-to-newest": 0, "closest-pair": 1}
CUDA_ERROR_INVALID_VALUE = 1


class _Rule(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("top_k", ctypes.c_int), ("temperature", ctypes.c_float)]


def build_library(build_dir: str | Path, architectures: str = "87;90", source: Path = PLUGIN_SOURCE) -> Path:
    """Configure and build ``libsis_synthesis.so`` into ``build_dir``; returns its path."""
    for tool in ("cmake", "nvcc"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH: cannot build the SIS kernels")
    build_dir = Path(build_dir)
    configure = ["cmake", "-S", str(source), "-B", str(build_dir), f"-DCMAKE_CUDA_ARCHITECTURES={architectures}",
                 "-DCMAKE_BUILD_TYPE=Release"]
    for command in (configure, ["cmake", "--build", str(build_dir)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return build_dir / "libsis_synthesis.so"


class SISKernelLibrary:
    """ctypes view of the library's two functions."""

    def __init__(self, path: str | Path):
        self._lib = ctypes.CDLL(str(path))
        self._lib.sis_workspace_bytes.argtypes = [ctypes.c_int]
        self._lib.sis_workspace_bytes.restype = ctypes.c_size_t
        ptr = ctypes.c_void_p
        self._lib.sis_update.argtypes = [ctypes.c_int, ptr, ptr, ptr, ptr, ptr, ptr, ctypes.c_int, ctypes.c_int,
                                         ctypes.c_int, ptr, ptr, ptr, ptr, _Rule, ptr, ptr]
        self._lib.sis_update.restype = ctypes.c_int

    def workspace_bytes(self, capacity: int) -> int:
        return int(self._lib.sis_workspace_bytes(capacity))

    def update(self, dtype: str, bank: dict[str, int], new: dict[str, int], capacity: int, feature_dim: int,
               pointer_dim: int, rule: SynthesisRule, workspace: int, stream: int = 0) -> int:
        """Enqueue one update. ``bank``: device pointers of features, pointers, positions,
        scores, counts, valid; ``new``: of features, pointer, position, score. Returns the
        library's status (0 = success, a cudaError_t otherwise)."""
        return self._lib.sis_update(
            DTYPES[dtype], bank["features"], bank["pointers"], bank["positions"], bank["scores"], bank["counts"],
            bank["valid"], capacity, feature_dim, pointer_dim, new["features"], new["pointer"], new["position"],
            new["score"], _Rule(RULE_KINDS[rule.kind], rule.top_k, rule.temperature), workspace, stream,
        )
