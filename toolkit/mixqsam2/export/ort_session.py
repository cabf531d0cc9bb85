"""ONNX Runtime sessions for exported graphs (torch-free; the Jetson runtime uses it too).

Two ways to run a graph that holds quantized layers:

- ``exact`` (the default; what parity checks use): ``ORT_ENABLE_BASIC``, so the graph runs as
  written: ``DequantizeLinear`` to float, then the float MatMul/Conv. That is the arithmetic
  the plan was calibrated with and that TensorRT's INT8 / weight-only INT4 kernels reproduce.
- ``fast``: ``ORT_ENABLE_ALL``, ONNX Runtime's own integer kernels. They are not the same
  arithmetic: ``DequantizeLinear(int4) + MatMul`` becomes ``MatMulNBits``, which also quantizes
  the activations (measured: 0.6 % relative L2 on a toy layer), and the INT8 Q/DQ fusions moved
  pico's masks by 1.5 % mean IoU against ``exact`` on generated images.

Graphs without quantized layers always get ``ORT_ENABLE_ALL``. ``MatMulAddFusion`` is always
off: on a graph with INT8 Q/DQ around a 3-D MatMul it makes Reshape + Gemm, and a later Q/DQ
pass then builds a ``QuantizeLinear`` that ONNX Runtime 1.32 itself refuses ("output_dtype
INT8 does not match y_zero_point type UINT8"; seen on pico's image encoder). On the CPU, ONNX
Runtime runs fp16 layers with fp32 arithmetic on fp16-rounded weights (it drops the
fp32->fp16->fp32 cast pair); TensorRT runs them in fp16.

>>> import onnxruntime as ort
>>> session_options(exact=True).graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
True
"""

from __future__ import annotations

import os

DISABLED_OPTIMIZERS = ["MatMulAddFusion"]


def session_options(exact: bool = False, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's shape-merge notes on the Hiera graph are not errors
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_BASIC if exact else level.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def ort_session(model: str | os.PathLike | bytes, exact: bool = False, threads: int | None = None):
    """A CPU ``InferenceSession`` for ``model`` (a file or serialized bytes)."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(exact, threads), providers=["CPUExecutionProvider"],
                                disabled_optimizers=DISABLED_OPTIMIZERS)
