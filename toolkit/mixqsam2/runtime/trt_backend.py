"""The ``trt`` backend: an engine folder (``deploy/build_engine.py``) on TensorRT.

:class:`TrtGraphs` runs the engines with the same ``run(name, inputs) -> outputs`` as the ort
and torch backends, so :class:`~mixqsam2.memory.tracker.StreamingTracker` drives it unchanged.
The engine folder carries the export's ``manifest.json`` (the model's host-side settings, the
bank capacity) and ``constants.npz``; :class:`~mixqsam2.trt.runtime.TensorRTRunner` loads the
SIS plugin and deserializes each engine when its graph first runs. The tracker's bank update
``sis_update.<policy>`` runs the plugin engine ``sis_update_plugin.<policy>`` (same inputs and
outputs, one ``SISSynthesize`` node).

The memory features stay on the GPU for the whole stream (:class:`DeviceArrays`, the
tracker's ``resident`` arrays): the memory encoder's output feeds the bank update and each
object's conditioning memory where it is, the bank is updated in place by the plugin where
TensorRT aliases its output to its input, and only the small per-slot arrays (pointers,
positions, scores, counts, validity: the host's layout needs them) cross to the host.

>>> engine_for("sis_update.sis"), engine_for("mask_decoder")
('sis_update_plugin.sis', 'mask_decoder')
>>> graphs = TrtGraphs("out/pico-engines")  # doctest: +SKIP
>>> tracker = StreamingTracker(graphs, memory="sis")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.export.manifest import host_side, read_manifest


def require_tensorrt() -> None:
    """The trt backend needs TensorRT; say so in one line where it is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise UserInputError("--backend trt needs TensorRT, which is not installed here (it comes with JetPack "
                             "and NVIDIA's TensorRT containers; --backend ort runs the export without it)") from None


def engine_for(graph: str) -> str:
    """The engine that runs the tracker's graph ``graph``: bank updates on the SIS plugin."""
    role, _, policy = graph.partition(".")
    return f"sis_update_plugin.{policy}" if role == "sis_update" else graph


class TrtGraphs:
    """Runs an engine folder's engines with TensorRT on the GPU.

    ``plugin_library`` (default ``$MIXQSAM2_SIS_PLUGIN``, else where the engines were built):
    the SIS plugin library on this machine; its sha256 must be the one the engines were built with.
    """

    name = "trt"

    def __init__(self, engine_dir: str | Path, plugin_library: str | Path | None = None):
        require_tensorrt()
        from mixqsam2.trt.runtime import TensorRTRunner

        self.folder = Path(engine_dir)
        self.runner = TensorRTRunner(self.folder, plugin_library or os.environ.get("MIXQSAM2_SIS_PLUGIN"))
        self.manifest = read_manifest(self.folder, with_graphs=False)
        needed = {engine_for(name) for name, graph in self.manifest["graphs"].items() if "trt" in graph["runs_on"]}
        missing = sorted(needed - set(self.runner.graphs))
        if missing:
            self.runner.close()
            raise UserInputError(f"{self.folder} has no engine for {', '.join(missing)} (built with --graphs?): "
                                 "tracking needs every engine run_stream uses")
        host = host_side(self.folder, self.manifest)
        self.config, self.capacity, self.no_mem_embed = host.config, host.capacity, host.no_mem_embed
        self.memory_pool = host.memory_pool
        self.seconds: dict[str, float] = defaultdict(float)
        self.resident = DeviceArrays(self.runner)

    def run(self, name: str, inputs: dict) -> dict:
        engine = engine_for(name)
        feeds = {k: inputs[k] for k in self.runner.input_names(engine)}
        start = time.perf_counter()
        outputs = self.runner.run(engine, feeds, on_device=RESIDENT_OUTPUTS)
        self.seconds[name.split(".")[0]] += time.perf_counter() - start
        return outputs

    def close(self) -> None:
        """Free the GPU memory of the stacks, the engines and the stream (objects' memories
        are freed with the tracker that holds them)."""
        self.resident.close()
        self.runner.close()


RESIDENT_OUTPUTS = ("memory_features", "bank_features_out")  # what the tracker keeps in DeviceArrays


class DeviceArrays:
    """The tracker's memory features on the GPU (its ``resident`` arrays, see
    :class:`~mixqsam2.memory.tracker.HostArrays`): one device tensor per object's conditioning
    memory and bank, stacked into one reused buffer per graph input by device-to-device copies
    on the engines' stream, so copies and engines stay in order."""

    def __init__(self, runner):
        from mixqsam2.trt.cuda import DeviceBuffer

        self.runner = runner
        self._batches: dict[str, DeviceBuffer] = defaultdict(DeviceBuffer)

    def put(self, array: np.ndarray):
        from mixqsam2.trt.cuda import DeviceTensor

        array = np.ascontiguousarray(array)
        tensor = DeviceTensor.empty(array.shape, array.dtype)
        self.runner.stream.to_device(tensor.pointer, array)
        return tensor

    def stack(self, rows: list, name: str):
        from mixqsam2.trt.cuda import DeviceTensor

        _same_layout(rows, rows[0].shape, rows[0].dtype)
        row_bytes = rows[0].nbytes
        batch = DeviceTensor(self._batches[name].reserve(row_bytes * len(rows)), (len(rows), *rows[0].shape), rows[0].dtype)
        for index, row in enumerate(rows):
            self.runner.stream.copy(batch.pointer + index * row_bytes, row.pointer, row_bytes)
        return batch

    def rows(self, batch, into: list | None = None) -> list:
        from mixqsam2.trt.cuda import DeviceTensor

        into = into or [DeviceTensor.empty(batch.shape[1:], batch.dtype) for _ in range(batch.shape[0])]
        _same_layout(into, batch.shape[1:], batch.dtype)
        if len(into) != batch.shape[0]:
            raise ValueError(f"{len(into)} rows for a batch of {batch.shape[0]}")
        row_bytes = batch.nbytes // batch.shape[0]
        for index, row in enumerate(into):
            self.runner.stream.copy(row.pointer, batch.pointer + index * row_bytes, row_bytes)
        return into

    def close(self) -> None:
        for buffer in self._batches.values():
            buffer.free()
        self._batches.clear()


def _same_layout(rows: list, shape: tuple, dtype) -> None:
    """Device copies check nothing: rows of another shape or dtype would be copied past their end."""
    for row in rows:
        if tuple(row.shape) != tuple(shape) or row.dtype != dtype:
            raise ValueError(f"a row of shape {row.shape} ({row.dtype}) among rows of {tuple(shape)} ({dtype})")
