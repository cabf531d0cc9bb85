"""The ``ort`` backend: exported graphs on ONNX Runtime, no torch and no sam2.

:class:`OrtGraphs` reads an export folder (:func:`~mixqsam2.export.manifest.read_manifest`
checks it first) and runs its graphs with the same ``run(name, inputs) -> outputs`` as the
torch backend, so :class:`~mixqsam2.memory.tracker.StreamingTracker` drives either. Sessions
are made when a graph is first used (a stream with ``fifo`` never loads the SIS graphs).

>>> graphs = OrtGraphs("out/pico-onnx")  # doctest: +SKIP
>>> tracker = StreamingTracker(graphs, memory="sis")  # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.export.manifest import host_side, read_manifest
from mixqsam2.export.ort_session import MAX_INT8_KEYS, ort_session


def require_onnx_for_fast_kernels() -> None:
    """``fast`` kernels rewrite memory attention with onnx before loading it."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserInputError("--ort-kernels fast needs the onnx package: pip install 'mixqsam2[jetson]' (or onnx)") from None


def require_onnxruntime() -> None:
    """The ort backend needs onnxruntime; say so in one line where it is missing."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UserInputError("--backend ort needs onnxruntime: pip install 'mixqsam2[jetson]' (or onnxruntime)") from None


class OrtGraphs:
    """Runs an export folder's graphs with ONNX Runtime on the CPU.

    ``kernels``: ``"exact"`` runs quantized graphs as written (the plan's arithmetic, as
    TensorRT computes it); ``"fast"`` lets ONNX Runtime use its own integer kernels, and
    computes memory attention's attention products in int8 (there, over the whole bank, they
    are most of the time; :mod:`mixqsam2.export.ort_session` says how both differ).
    """

    name = "ort"

    def __init__(self, onnx_dir: str | Path, threads: int | None = None, kernels: str = "exact"):
        if kernels not in ("exact", "fast"):
            raise UserInputError(f"unknown ONNX Runtime kernels {kernels!r}; use exact or fast")
        require_onnxruntime()
        self.folder = Path(onnx_dir)
        self.manifest = read_manifest(self.folder)
        host = host_side(self.folder, self.manifest)
        self.config, self.capacity, self.no_mem_embed = host.config, host.capacity, host.no_mem_embed
        self.memory_pool = host.memory_pool
        self.threads = threads
        self.seconds: dict[str, float] = defaultdict(float)
        self._sessions: dict = {}
        quantized = {entry["graph"] for entry in self.manifest["layers"].values() if entry["format"] in ("int8", "int4")}
        self._exact_graphs = quantized if kernels == "exact" else set()
        self._int8_attention = {"memory_attention"} if kernels == "fast" and self._int8_attention_fits() else set()
        if kernels == "fast":
            require_onnx_for_fast_kernels()

    def _int8_attention_fits(self) -> bool:
        """Whether memory attention's rows (every memory token of the bank and the conditioning
        frame, and the pointer tokens) are short enough for exact int32 sums of uint8 products."""
        keys = self.config.attended_keys(self.capacity, self.memory_pool)
        if keys > MAX_INT8_KEYS:
            warnings.warn(f"--ort-kernels fast: memory attention over {keys} memory tokens stays in float "
                          f"(int8 products are exact up to {MAX_INT8_KEYS} per row)", stacklevel=3)
        return keys <= MAX_INT8_KEYS

    def run(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session, input_names, output_names = self._session(name)
        start = time.perf_counter()
        outputs = session.run(None, {k: inputs[k] for k in input_names})
        self.seconds[name.split(".")[0]] += time.perf_counter() - start
        return dict(zip(output_names, outputs))

    def _session(self, name: str):
        """(session, its input names, its output names), made when the graph first runs."""
        if name not in self._sessions:
            graph = self.manifest["graphs"].get(name)
            if graph is None or "ort" not in graph["runs_on"]:
                raise UserInputError(f"the export in {self.folder} has no graph '{name}' that ONNX Runtime can run")
            session = ort_session(self.folder / graph["file"], name in self._exact_graphs, self.threads,
                                  int8_attention=name in self._int8_attention)
            self._sessions[name] = (session, [i.name for i in session.get_inputs()],
                                    [o.name for o in session.get_outputs()])
        return self._sessions[name]
