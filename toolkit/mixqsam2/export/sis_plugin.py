"""The bank update as one ``SISSynthesize`` node: the graph TensorRT builds with the SIS plugin.

Same inputs and outputs as the standard-op ``sis_update`` graph (``GRAPH_IO["sis_update"]``).
TensorRT plugin tensors cannot be bool, so ``bank_valid`` reaches the node as int32 (0/1)
through a ``Cast`` and leaves it through another (an aliased plugin output keeps its input's
type). The node carries what TensorRT's ONNX parser needs to find the plugin (op type = plugin name,
``plugin_version``, ``plugin_namespace``) and the rule as plugin fields (``kind``: the kernels'
code of the rule's kind; ``top_k``, ``temperature``). ``plugins/sis`` implements it; ONNX Runtime
cannot run it.

>>> PLUGIN_NAME, RULE_KINDS["topk-to-newest"], RULE_KINDS["drop-oldest"]
('SISSynthesize', 0, 2)
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from mixqsam2.memory.sis_cuda import RULE_KINDS
from mixqsam2.memory.synthesis import SynthesisRule
from mixqsam2.models.graph_config import GRAPH_IO

PLUGIN_NAME = "SISSynthesize"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "mixqsam2"
PLUGIN_DOMAIN = "mixqsam2"


def plugin_graph(rule: SynthesisRule, standard: onnx.ModelProto) -> onnx.ModelProto:
    """A one-node model with the I/O (names, types, shapes) of the standard-op ``standard`` graph."""
    inputs, outputs = (list(names) for names in GRAPH_IO["sis_update"])
    valid_in, valid_out = inputs.index("bank_valid"), outputs.index("bank_valid_out")
    cast_in = helper.make_node("Cast", ["bank_valid"], ["bank_valid_int32"], name="bank_valid_to_int32", to=TensorProto.INT32)
    cast_out = helper.make_node("Cast", ["bank_valid_out_int32"], ["bank_valid_out"], name="bank_valid_to_bool",
                                to=TensorProto.BOOL)
    inputs[valid_in], outputs[valid_out] = "bank_valid_int32", "bank_valid_out_int32"
    node = helper.make_node(
        PLUGIN_NAME, inputs, outputs, name=f"sis_update_{rule.name}", domain=PLUGIN_DOMAIN,
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE,
        kind=RULE_KINDS[rule.kind], top_k=int(rule.top_k), temperature=float(rule.temperature),
    )
    graph = helper.make_graph([cast_in, node, cast_out], f"sis_update_plugin_{rule.name}",
                              list(standard.graph.input), list(standard.graph.output))
    opsets = [helper.make_operatorsetid("", standard.opset_import[0].version),
              helper.make_operatorsetid(PLUGIN_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="mixqsam2")
