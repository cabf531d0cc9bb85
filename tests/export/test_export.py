"""`mixqsam2 export`: the graphs, the plan baked in as Q/DQ / INT4 / FP16, the manifest, bad input."""

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from mixqsam2.cli.main import main
from mixqsam2.export.manifest import read_manifest
from mixqsam2.export.ort_session import ort_session
from mixqsam2.memory.synthesis import RULES, MemoryArrays, empty_bank, entry, sis_update
from mixqsam2.models.graph_config import BANK_FIELDS

GRAPHS = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")


def _nodes(folder, manifest):
    """Every node of every graph of an export, with the graph it is in."""
    for name, graph in manifest["graphs"].items():
        for node in onnx.load(folder / graph["file"]).graph.node:
            yield name, node


def test_export_has_every_graph_and_a_manifest_that_describes_it(pico_onnx_fp32):
    manifest = read_manifest(pico_onnx_fp32)
    policies = set(RULES)
    assert set(manifest["graphs"]) == {*GRAPHS, *(f"sis_update.{p}" for p in policies),
                                       *(f"sis_update_plugin.{p}" for p in policies)}
    assert manifest["schema"] == "mixqsam2.export/1" and manifest["opset"] == 21 and manifest["plan"] is None
    decoder = {t["name"]: t["shape"] for t in manifest["graphs"]["mask_decoder"]["inputs"]}
    assert decoder["point_coords"] == ["num_objects", "num_points", 2]
    bank = {t["name"]: t for t in manifest["graphs"]["memory_attention"]["inputs"]}
    assert bank["bank_features"]["shape"] == ["num_objects", 6, 256, 32] and bank["bank_valid"]["dtype"] == "bool"
    for name in GRAPHS:
        assert manifest["graphs"][name]["parity_max_abs"] < (0.02 if name == "memory_encoder" else 1e-4), name
    assert len(manifest["layers"]) == 113 and {v["format"] for v in manifest["layers"].values()} == {"fp32"}
    for name, graph in manifest["graphs"].items():
        onnx.checker.check_model(str(pico_onnx_fp32 / graph["file"]), full_check=True)


def test_the_plan_is_in_the_graphs_layer_by_layer(pico_onnx_plan, pico_plan):
    folder, plan = pico_onnx_plan, json.loads(pico_plan.read_text())
    manifest = read_manifest(folder)
    formats = Counter(layer["format"] for layer in plan["layers"].values())
    assert set(formats) == {"int8", "int4", "fp16"}  # one graph set mixes all three
    assert manifest["plan"]["formats"] == dict(formats)
    by_node = {}
    for graph, node in _nodes(folder, manifest):
        by_node[(graph, node.name.rsplit("/", 1)[0])] = by_node.get((graph, node.name.rsplit("/", 1)[0]), []) + [node]
    for layer, entry_ in manifest["layers"].items():
        assert entry_["format"] == plan["layers"][layer]["format"]
        around = Counter(n.op_type for n in by_node[(entry_["graph"], entry_["node"].rsplit("/", 1)[0])])
        expected = {"int8": {"QuantizeLinear": 1, "DequantizeLinear": 2},
                    "int4": {"DequantizeLinear": 1, "Cast": 2}, "fp16": {"Cast": 2}}[entry_["format"]]
        assert {op: around[op] for op in ("QuantizeLinear", "DequantizeLinear", "Cast") if around[op]} == expected, layer
    counts = Counter()
    for _, node in _nodes(folder, manifest):
        counts[node.op_type] += 1
    assert counts["QuantizeLinear"] == formats["int8"]
    assert counts["DequantizeLinear"] == 2 * formats["int8"] + formats["int4"]


