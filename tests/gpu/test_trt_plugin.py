"""The SISSynthesize plugin inside TensorRT engines against the NumPy spec, every rule, several objects
per update: the plugin engines of pico's real export (fp32 banks of pico's shapes), and small banks
in fp32 and fp16, which no pico export has (their graphs are the export's own ``plugin_graph`` around
hand-declared I/O). Skipped without TensorRT, a GPU or the plugin library."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixqsam2.export.manifest import read_manifest
from mixqsam2.memory.synthesis import RULES, MemoryArrays, empty_bank, entry, sis_update
from mixqsam2.models.graph_config import BANK_FIELDS, GRAPH_IO

onnx = pytest.importorskip("onnx", reason="onnx is needed to write the test graphs")

OBJECTS, FRAMES = 3, 25
SMALL = {"capacity": 5, "tokens": 8, "channels": 4, "pointer": 6}


def _small_io(dtype: str) -> list:
    """The sis_update inputs (GRAPH_IO order) for SMALL banks of ``dtype``; outputs are the bank's."""
    from onnx import TensorProto, helper

    data, f32, n = helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), TensorProto.FLOAT, "num_objects"
    k, hw, c, p = SMALL.values()
    types = {"bank_features": (data, [n, k, hw, c]), "bank_pointers": (data, [n, k, p]),
             "bank_positions": (f32, [n, k]), "bank_scores": (f32, [n, k]), "bank_counts": (f32, [n, k]),
             "bank_valid": (TensorProto.BOOL, [n, k]), "new_features": (data, [n, hw, c]),
             "new_pointer": (data, [n, p]), "new_position": (f32, [n]), "new_score": (f32, [n])}
    return [helper.make_tensor_value_info(name, *types[name]) for name in GRAPH_IO["sis_update"][0]]


def _small_export(folder, dtype: str):
    """An export folder holding only the plugin graphs, for SMALL banks of ``dtype``."""
    from onnx import helper

    from mixqsam2.export.manifest import SCHEMA, file_sha256, tensor_info
    from mixqsam2.export.sis_plugin import plugin_graph

    inputs = _small_io(dtype)
    outputs = [helper.make_tensor_value_info(f"{i.name}_out", i.type.tensor_type.elem_type,
                                             [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
               for i in inputs[:len(BANK_FIELDS)]]
    io_only = helper.make_model(helper.make_graph([], "sis_update", inputs, outputs),
                                opset_imports=[helper.make_operatorsetid("", 21)])
    folder.mkdir()
    graphs = {}
    for policy, rule in RULES.items():
        name = f"sis_update_plugin.{policy}"
        onnx.save(plugin_graph(rule, io_only), folder / f"{name}.onnx")
        graphs[name] = {"file": f"{name}.onnx", "sha256": file_sha256(folder / f"{name}.onnx"), "role": "sis_update",
                        "policy": policy, "runs_on": ["trt"], "inputs": [tensor_info(i) for i in inputs],
                        "outputs": [tensor_info(o) for o in outputs]}
    (folder / "manifest.json").write_text(json.dumps({
        "schema": SCHEMA, "opset": 21, "bank_capacity": SMALL["capacity"], "model": {"name": "test"}, "plan": None,
        "dynamic_dims": {"num_objects": {"min": 1, "opt": OBJECTS, "max": 8}}, "graphs": graphs, "layers": {}}))
    return folder


@pytest.fixture(scope="module", params=["pico-float32", "small-float32", "small-float16"])
def engines(request, tensorrt, sis_plugin, tmp_path_factory):
    """A TensorRTRunner over plugin engines, and the engine folder."""
    from mixqsam2.export.manifest import ExportManifest
    from mixqsam2.trt.build import build_engines, installed_version
    from mixqsam2.trt.config import plan_engines
    from mixqsam2.trt.runtime import TensorRTRunner

    if request.param == "pico-float32":
        folder = request.getfixturevalue("pico_engines_fp32")
    else:
        root = tmp_path_factory.mktemp(request.param)
        manifest = ExportManifest.load(_small_export(root / "export", request.param.split("-")[1]))
        folder = root / "engines"
        build_engines(plan_engines(manifest, installed_version()), manifest, folder, plugin_library=sis_plugin)
    with TensorRTRunner(folder) as runner:
        yield runner, folder


def _bank_layout(folder) -> tuple[dict[str, int], np.dtype]:
    """Capacity, tokens, channels, pointer size and the data dtype of the banks of an engine folder."""
    graph = read_manifest(folder, with_graphs=False)["graphs"]["sis_update_plugin.sis"]
    inputs = {t["name"]: t for t in graph["inputs"]}
    _, capacity, tokens, channels = inputs["bank_features"]["shape"]
    pointer = inputs["bank_pointers"]["shape"][2]
    sizes = {"capacity": capacity, "tokens": tokens, "channels": channels, "pointer": pointer}
    return sizes, np.dtype(inputs["bank_features"]["dtype"])


def _stack(banks: list[MemoryArrays]) -> dict[str, np.ndarray]:
    return {f"bank_{field}": np.stack([getattr(b, field) for b in banks]) for field in BANK_FIELDS}


@pytest.mark.parametrize("policy", list(RULES))
def test_plugin_engine_banks_equal_numpy_banks_after_every_update(engines, policy):
    runner, folder = engines
    sizes, dtype = _bank_layout(folder)
    atol = 1e-4 if dtype == np.float32 else 2e-3
    rng = np.random.default_rng(5)
    references = [empty_bank(sizes["capacity"], sizes["tokens"], sizes["channels"], sizes["pointer"], dtype=dtype)
                  for _ in range(OBJECTS)]
    bases = rng.normal(size=(OBJECTS, sizes["tokens"], sizes["channels"]))
    bank, full_updates = _stack(references), 0
    for t in range(FRAMES):
        features = (bases + rng.normal(scale=rng.uniform(0.2, 2.0), size=bases.shape)).astype(dtype)
        pointers = rng.normal(size=(OBJECTS, sizes["pointer"])).astype(dtype)
        scores = rng.normal(scale=3, size=OBJECTS).astype(np.float32)
        new = {"new_features": features, "new_pointer": pointers, "new_position": np.full(OBJECTS, t, np.float32),
               "new_score": scores}
        got = runner.run(f"sis_update_plugin.{policy}", {**bank, **new})
        bank = {name[: -len("_out")]: value for name, value in got.items()}
        full_updates += all(r.valid.all() for r in references)
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
    assert full_updates >= FRAMES // 3 and all(r.positions.max() == FRAMES - 1 for r in references)  # merges ran
