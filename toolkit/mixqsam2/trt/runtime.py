"""Run the engines of an engine folder (``build_engine.py`` output) from NumPy arrays.

:class:`TensorRTRunner` is the trt backend's one entry point: ``run(graph, inputs)`` takes and
returns ``{tensor name: np.ndarray}``, like every backend. On first use it imports TensorRT
and cuda-python, checks that this TensorRT built the engines, registers the SIS plugin
library the engines were built with (same sha256), and creates one CUDA stream. Engines are
deserialized when their graph first runs; device buffers grow to the largest shapes seen and
are reused. An output the engine aliases to an input (TensorRT >= 10.16 reports such pairs)
shares that input's device buffer. Wall time per run (copies included) is kept per graph.

Arrays that should not travel through the host do not: an input may be a
:class:`~mixqsam2.trt.cuda.DeviceTensor` (bound where it is), and the outputs named in
``on_device`` come back as device tensors over the engine's own buffers (valid until that
engine runs again), or, for an output the engine aliases to an input, over that input's
memory: a device tensor given as such an input is updated in place.

>>> with TensorRTRunner("out/engines") as runner:  # doctest: +SKIP
...     out = runner.run("image_encoder", {"image": frame})
...     runner.latency_ms()["image_encoder"]["mean"]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.trt.build import ENGINES_SCHEMA, INDEX, import_tensorrt, load_plugin_library
from mixqsam2.export.manifest import file_sha256
from mixqsam2.fileio import read_json
from mixqsam2.trt.cuda import DeviceTensor


def read_engine_index(folder: str | Path) -> dict:
    """``engines.json`` of an engine folder, with every engine file present and intact."""
    folder = Path(folder)
    path = folder / INDEX
    index = read_json(path, f"{folder} is not an engine folder: no {INDEX} (make one with deploy/build_engine.py)")
    if index.get("schema") != ENGINES_SCHEMA:
        raise UserInputError(f"{path}: schema {index.get('schema')!r}, expected {ENGINES_SCHEMA!r}")
    for graph, record in index["engines"].items():
        engine = folder / record["file"]
        if not engine.is_file() or file_sha256(engine) != record["sha256"]:
            raise UserInputError(f"engine of {graph} ({engine}) is missing or does not match {INDEX}")
    return index


class TensorRTRunner:
    """The engines of one folder behind ``run(graph, inputs) -> outputs``; see the module docstring.

    ``plugin_library``: where the SIS plugin library is on this machine, when it is not where
    the engines were built (its sha256 must match).
    """

    def __init__(self, engine_dir: str | Path, plugin_library: str | Path | None = None):
        self.folder = Path(engine_dir)
        self.index = read_engine_index(self.folder)
        self._plugin_library = plugin_library
        self._trt = self._runtime = self._stream = None
        self._engines: dict[str, _Engine] = {}
        self._latency: dict[str, list[float]] = {}

    @property
    def graphs(self) -> list[str]:
        return list(self.index["engines"])

    def run(self, graph: str, inputs: dict, on_device=()) -> dict:
        """Run ``graph``'s engine on ``inputs`` (every engine input by name: arrays or device
        tensors); returns every output, those named in ``on_device`` as device tensors."""
        start = time.perf_counter()
        outputs = self._engine(graph).run(inputs, self._stream, set(on_device))
        self._latency.setdefault(graph, []).append((time.perf_counter() - start) * 1e3)
        return outputs

    @property
    def stream(self):
        """The CUDA stream every engine runs and copies on (made by the first call)."""
        self._start()
        return self._stream

    def input_names(self, graph: str) -> list[str]:
        """The inputs of ``graph``'s engine (TensorRT may leave out a graph input that nothing reads)."""
        return list(self._engine(graph).inputs)

    def example_inputs(self, graph: str, seed: int = 0) -> dict[str, np.ndarray]:
        """Inputs of ``graph``'s engine for timing: the profile's opt shapes, random floats, banks full."""
        return self._engine(graph).example_inputs(np.random.default_rng(seed))

    def latency_ms(self) -> dict[str, dict[str, float]]:
        """Per graph: runs, mean and median wall ms of :meth:`run`."""
        return {graph: {"runs": len(ms), "mean": float(np.mean(ms)), "median": float(np.median(ms))}
                for graph, ms in self._latency.items()}

    def close(self) -> None:
        for engine in self._engines.values():
            engine.free()
        self._engines.clear()
        if self._stream is not None:
            self._stream.destroy()
            self._stream = None

    def __enter__(self) -> TensorRTRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _engine(self, graph: str) -> _Engine:
        if graph not in self._engines:
            if graph not in self.index["engines"]:
                raise UserInputError(f"no engine for graph {graph!r} in {self.folder} (has: {', '.join(self.graphs)})")
            self._start()
            data = (self.folder / self.index["engines"][graph]["file"]).read_bytes()
            engine = self._runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise RuntimeError(f"TensorRT could not deserialize the engine of {graph} (see its log above)")
            self._engines[graph] = _Engine(self._trt, engine)
        return self._engines[graph]

    def _start(self) -> None:
        if self._runtime is not None:
            return
        from mixqsam2.trt.cuda import Stream

        trt = import_tensorrt()
        if trt.__version__ != self.index["tensorrt"]:
            raise UserInputError(f"the engines in {self.folder} were built with TensorRT {self.index['tensorrt']}, "
                                 f"this is {trt.__version__}: build them again here (deploy/build_engine.py)")
        self._trt, self._runtime = trt, trt.Runtime(trt.Logger(trt.Logger.WARNING))
        plugin = self.index["plugin"]
        if plugin is not None:
            path = self._plugin_library or plugin["path"]
            if load_plugin_library(self._runtime.get_plugin_registry(), path) != plugin["sha256"]:
                raise UserInputError(f"plugin library {path} is not the one the engines were built with")
        self._stream = Stream()


