"""Build and call the memory-bank update kernels of ``plugins/sis`` (C ABI, ``include/sis_synthesis.h``).

:func:`build_library` runs CMake + nvcc (no GPU needed); :class:`SISKernelLibrary` loads the
shared library with ctypes and enqueues updates of ``num_objects`` banks on device buffers
given as raw pointers (e.g. ``tensor.data_ptr()`` of CUDA tensors), so it depends on neither
torch nor CuPy. The ``valid`` flags are int32 on the device (TensorRT plugins take no bool).

>>> from mixqsam2.memory.synthesis import RULES
>>> KernelRule.from_spec(RULES["prune"]).kind
3
>>> lib = SISKernelLibrary(build_library("/tmp/sis-build"))  # doctest: +SKIP
>>> lib.workspace_bytes(capacity=6, num_objects=2)  # doctest: +SKIP
504
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

from mixqsam2.memory.synthesis import SynthesisRule

PLUGIN_SOURCE = Path(__file__).resolve().parents[3] / "plugins" / "sis"
DTYPES = {"float32": 0, "float16": 1}
RULE_KINDS = {"topk-to-newest": 0, "closest-pair": 1, "drop-oldest": 2, "drop-most-similar": 3}
CUDA_ERROR_INVALID_VALUE = 1


class KernelRule(ctypes.Structure):
    """The kernels' ``sis_rule``. Build it from the spec with :meth:`from_spec`; a raw struct
    can hold what the spec refuses (tests of the kernels' own argument checks)."""

    _fields_ = [("kind", ctypes.c_int), ("top_k", ctypes.c_int), ("temperature", ctypes.c_float)]

    @classmethod
    def from_spec(cls, rule: SynthesisRule) -> "KernelRule":
        return cls(RULE_KINDS[rule.kind], rule.top_k, rule.temperature)


def build_library(build_dir: str | Path, architectures: str = "87;90", source: Path = PLUGIN_SOURCE,
                  tensorrt_include: str | Path | None = None) -> Path:
    """Configure and build ``plugins/sis`` into ``build_dir``; returns the kernel library's path
    (``libsis_synthesis.so``). With ``tensorrt_include`` (a folder holding ``NvInfer.h``) the
    TensorRT plugin ``libsis_plugin.so`` is built next to it."""
    for tool in ("cmake", "nvcc"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH: cannot build the SIS kernels")
    build_dir = Path(build_dir)
    configure = ["cmake", "-S", str(source), "-B", str(build_dir), f"-DCMAKE_CUDA_ARCHITECTURES={architectures}",
                 "-DCMAKE_BUILD_TYPE=Release"]
    if tensorrt_include is not None:
        configure.append(f"-DTensorRT_INCLUDE_DIR={tensorrt_include}")
    for command in (configure, ["cmake", "--build", str(build_dir)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return build_dir / "libsis_synthesis.so"


class SISKernelLibrary:
    """ctypes view of the library's two functions."""

    def __init__(self, path: str | Path):
        self._lib = ctypes.CDLL(str(path))
        self._lib.sis_workspace_bytes.argtypes = [ctypes.c_int, ctypes.c_int]
        self._lib.sis_workspace_bytes.restype = ctypes.c_size_t
        ptr, c_int = ctypes.c_void_p, ctypes.c_int
        self._lib.sis_update.argtypes = [c_int, c_int, ptr, ptr, ptr, ptr, ptr, ptr, c_int, c_int, c_int,
                                         ptr, ptr, ptr, ptr, KernelRule, ptr, ptr]
        self._lib.sis_update.restype = c_int

    def workspace_bytes(self, capacity: int, num_objects: int = 1) -> int:
        return int(self._lib.sis_workspace_bytes(capacity, num_objects))

    def update(self, dtype: str, bank: dict[str, int], new: dict[str, int], capacity: int, feature_dim: int,
               pointer_dim: int, rule: KernelRule, workspace: int, stream: int = 0, num_objects: int = 1) -> int:
        """Enqueue one update of ``num_objects`` banks. ``bank``: device pointers of features
        [N,K,D], pointers [N,K,P], positions, scores, counts [N,K] float32, valid [N,K] int32;
        ``new``: of features [N,D], pointer [N,P], position [N], score [N]. Returns the
        library's status (0 = success, a cudaError_t otherwise)."""
        return self._lib.sis_update(
            DTYPES[dtype], num_objects, bank["features"], bank["pointers"], bank["positions"], bank["scores"],
            bank["counts"], bank["valid"], capacity, feature_dim, pointer_dim, new["features"], new["pointer"],
            new["position"], new["score"], rule, workspace, stream,
        )
