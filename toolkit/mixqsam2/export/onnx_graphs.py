"""Trace the per-frame graphs of :mod:`mixqsam2.models.graphs` to ONNX (opset 21).

Each graph is exported with PyTorch's TorchScript exporter (opset 20, its newest) and
converted to opset 21, the first with block-quantized ``DequantizeLinear`` (INT4 weights).
Per-object graphs get a dynamic leading dimension ``num_objects``; the mask decoder's prompt
points are ``num_points``. :func:`layer_nodes` finds each precision-plan layer's weight node.

>>> import numpy as np, onnx
>>> from onnx import helper, numpy_helper
>>> w = np.arange(6, dtype=np.float32).reshape(3, 2)  # a Linear's weight [out, in]
>>> node = helper.make_node("MatMul", ["x", "w_t"], ["y"], name="/MatMul_3")
>>> graph = helper.make_graph([node], "g", [], [], [numpy_helper.from_array(w.T.copy(), "w_t")])
>>> layer_nodes(helper.make_model(graph), {"decoder.proj": w})["decoder.proj"].name
'/decoder/proj/MatMul'
"""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
import onnx
import torch
from onnx import numpy_helper, version_converter

from mixqsam2.models.graph_config import GRAPH_IO, GraphConfig

OPSET = 21
TRACE_OPSET = 20  # the TorchScript exporter's newest
WEIGHT_OPS = ("MatMul", "Gemm", "Conv")


def example_inputs(role: str, config: GraphConfig, capacity: int, objects: int = 2) -> dict[str, np.ndarray]:
    """Inputs of the right shapes and dtypes for tracing (and for checking) a graph."""
    rng = np.random.default_rng(0)
    n, s, c, cm = objects, config.image_size, config.hidden_dim, config.mem_dim
    h, w = config.feature_size
    hw, p = h * w, config.pointer_slots(capacity)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    flags = lambda *shape: rng.random(shape) < 0.7  # noqa: E731
    image = {"image_embed": f32(1, c, h, w), "high_res_feat0": f32(1, c // 8, 4 * h, 4 * w),
             "high_res_feat1": f32(1, c // 4, 2 * h, 2 * w)}
    bank = {"bank_features": f32(n, capacity, hw, cm), "bank_pointers": f32(n, capacity, c),
            "bank_positions": rng.permutation(capacity * n).reshape(n, capacity).astype(np.float32),
            "bank_scores": f32(n, capacity), "bank_counts": np.ones((n, capacity), np.float32),
            "bank_valid": np.ones((n, capacity), bool)}
    inputs = {
        "image_encoder": {"image": f32(1, 3, s, s)},
        "memory_attention": {
            "image_embed": image["image_embed"], "cond_features": f32(n, 1, hw, cm),
            "bank_features": bank["bank_features"], "bank_valid": flags(n, capacity),
            "bank_slot": rng.integers(0, config.num_maskmem - 1, (n, capacity)), "pointers": f32(n, p, c),
            "pointer_valid": flags(n, p), "pointer_tpos": rng.random((n, p)).astype(np.float32),
        },
        "mask_decoder": {
            **image, "image_embed": f32(n, c, h, w), "point_coords": rng.uniform(0, s, (n, 2, 2)).astype(np.float32),
            "point_labels": np.array([[2, 3]] * n, np.int32), "mask_input": np.zeros((n, 1, s, s), np.float32),
            "mask_input_valid": np.zeros(n, bool),
        },
        "memory_encoder": {
            "image_embed": image["image_embed"], "mask_logits": f32(n, 1, 4 * h, 4 * w),
            "object_score": f32(n, 1), "mask_from_prompt": np.array([True] + [False] * (n - 1)),
        },
        "sis_update": {**bank, "new_features": f32(n, hw, cm), "new_pointer": f32(n, c),
                       "new_position": np.full(n, capacity * n, np.float32), "new_score": f32(n)},
    }
    return inputs[role]


def dynamic_axes(role: str) -> dict[str, dict[int, str]]:
    """``num_objects`` on every per-object tensor; ``num_points`` on the decoder's prompt points."""
    inputs, outputs = GRAPH_IO[role]
    if role == "image_encoder":
        return {}
    shared = {"image_embed", "high_res_feat0", "high_res_feat1"} if role != "mask_decoder" else {"high_res_feat0", "high_res_feat1"}
    axes = {name: {0: "num_objects"} for name in (*inputs, *outputs) if name not in shared}
    if role == "mask_decoder":
        axes["point_coords"] = {0: "num_objects", 1: "num_points"}
        axes["point_labels"] = {0: "num_objects", 1: "num_points"}
    return axes


def export_graph(module: torch.nn.Module, role: str, inputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Trace ``module`` with ``inputs`` into an opset-21 ONNX model (in memory)."""
    in_names, out_names = GRAPH_IO[role]
    args = tuple(torch.from_numpy(inputs[name]) for name in in_names)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python scalars: shapes are static by design
        torch.onnx.export(
            module, args, buffer, input_names=list(in_names), output_names=list(out_names),
            dynamic_axes=dynamic_axes(role), opset_version=TRACE_OPSET, do_constant_folding=True, dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    return version_converter.convert_version(model, OPSET)


def layer_nodes(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> dict[str, onnx.NodeProto]:
    """The weight node (MatMul/Gemm/Conv with a constant weight) of each layer found in ``model``.

    ``weights``: layer name -> its PyTorch weight, in network order. The tracer names nodes
    after the module that was *called* (a graph calling ``layer.q_proj`` directly gets
    ``/q_proj/MatMul``), so layers are found by their weight values instead (the exported
    initializer is the weight, or its transpose for a MatMul). Layers with equal weights (the
    cloned layers of an untrained model) are assigned in network order, which is the order
    the tracer emits their nodes in. Each node found is renamed ``/<layer path>/<op>``, so
    that TensorRT layer names and the manifest read as the plan does.
    """
    by_value: dict[bytes, list[str]] = {}
    for name, weight in weights.items():
        weight = np.ascontiguousarray(weight, np.float32)
        by_value.setdefault(_digest(weight), []).append(name)
        if weight.ndim == 2:
            by_value.setdefault(_digest(np.ascontiguousarray(weight.T)), []).append(name)
    initializers = {init.name: init for init in model.graph.initializer}
    # the exporter shares equal initializers and reads the repeats through Identity nodes
    initializers.update({node.output[0]: initializers[node.input[0]] for node in model.graph.node
                         if node.op_type == "Identity" and node.input[0] in initializers})
    found: dict[str, onnx.NodeProto] = {}
    for node in model.graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        digest = _digest(numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32))
        layer = next((name for name in by_value.get(digest, ()) if name not in found), None)
        if layer is not None:
            node.name = "/" + layer.replace(".", "/") + "/" + node.op_type
            found[layer] = node
    return found


def _digest(array: np.ndarray) -> bytes:
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).digest()
