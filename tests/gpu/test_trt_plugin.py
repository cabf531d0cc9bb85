"""The SISSynthesize plugin inside TensorRT engines against the NumPy spec (every rule, fp32 and fp16,
several objects per update): an ONNX graph with the custom node, built by mixqsam2.trt, run by
TensorRTRunner. Skipped without TensorRT, a GPU or the plugin library."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixqsam2.memory.sis_cuda import RULE_KINDS
from mixqsam2.memory.synthesis import RULES, MemoryArrays, empty_bank, entry, sis_update

onnx = pytest.importorskip("onnx", reason="onnx is needed to write the test graph")

OBJECTS, CAPACITY, TOKENS, CHANNELS, POINTER = 3, 5, 8, 4, 6
BANK = ("features", "pointers", "positions", "scores", "counts", "valid")
NEW = ("features", "pointer", "position", "score")


def _io(dtype: str):
    """(name, ONNX dtype, shape) of the inputs; outputs are the bank inputs with an _out suffix."""
    from onnx import TensorProto

    t, f32, n = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype], TensorProto.FLOAT, "num_objects"
    return [("bank_features", t, [n, CAPACITY, TOKENS, CHANNELS]), ("bank_pointers", t, [n, CAPACITY, POINTER]),
            ("bank_positions", f32, [n, CAPACITY]), ("bank_scores", f32, [n, CAPACITY]),
            ("bank_counts", f32, [n, CAPACITY]), ("bank_valid", TensorProto.BOOL, [n, CAPACITY]),
            ("new_features", t, [n, TOKENS, CHANNELS]), ("new_pointer", t, [n, POINTER]),
            ("new_position", f32, [n]), ("new_score", f32, [n])]


def _plugin_graph(policy: str, dtype: str):
    """The node as the export writes it: bank_valid cast bool -> int32 -> bool around it."""
    from onnx import TensorProto, helper

    io = _io(dtype)
    rule = RULES[policy]
    names = [name for name, _, _ in io]
    node_inputs = names[:5] + ["valid_int32"] + names[6:]
    node_outputs = [f"{name}_out" for name in names[:5]] + ["valid_out_int32"]
    nodes = [helper.make_node("Cast", ["bank_valid"], ["valid_int32"], to=TensorProto.INT32),
             helper.make_node("SISSynthesize", node_inputs, node_outputs, name="sis_update", domain="mixqsam2",
                              plugin_version="1", plugin_namespace="mixqsam2", kind=RULE_KINDS[rule.kind],
                              top_k=rule.top_k, temperature=rule.temperature),
             helper.make_node("Cast", ["valid_out_int32"], ["bank_valid_out"], to=TensorProto.BOOL)]
    graph = helper.make_graph(nodes, f"sis_update_plugin.{policy}",
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in io],
                              [helper.make_tensor_value_info(f"{n}_out", t, s) for n, t, s in io[:6]])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("mixqsam2", 1)])


def _export(folder, dtype):
    from mixqsam2.export.manifest import SCHEMA, file_sha256

    folder.mkdir()
    graphs = {}
    for policy in RULES:
        name = f"sis_update_plugin.{policy}"
        onnx.save(_plugin_graph(policy, dtype), folder / f"{name}.onnx")
        tensors = [{"name": n, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t).name, "shape": s}
                   for n, t, s in _io(dtype)]
        graphs[name] = {"file": f"{name}.onnx", "sha256": file_sha256(folder / f"{name}.onnx"), "role": "sis_update",
                        "policy": policy, "runs_on": ["trt"], "inputs": tensors,
                        "outputs": [{**t, "name": f"{t['name']}_out"} for t in tensors[:6]]}
    (folder / "manifest.json").write_text(json.dumps({
        "schema": SCHEMA, "opset": 21, "bank_capacity": CAPACITY, "model": {"name": "test"}, "plan": None,
        "dynamic_dims": {"num_objects": {"min": 1, "opt": OBJECTS, "max": 8}}, "graphs": graphs, "layers": {}}))
    return folder


@pytest.fixture(scope="module", params=["float32", "float16"])
def engines(request, tensorrt, sis_plugin, tmp_path_factory):
    from mixqsam2.trt.build import build_engines, installed_version
    from mixqsam2.trt.config import plan_engines
    from mixqsam2.export.manifest import ExportManifest
    from mixqsam2.trt.runtime import TensorRTRunner

    root = tmp_path_factory.mktemp(f"plugin_{request.param}")
    manifest = ExportManifest.load(_export(root / "export", request.param))
    build_engines(plan_engines(manifest, installed_version()), manifest, root / "engines", plugin_library=sis_plugin)
    with TensorRTRunner(root / "engines") as runner:
        yield runner, request.param


def _stack(banks: list[MemoryArrays]) -> dict[str, np.ndarray]:
    return {f"bank_{field}": np.stack([getattr(b, field) for b in banks]) for field in BANK}


@pytest.mark.parametrize("policy", list(RULES))
def test_plugin_engine_banks_equal_numpy_banks_after_every_update(engines, policy):
    runner, dtype = engines
    atol = 1e-5 if dtype == "float32" else 2e-3
    rng, np_dtype = np.random.default_rng(5), np.dtype(dtype)
    references = [empty_bank(CAPACITY, TOKENS, CHANNELS, POINTER, dtype=np_dtype) for _ in range(OBJECTS)]
    bases = rng.normal(size=(OBJECTS, TOKENS, CHANNELS))
    bank = _stack(references)
    for t in range(25):
        features = (bases + rng.normal(scale=rng.uniform(0.2, 2.0), size=bases.shape)).astype(np_dtype)
        pointers = rng.normal(size=(OBJECTS, POINTER)).astype(np_dtype)
        scores = rng.normal(scale=3, size=OBJECTS).astype(np.float32)
        new = {"new_features": features, "new_pointer": pointers, "new_position": np.full(OBJECTS, t, np.float32),
               "new_score": scores}
        got = runner.run(f"sis_update_plugin.{policy}", {**bank, **new})
        bank = {name[: -len("_out")]: value for name, value in got.items()}
        references = [sis_update(references[o], entry(features[o], pointers[o], t, float(scores[o])), RULES[policy])
                      for o in range(OBJECTS)]
        expected = _stack(references)
        np.testing.assert_array_equal(bank["bank_valid"], expected["bank_valid"], err_msg=f"frame {t}")
        valid = expected["bank_valid"]
        for name in ("bank_positions", "bank_scores", "bank_counts"):
            np.testing.assert_allclose(bank[name][valid], expected[name][valid], atol=1e-4, err_msg=f"{name} {t}")
        for name in ("bank_features", "bank_pointers"):
            np.testing.assert_allclose(bank[name][valid].astype(np.float32), expected[name][valid].astype(np.float32),
                                       atol=atol, err_msg=f"{name} frame {t}")
    assert all(r.valid.all() and r.positions.max() == 24 for r in references)  # the full-bank path ran