class _Engine:
    """One deserialized engine, its execution context and its device buffers."""

    def __init__(self, trt, engine):
        from mixqsam2.trt.cuda import DeviceBuffer

        self.engine, self.context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        aliased = getattr(engine, "get_aliased_input_tensor", lambda name: None)  # TensorRT >= 10.16
        self.aliases = {n: aliased(n) for n in self.outputs if aliased(n)}
        self.buffers = {n: DeviceBuffer() for n in names if n not in self.aliases}

    def run(self, inputs: dict, stream, on_device: set) -> dict:
        missing, unknown = set(self.inputs) - set(inputs), set(inputs) - set(self.inputs)
        if missing or unknown:
            raise ValueError(f"engine inputs are {self.inputs}; missing {sorted(missing)}, unknown {sorted(unknown)}")
        addresses = {name: self._bind_input(name, inputs[name], stream) for name in self.inputs}
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * self.dtypes[name].itemsize
            aliased = self.aliases.get(name)  # shapes equal: the input's memory holds the output
            addresses[name] = addresses[aliased] if aliased else self.buffers[name].reserve(nbytes)
            self.context.set_tensor_address(name, addresses[name])
            results[name] = (DeviceTensor(addresses[name], shape, self.dtypes[name]) if name in on_device
                             else np.empty(shape, self.dtypes[name]))
        if not self.context.execute_async_v3(stream.handle):
            raise RuntimeError("TensorRT could not enqueue the engine (see its log above)")
        for name, result in results.items():
            if name not in on_device:
                stream.to_host(result, addresses[name])
        stream.synchronize()
        return results

    def _bind_input(self, name: str, value, stream) -> int:
        """Bind one input: a device tensor where it is, an array through this input's buffer."""
        if isinstance(value, DeviceTensor):
            if value.dtype != self.dtypes[name]:
                raise ValueError(f"input {name} is {value.dtype} on the device; the engine takes {self.dtypes[name]}")
            shape, pointer = value.shape, value.pointer
        else:
            array = np.ascontiguousarray(value, dtype=self.dtypes[name])
            shape, pointer = array.shape, self.buffers[name].reserve(array.nbytes)
            stream.to_device(pointer, array)
        if not self.context.set_input_shape(name, shape):
            raise ValueError(f"input {name} of shape {shape} is outside the engine's profile")
        self.context.set_tensor_address(name, pointer)
        return pointer

    def example_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        inputs = {}
        for name in self.inputs:
            shape = tuple(self.engine.get_tensor_shape(name))
            if -1 in shape:
                shape = tuple(self.engine.get_tensor_profile_shape(name, 0)[1])  # (min, opt, max)
            dtype = self.dtypes[name]
            if dtype == np.bool_:
                inputs[name] = np.ones(shape, bool)
            elif np.issubdtype(dtype, np.floating):
                inputs[name] = rng.standard_normal(shape).astype(dtype)
            else:
                inputs[name] = np.zeros(shape, dtype)
        return inputs

    def free(self) -> None:
        for buffer in self.buffers.values():
            buffer.free()