def test_int4_weights_are_packed_blocks_and_the_files_shrink_with_the_plan(pico_onnx_plan, pico_onnx_fp32, pico_plan):
    plan = json.loads(pico_plan.read_text())
    manifest = read_manifest(pico_onnx_plan)
    int4 = [i for graph in GRAPHS for i in onnx.load(pico_onnx_plan / f"{graph}.onnx").graph.initializer
            if i.data_type == TensorProto.INT4]
    assert len(int4) == Counter(layer["format"] for layer in plan["layers"].values())["int4"]
    assert all(len(i.raw_data) == (np.prod(i.dims) + 1) // 2 for i in int4)  # two weights per byte
    weight_bytes = {
        folder: sum(i.ByteSize() for graph in GRAPHS for i in onnx.load(folder / f"{graph}.onnx").graph.initializer
                    if len(i.dims) >= 2 and np.prod(i.dims) > 64 * 8)
        for folder in (pico_onnx_fp32, pico_onnx_plan)
    }
    params = sum(layer["params"] for layer in plan["layers"].values())
    planned = params * manifest["plan"]["effective_bits"] / 8
    quantized_share = weight_bytes[pico_onnx_plan] - (weight_bytes[pico_onnx_fp32] - params * 4)
    assert quantized_share == pytest.approx(planned, rel=0.15)  # int8 scales are fp32 per channel


@pytest.mark.parametrize("policy", sorted(RULES))
def test_the_onnx_bank_update_gives_the_spec_bank(pico_onnx_fp32, policy):
    """The standard-op graph in ONNX Runtime vs the NumPy spec, 3 objects, random memories."""
    manifest = read_manifest(pico_onnx_fp32)
    session = ort_session(pico_onnx_fp32 / manifest["graphs"][f"sis_update.{policy}"]["file"])
    rng = np.random.default_rng(3)
    base = rng.normal(size=(256, 32)).astype(np.float32)
    banks = [empty_bank(6, 256, 32, 64) for _ in range(3)]
    spec = list(banks)
    for t in range(20):
        news = [entry(base + rng.normal(scale=rng.uniform(0.2, 2), size=base.shape), rng.normal(size=64), t,
                      float(rng.normal(scale=3))) for _ in banks]
        feeds = {f"bank_{f}": np.stack([getattr(b, f) for b in banks]) for f in BANK_FIELDS}
        feeds.update({f"new_{f}": np.concatenate([getattr(n, f2) for n in news]) for f, f2 in
                      (("features", "features"), ("pointer", "pointers"), ("position", "positions"), ("score", "scores"))})
        out = session.run(None, feeds)
        banks = [MemoryArrays(*(o[i] for o in out)) for i in range(3)]
        spec = [sis_update(b, n, RULES[policy]) for b, n in zip(spec, news)]
    for got, expected in zip(banks, spec):
        np.testing.assert_array_equal(got.valid, expected.valid)
        for name in ("features", "pointers", "positions", "scores", "counts"):
            np.testing.assert_allclose(getattr(got, name)[got.valid], getattr(expected, name)[expected.valid], atol=1e-5)


def test_plugin_graphs_carry_the_rule_for_tensorrt(pico_onnx_fp32):
    manifest = read_manifest(pico_onnx_fp32)
    graph = onnx.load(pico_onnx_fp32 / manifest["graphs"]["sis_update_plugin.sis"]["file"]).graph
    node = next(n for n in graph.node if n.op_type == "SISSynthesize")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"plugin_version": b"1", "plugin_namespace": b"mixqsam2", "kind": 0, "top_k": 3,
                     "temperature": pytest.approx(1.0)}
    assert manifest["graphs"]["sis_update_plugin.sis"]["runs_on"] == ["trt"]


def test_a_plan_for_other_weights_is_refused_and_nothing_is_written(pico_plan, tmp_path, capsys):
    plan = json.loads(pico_plan.read_text())
    plan["model_sha256"] = "0" * 64
    other = tmp_path / "other-plan.json"
    other.write_text(json.dumps(plan))
    assert main(["export", "--model", "pico", "--plan", str(other), "--out", str(tmp_path / "out")]) == 2
    assert "calibrated on other weights" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["other-plan.json"]


def test_an_existing_folder_is_kept_and_an_unwritable_one_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--model", "pico", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and [p.name for p in out.iterdir()] == ["keep.txt"]
    blocker = tmp_path / "file"  # a path under a file: unwritable even for root
    blocker.write_text("x")
    assert main(["export", "--model", "pico", "--out", str(blocker / "out")]) == 2
    assert "cannot create output location" in capsys.readouterr().err


