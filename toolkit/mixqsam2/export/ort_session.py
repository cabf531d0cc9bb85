"""ONNX Runtime sessions for exported graphs (torch-free; the Jetson runtime uses it too).

Optimization level: ``ORT_ENABLE_ALL``, except for graphs holding INT4 weights, which get
``ORT_ENABLE_BASIC``. ORT's extended optimizations fuse ``DequantizeLinear(int4) + MatMul``
into ``MatMulNBits``, which also quantizes the *activations* (measured: 0.6 % relative L2 on
a toy layer): that is not the weight-only INT4 the plan was calibrated for nor what TensorRT
runs. With basic optimizations the graph is executed as written (exact). Quantized parity
checks therefore compare like with like; the price is that ORT's INT4 path on CPU is not
its fastest kernel (BENCHMARKS.md has both).

>>> import onnxruntime as ort
>>> session_options(has_int4=True).graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
True
"""

from __future__ import annotations

import os


def session_options(has_int4: bool = False, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's shape-merge notes on the Hiera graph are not errors
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_BASIC if has_int4 else level.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def ort_session(model: str | os.PathLike | bytes, has_int4: bool = False, threads: int | None = None):
    """A CPU ``InferenceSession`` for ``model`` (a file or serialized bytes)."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(has_int4, threads), providers=["CPUExecutionProvider"])
