"""Bake a precision plan into an exported graph (onnx-graphsurgeon): Q/DQ, INT4 block DQ, FP16.

Per plan layer, at its weight node (MatMul / Gemm / Conv), as the plan's formats define them
(:mod:`mixqsam2.quant.formats`, the same arithmetic as the fake quantization the plan was
calibrated and evaluated with):

- ``int8``: the weight becomes an INT8 initializer with one fp32 scale per output channel
  (symmetric, [-127, 127]) behind a ``DequantizeLinear``; the input activation goes through
  ``QuantizeLinear`` -> ``DequantizeLinear`` with the plan's ``act_amax / 127`` (per tensor,
  zero-point 0). TensorRT fuses the pairs into an INT8 kernel.
- ``int4`` (MatMul/Gemm only): weight-only; an INT4 initializer (packed two per byte) with one
  fp16 scale per ``block_size`` input elements behind ``DequantizeLinear(block_size=...)``
  (opset 21); the layer computes in fp16 (``Cast`` in and out), as TensorRT's weight-only INT4.
- ``fp16``: fp16 weight (and bias) initializers, the layer computes in fp16 between ``Cast`` nodes.

Everything that is not a plan layer stays fp32: LayerNorm, Softmax, the RoPE rotation, the
attention products between activations and the positional encodings. LayerNorm and Softmax
reduce over hundreds of channels/keys (fp16 sums and exp lose the small terms), and RoPE's
products with cos/sin of large angles lose fp16's 11 bits: these are the parts SAM2 ports
report drifting in fp16, and they hold no weights, so keeping them fp32 costs no model size.

>>> import numpy as np
>>> weight_int8(np.array([[1.0, -0.5], [0.2, 0.1]], np.float32), axis=0)[0].tolist()
[[127, -64], [127, 64]]
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, numpy_helper

INT8_MAX, INT4_MAX = 127, 7
SCALE_FLOOR = 1e-12  # as the fake quantization clamps amax


def weight_int8(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel INT8 of ``weight`` along ``axis`` -> (int8 values, fp32 scales)."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    scale = np.maximum(np.abs(weight).max(axis=others), SCALE_FLOOR) / INT8_MAX
    shaped = scale.reshape([-1 if i == axis else 1 for i in range(weight.ndim)])
    return np.clip(np.round(weight / shaped), -INT8_MAX, INT8_MAX).astype(np.int8), scale.astype(np.float32)


def weight_int4_blocks(weight: np.ndarray, axis: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric INT4 of a 2-D ``weight`` in blocks of ``block_size`` along ``axis`` (the input
    dimension) -> (values in [-7, 7] as int8, fp16 scales shaped as ``DequantizeLinear`` wants)."""
    moved = np.moveaxis(weight, axis, 0)  # [in, out]
    blocks = moved.reshape(moved.shape[0] // block_size, block_size, moved.shape[1])
    scale = (np.maximum(np.abs(blocks).max(axis=1), SCALE_FLOOR) / INT4_MAX).astype(np.float16)
    values = np.clip(np.round(blocks / scale[:, None, :].astype(np.float32)), -INT4_MAX, INT4_MAX)
    values = np.moveaxis(values.reshape(moved.shape), 0, axis).astype(np.int8)
    return values, np.moveaxis(scale, 0, axis)


def apply_precision(model: onnx.ModelProto, layers: dict[str, dict], nodes: dict[str, str]) -> onnx.ModelProto:
    """``model`` with each layer of ``layers`` (plan entries) rewritten at ``nodes[layer]`` (node name)."""
    gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # it warns that numpy has no bfloat16 (sam2's memory storage Cast)
    graph = gs.import_onnx(model)
    by_name = {node.name: node for node in graph.nodes}
    for layer, entry in layers.items():
        if layer not in nodes or entry["format"] == "fp32":  # fp32: the graph as exported
            continue
        node = by_name[nodes[layer]]
        rewrite = {"int8": _int8, "int4": _int4, "fp16": _fp16}.get(entry["format"])
        if rewrite is None:
            raise ValueError(f"layer {layer}: format {entry['format']!r} is not deployable")
        _read_weight_directly(node)
        rewrite(graph, node, entry)
    graph.cleanup().toposort()
    return gs.export_onnx(graph)


def _read_weight_directly(node: gs.Node) -> None:
    """Equal weights and biases (cloned layers) share one initializer, the repeats read through
    Identity: give the node the constants themselves, so that each layer gets its own copy."""
    for index, tensor in enumerate(node.inputs[1:], start=1):
        if not isinstance(tensor, gs.Constant) and tensor.inputs and tensor.inputs[0].op == "Identity":
            source = tensor.inputs[0].inputs[0]
            if isinstance(source, gs.Constant):
                node.inputs[index] = source


def _scope(node: gs.Node) -> str:
    """The layer path of a weight node (``/a/b/MatMul`` -> ``/a/b``): the nodes added for it go there."""
    return node.name.rsplit("/", 1)[0]


def _weight_axis(node: gs.Node) -> tuple[int, int]:
    """(output-channel axis, input axis) of the node's constant weight."""
    if node.op == "MatMul":
        return 1, 0
    if node.op == "Gemm" and not node.attrs.get("transB", 0):
        return 1, 0
    return 0, 1  # Gemm with transB, Conv [out, in, kh, kw]


def _int8(graph: gs.Graph, node: gs.Node, entry: dict) -> None:
    weight = node.inputs[1].values.astype(np.float32)
    out_axis, _ = _weight_axis(node)
    values, scale = weight_int8(weight, out_axis)
    node.inputs[1] = _dequantize(graph, _scope(node) + "/weight", gs.Constant(_scope(node) + "/weight_int8", values),
                                 scale, {"axis": out_axis})
    amax = float(entry["act_amax"])
    act_scale = gs.Constant(_scope(node) + "/input_scale", np.array(max(amax, SCALE_FLOOR) / INT8_MAX, np.float32))
    zero = gs.Constant(_scope(node) + "/input_zero_point", np.array(0, np.int8))
    quantized = gs.Variable(_scope(node) + "/input_int8", dtype=np.int8)
    graph.nodes.append(gs.Node("QuantizeLinear", _scope(node) + "/input_quantize",
                               inputs=[node.inputs[0], act_scale, zero], outputs=[quantized]))
    restored = gs.Variable(_scope(node) + "/input_dequantized", dtype=np.float32)
    graph.nodes.append(gs.Node("DequantizeLinear", _scope(node) + "/input_dequantize",
                               inputs=[quantized, act_scale, zero], outputs=[restored]))
    node.inputs[0] = restored


def _int4(graph: gs.Graph, node: gs.Node, entry: dict) -> None:
    if node.op not in ("MatMul", "Gemm"):
        raise ValueError(f"{_scope(node)}: int4 is weight-only on MatMul/Gemm, not {node.op}")
    weight = node.inputs[1].values.astype(np.float32)
    _, in_axis = _weight_axis(node)
    values, scale = weight_int4_blocks(weight, in_axis, int(entry["block_size"]))
    packed = numpy_helper.from_array(values.astype(ml_dtypes.int4), _scope(node) + "/weight_int4")  # 2 per byte
    constant = gs.Constant(packed.name, gs.ir.tensor.LazyValues(packed))
    node.inputs[1] = _dequantize(graph, _scope(node) + "/weight", constant, scale,
                                 {"axis": in_axis, "block_size": int(entry["block_size"])}, dtype=np.float16)
    _compute_in_fp16(graph, node, convert_weight=False)


def _fp16(graph: gs.Graph, node: gs.Node, entry: dict) -> None:
    _compute_in_fp16(graph, node, convert_weight=True)


def _dequantize(graph, name, values: gs.Constant, scale: np.ndarray, attrs: dict, dtype=np.float32) -> gs.Variable:
    output = gs.Variable(name + "_dequantized", dtype=dtype)
    graph.nodes.append(gs.Node("DequantizeLinear", name + "_dequantize",
                               inputs=[values, gs.Constant(name + "_scale", scale)], outputs=[output], attrs=attrs))
    return output


def _compute_in_fp16(graph: gs.Graph, node: gs.Node, convert_weight: bool) -> None:
    """Cast the node's activation input to fp16 and its output back to fp32; constants to fp16."""
    for index, tensor in enumerate(node.inputs):
        if isinstance(tensor, gs.Constant) and (index != 1 or convert_weight):
            node.inputs[index] = gs.Constant(tensor.name + "_fp16", tensor.values.astype(np.float16))
    half_input = gs.Variable(_scope(node) + "/input_fp16", dtype=np.float16)
    graph.nodes.append(gs.Node("Cast", _scope(node) + "/cast_input", inputs=[node.inputs[0]], outputs=[half_input],
                               attrs={"to": TensorProto.FLOAT16}))
    node.inputs[0] = half_input
    output = node.outputs[0]
    half_output = gs.Variable(_scope(node) + "/output_fp16", dtype=np.float16)
    node.outputs[0] = half_output
    graph.nodes.append(gs.Node("Cast", _scope(node) + "/cast_output", inputs=[half_output], outputs=[output],
                               attrs={"to": TensorProto.FLOAT}))
