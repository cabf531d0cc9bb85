"""ONNX Runtime sessions for exported graphs (torch-free; the Jetson runtime uses it too).

Two ways to run a graph that holds quantized layers:

- ``exact`` (the default; what parity checks use): ``ORT_ENABLE_BASIC``, so the graph runs as
  written: ``DequantizeLinear`` to float, then the float MatMul/Conv. That is the arithmetic
  the plan was calibrated with and that TensorRT's INT8 / weight-only INT4 kernels reproduce.
- ``fast``: ``ORT_ENABLE_ALL``, ONNX Runtime's own integer kernels. They are not the same
  arithmetic: ``DequantizeLinear(int4) + MatMul`` becomes ``MatMulNBits``, which also quantizes
  the activations (measured: 0.6 % relative L2 on a toy layer), and the INT8 Q/DQ fusions moved
  pico's masks by 1.5 % mean IoU against ``exact`` on generated images.

``fast`` also computes memory attention's attention products (the MatMul into a Softmax and
the one out of it) on uint8 operands quantized per call and per tensor, the probabilities
per row (``DynamicQuantizeLinear`` + ``MatMulInteger``, which ONNX Runtime fuses into
``DynamicQuantizeMatMul``: integer GEMMs): :func:`int8_attention_products`. They are
activation x activation, so no plan layer covers them, and over a bank of 1024 px memories
they are most of memory attention's time.

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
from collections import defaultdict

import numpy as np

DISABLED_OPTIMIZERS = ["MatMulAddFusion"]
MAX_INT8_KEYS = 2**31 // 255**2  # longest row an int32 sum of uint8 x uint8 products holds exactly


def session_options(exact: bool = False, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT's shape-merge notes on the Hiera graph are not errors
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_BASIC if exact else level.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def ort_session(model: str | os.PathLike | bytes, exact: bool = False, threads: int | None = None,
                int8_attention: bool = False):
    """A CPU ``InferenceSession`` for ``model`` (a file or serialized bytes); ``int8_attention``:
    with :func:`int8_attention_products` applied first."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    if int8_attention:
        import onnx

        graph = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(source)
        int8_attention_products(graph)
        source = graph.SerializeToString()
    return ort.InferenceSession(source, session_options(exact, threads), providers=["CPUExecutionProvider"],
                                disabled_optimizers=DISABLED_OPTIMIZERS)


def _last_axis_softmax(node) -> bool:
    axis = next((attr.i for attr in node.attribute if attr.name == "axis"), -1)  # opset 13+: default -1
    return node.op_type == "Softmax" and axis == -1


def attention_products(graph) -> list:
    """The graph's attention MatMuls: both operands computed (no weight), and the product flows
    into a last-axis Softmax (directly or through the Add of a mask) or comes out of one."""
    initializers = {t.name for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def into_softmax(name: str, hops: int = 2) -> bool:
        return any(_last_axis_softmax(c) or (c.op_type == "Add" and hops > 1 and into_softmax(c.output[0], hops - 1))
                   for c in consumers[name])

    def out_of_softmax(node) -> bool:
        return node.input[0] in producer and _last_axis_softmax(producer[node.input[0]])

    return [node for node in graph.node
            if node.op_type == "MatMul" and not set(node.input) & initializers
            and (into_softmax(node.output[0]) or out_of_softmax(node))]


def int8_attention_products(model) -> int:
    """Rewrite ``model``'s attention products (an ``onnx.ModelProto``, in place) as uint8
    products of per-call, per-tensor quantized operands; returns how many.

    The probabilities of a Softmax x V product are first divided by their row's maximum (and
    the product multiplied back): over a whole memory bank most probabilities are far below
    the largest of the tensor, and one scale for all rows would round them to zero (pico,
    tracked masks against exact: 0.959 mean IoU without the row scale, 0.977 with it). The
    row maximum of a last-axis Softmax is at least 1 / (row length), never 0. ``MatMulInteger``
    sums in int32: exact for rows up to 2**31 / 255**2 = 33,025 keys (:data:`MAX_INT8_KEYS`).

    >>> import numpy as np, onnx
    >>> from onnx import TensorProto, helper
    >>> nodes = [helper.make_node("MatMul", ["q", "k"], ["s"]), helper.make_node("Softmax", ["s"], ["p"]),
    ...          helper.make_node("MatMul", ["p", "v"], ["o"])]
    >>> io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in "qkvo"]
    >>> model = helper.make_model(helper.make_graph(nodes, "attention", io[:3], io[3:]))
    >>> int8_attention_products(model), sorted({n.op_type for n in model.graph.node})
    (2, ['Cast', 'Div', 'DynamicQuantizeLinear', 'MatMulInteger', 'Mul', 'ReduceMax', 'Softmax'])
    """
    from onnx import numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 18:
        raise ValueError(f"int8 attention products need opset 18+ (ReduceMax with axes as an input), not {opset}")
    targets = {id(node) for node in attention_products(model.graph)}
    probabilities = {node.output[0] for node in model.graph.node if _last_axis_softmax(node)}
    nodes = []
    for index, node in enumerate(model.graph.node):
        if id(node) not in targets:
            nodes.append(node)
            continue
        tag = f"int8_attention_{index}"  # node names need not be unique; this is
        if node.input[0] in probabilities:
            nodes += _row_scaled_product(node, tag)
            model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), f"{tag}/last_axis"))
        else:
            nodes += _uint8_product(*node.input, node.output[0], tag)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return len(targets)


def _uint8_product(a: str, b: str, out: str, tag: str) -> list:
    """Nodes computing ``out = a @ b`` from per-tensor uint8 quantizations of ``a`` and ``b``."""
    from onnx import TensorProto, helper

    quantized = [[f"{tag}/{x}_{part}" for part in ("u8", "scale", "zero")] for x in ("a", "b")]
    return [
        helper.make_node("DynamicQuantizeLinear", [a], quantized[0], name=f"{tag}/quantize_a"),
        helper.make_node("DynamicQuantizeLinear", [b], quantized[1], name=f"{tag}/quantize_b"),
        helper.make_node("MatMulInteger", [quantized[0][0], quantized[1][0], quantized[0][2], quantized[1][2]],
                         [f"{tag}/int32"], name=f"{tag}/matmul_integer"),
        helper.make_node("Cast", [f"{tag}/int32"], [f"{tag}/float"], name=f"{tag}/cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [quantized[0][1], quantized[1][1]], [f"{tag}/scale"], name=f"{tag}/scale"),
        helper.make_node("Mul", [f"{tag}/float", f"{tag}/scale"], [out], name=f"{tag}/rescale"),
    ]


def _row_scaled_product(matmul, tag: str) -> list:
    """``p @ v`` with ``p`` divided by its row maxima before quantization, multiplied back after."""
    from onnx import helper

    (p, v), (out,) = matmul.input, matmul.output
    row_max, scaled, product = f"{tag}/row_max", f"{tag}/p_scaled", f"{tag}/pv_scaled"
    return [
        helper.make_node("ReduceMax", [p, f"{tag}/last_axis"], [row_max], name=f"{tag}/row_max", keepdims=1),
        helper.make_node("Div", [p, row_max], [scaled], name=f"{tag}/row_scale"),
        *_uint8_product(scaled, v, product, tag),
        helper.make_node("Mul", [product, row_max], [out], name=f"{tag}/row_rescale"),
    ]