def test_a_folder_that_no_longer_matches_its_manifest_is_refused(pico_onnx_fp32, tmp_path):
    import shutil

    from mixqsam2.errors import UserInputError

    copy = tmp_path / "copy"
    shutil.copytree(pico_onnx_fp32, copy)
    model = onnx.load(copy / "mask_decoder.onnx")
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(model.graph.initializer[0]) * 0, model.graph.initializer[0].name))
    onnx.save(model, copy / "mask_decoder.onnx")
    with pytest.raises(UserInputError, match="mask_decoder.onnx has changed"):
        read_manifest(copy)
    (copy / "mask_decoder.onnx").unlink()
    with pytest.raises(UserInputError, match="mask_decoder.onnx is missing"):
        read_manifest(copy)


def test_damaged_constants_are_refused_when_checked_and_when_read(pico_onnx_fp32, tmp_path):
    import shutil

    from mixqsam2.errors import UserInputError
    from mixqsam2.export.manifest import host_side

    copy = tmp_path / "copy"
    shutil.copytree(pico_onnx_fp32, copy)
    manifest = read_manifest(copy)
    host_side(copy, manifest)  # intact: reads
    (copy / "constants.npz").write_bytes(b"junk")
    with pytest.raises(UserInputError, match="constants.npz has changed"):
        read_manifest(copy)
    with pytest.raises(UserInputError, match="cannot read .*constants.npz"):
        host_side(copy, manifest)


def test_exporting_leaves_the_model_in_eval_mode(pico, pico_onnx_fp32):
    """torch.onnx.export restores the traced module's mode; that must not switch pico's dropout on."""
    assert not any(module.training for module in pico.modules())


def test_layers_with_equal_weights_are_mapped_in_network_order():
    """An untrained model's cloned layers (sam2 builds memory attention with deepcopies) have
    equal weights: each still gets its own node, in the order the graph runs them."""
    from onnx import helper

    from mixqsam2.export.onnx_graphs import layer_nodes

    w = np.ones((2, 3), np.float32)
    nodes = [helper.make_node("MatMul", ["a", "w_t"], ["b"], name="/MatMul_0"),
             helper.make_node("Identity", ["w_t"], ["w_t_copy"]),  # how the exporter shares equal weights
             helper.make_node("MatMul", ["b", "w_t_copy"], ["c"], name="/MatMul_1")]
    graph = helper.make_graph(nodes, "g", [], [], [numpy_helper.from_array(w.T.copy(), "w_t")])
    found = layer_nodes(helper.make_model(graph), {"layers.0.proj": w, "layers.1.proj": w})
    assert {k: n.name for k, n in found.items()} == {"layers.0.proj": "/layers/0/proj/MatMul",
                                                     "layers.1.proj": "/layers/1/proj/MatMul"}


def test_graph_constants_are_stored_once(pico_onnx_fp32):
    """Positional encodings and RoPE tables are initializers used by every node that needs them,
    not a Constant node per use (which made hiera_t's memory attention 145 MB)."""
    model = onnx.load(pico_onnx_fp32 / "memory_attention.onnx")
    largest_constant = max((int(np.prod(n.attribute[0].t.dims)) for n in model.graph.node
                            if n.op_type == "Constant" and n.attribute[0].t.dims), default=0)
    assert largest_constant < 1024
    assert (pico_onnx_fp32 / "memory_attention.onnx").stat().st_size < 1.5e6


def test_cloned_layers_sharing_weight_and_bias_get_each_their_own_fp16_copies():
    """Two Conv layers reading one weight and one bias (the second through Identity nodes, as the
    exporter shares equal initializers), planned fp16: a valid graph with fp16 constants."""
    from onnx import TensorProto, helper

    from mixqsam2.export.precision import apply_precision

    w, b = np.ones((2, 2, 1, 1), np.float32), np.zeros(2, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="/a/Conv"),
             helper.make_node("Identity", ["w"], ["w2"]), helper.make_node("Identity", ["b"], ["b2"]),
             helper.make_node("Conv", ["y", "w2", "b2"], ["z"], name="/c/Conv")]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("x", "z")]
    graph = helper.make_graph(nodes, "g", io[:1], io[1:], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 21)])
    layers = {"a": {"format": "fp16"}, "c": {"format": "fp16"}}
    rewritten = apply_precision(model, layers, {"a": "/a/Conv", "c": "/c/Conv"})
    onnx.checker.check_model(rewritten, full_check=True)
    assert sum(n.op_type == "Cast" for n in rewritten.graph.node) == 4
