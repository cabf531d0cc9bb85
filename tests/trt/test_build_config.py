"""deploy/build_engine.py --dry-run on real pico exports: the exact build configuration per engine,
without TensorRT. ``pico_plan`` mixes int4, int8 and fp16; ``pico_onnx_plan`` is pico exported with
it, ``pico_onnx_fp32`` without a plan (tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mixqsam2.fileio import LISTING
from mixqsam2.memory.synthesis import RULES

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "build_engine.py"
VERSIONS = ["10.3", "10.16", "11.4"]
PLUGIN_GRAPHS = {f"sis_update_plugin.{p}" for p in RULES}


def build_engine(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def dry_run(export, out, version, *extra):
    """The configuration build_engine.py prints, after checking it is the one it wrote."""
    done = build_engine("--onnx-dir", export, "--out", out, "--dry-run", "--trt-version", version, *extra)
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "build_config.json").read_text())
    assert json.loads(done.stdout) == written
    return written


def by_graph(config) -> dict[str, dict]:
    return {engine["graph"]: engine for engine in config["engines"]}


def manifest_of(export) -> dict:
    return json.loads((export / "manifest.json").read_text())


def _plan_formats(plan_path) -> dict[str, str]:
    return {name: layer["format"] for name, layer in json.loads(plan_path.read_text())["layers"].items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_plan_layer_is_mapped_and_counts_per_format_equal_the_plan(pico_onnx_plan, pico_plan, tmp_path, version):
    config = dry_run(pico_onnx_plan, tmp_path / "out", version, "--plan", pico_plan)
    layers = [layer for engine in config["engines"] for layer in engine["attempts"][0]["layers"]]
    assert len(layers) == len({layer["layer"] for layer in layers})  # each layer in one engine
    expected = _plan_formats(pico_plan)
    assert {layer["layer"]: layer["format"] for layer in layers} == expected
    counts = Counter(expected.values())
    assert {"int4", "int8", "fp16"} <= set(counts)  # the plan really mixes the three
    assert config["formats"] == {f: counts[f] for f in ("int4", "int8", "fp16", "fp32")}
    assert config["plan_sha256"] == manifest_of(pico_onnx_plan)["plan"]["sha256"]
    graphs = manifest_of(pico_onnx_plan)["graphs"]
    assert set(by_graph(config)) == set(graphs)  # every graph is an engine (all run on TensorRT)
    for layer in layers:
        assert layer["node"] and layer["op_type"] in ("MatMul", "Gemm", "Conv")


def test_the_nodes_weak_typing_pins_are_in_the_graphs_tensorrt_parses(pico_onnx_plan):
    """TensorRT names a parsed layer after its ONNX node: every mapped node must be in its graph."""
    onnx = pytest.importorskip("onnx")
    manifest = manifest_of(pico_onnx_plan)
    nodes = {}
    for layer in manifest["layers"].values():
        if layer["graph"] not in nodes:
            model = onnx.load(pico_onnx_plan / manifest["graphs"][layer["graph"]]["file"])
            nodes[layer["graph"]] = {node.name: node.op_type for node in model.graph.node}
        assert nodes[layer["graph"]].get(layer["node"]) == layer["op_type"], layer


def test_tensorrt_10_3_tries_strong_typing_then_weak_typing_with_layer_precision(pico_onnx_plan, pico_plan, tmp_path):
    engines = by_graph(dry_run(pico_onnx_plan, tmp_path / "out", "10.3", "--plan", pico_plan))
    plan = _plan_formats(pico_plan)
    for graph, engine in engines.items():
        strong, weak = engine["attempts"]
        assert strong["typing"] == "strong" and strong["flags"] == []
        assert all(layer["precision"] is None for layer in strong["layers"])
        assert weak["typing"] == "weak"
        formats = {plan[layer["layer"]] for layer in weak["layers"]}
        expected_flags = (["FP16"] * bool(formats & {"fp16", "int4"}) + ["INT8"] * ("int8" in formats)
                          + ["INT4"] * ("int4" in formats) + ["OBEY_PRECISION_CONSTRAINTS"] * ("fp16" in formats))
        assert weak["flags"] == expected_flags, graph
        for layer in weak["layers"]:  # fp16 pinned; int8/int4 left to their Q/DQ nodes
            pinned = "HALF" if layer["format"] == "fp16" else None
            assert (layer["precision"], layer["output_type"]) == (pinned, pinned), layer
    assert engines["image_encoder"]["attempts"][1]["flags"] == ["FP16", "INT8", "INT4", "OBEY_PRECISION_CONSTRAINTS"]
    assert engines["sis_update.sis"]["attempts"][1]["flags"] == []  # no plan layer: fp32, as the graph is


@pytest.mark.parametrize("version", ["10.12", "10.16", "11.4"])
def test_newer_tensorrt_builds_strongly_typed_only_without_precision_flags(pico_onnx_plan, pico_plan, tmp_path,
                                                                          version):
    for engine in dry_run(pico_onnx_plan, tmp_path / "out", version, "--plan", pico_plan)["engines"]:
        assert [(a["typing"], a["flags"]) for a in engine["attempts"]] == [("strong", [])]
        assert all(layer["precision"] is None for layer in engine["attempts"][0]["layers"])


@pytest.mark.parametrize("version", VERSIONS)
def test_profiles_come_from_the_dynamic_dims_and_plugin_graphs_alias_the_bank(pico_onnx_plan, tmp_path, version):
    engines = by_graph(dry_run(pico_onnx_plan, tmp_path / "out", version, "--workspace-mb", "256"))
    dims = manifest_of(pico_onnx_plan)["dynamic_dims"]
    objects = dims["num_objects"]
    assert engines["image_encoder"]["profile"] == {}  # static
    assert engines["mask_decoder"]["profile"]["point_coords"] == {
        level: [objects[level], dims["num_points"][level], 2] for level in ("min", "opt", "max")}
    capacity = manifest_of(pico_onnx_plan)["bank_capacity"]
    for graph in ("sis_update.sis", "sis_update_plugin.sis", "memory_attention"):
        assert engines[graph]["profile"]["bank_features"]["max"][:2] == [objects["max"], capacity]
    assert {g for g, e in engines.items() if e["needs_plugin"]} == PLUGIN_GRAPHS
    assert all(engines[g]["preview_features"] == ["ALIASED_PLUGIN_IO_10_03"] for g in PLUGIN_GRAPHS)
    assert engines["sis_update.sis"]["preview_features"] == []
    assert {e["workspace_mb"] for e in engines.values()} == {256}


def test_an_export_without_a_plan_builds_fp32_engines(pico_onnx_fp32, tmp_path):
    config = dry_run(pico_onnx_fp32, tmp_path / "out", "10.3")
    layers = len(manifest_of(pico_onnx_fp32)["layers"])
    assert config["plan_sha256"] is None
    assert config["formats"] == {"int4": 0, "int8": 0, "fp16": 0, "fp32": layers}
    for engine in config["engines"]:
        strong, weak = engine["attempts"]
        assert weak["flags"] == [] and all(layer["precision"] is None for layer in weak["layers"])


def test_graphs_builds_only_the_named_graphs(pico_onnx_fp32, tmp_path):
    """``--graphs memory_attention``: one engine, configured as in the full build."""
    whole = by_graph(dry_run(pico_onnx_fp32, tmp_path / "all", "10.3"))
    config = dry_run(pico_onnx_fp32, tmp_path / "one", "10.3", "--graphs", "memory_attention")
    assert [engine["graph"] for engine in config["engines"]] == ["memory_attention"]
    assert config["engines"][0] == whole["memory_attention"]


def test_an_empty_graph_list_builds_nothing_and_says_so(pico_onnx_fp32):
    from mixqsam2.errors import UserInputError
    from mixqsam2.export.manifest import ExportManifest
    from mixqsam2.trt.config import TensorRTVersion, plan_engines

    with pytest.raises(UserInputError, match="no TensorRT graph"):
        plan_engines(ExportManifest.load(pico_onnx_fp32), TensorRTVersion.parse("10.3"), graphs=[])


def _one_line_exit_2(done):
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    return done.stderr


def test_bad_input_is_one_line_and_exit_2(pico_onnx_plan, pico_plan, tmp_path):
    export, out = pico_onnx_plan, tmp_path / "out"
    assert "not an export folder" in _one_line_exit_2(build_engine("--onnx-dir", tmp_path, "--out", out, "--dry-run",
                                                                   "--trt-version", "10.3"))
    assert "TensorRT >= 10.0" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--dry-run",
                                                               "--trt-version", "8.6"))
    assert "not a TensorRT version" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--dry-run",
                                                                     "--trt-version", "ten"))
    assert "no TensorRT graph memory_atention" in _one_line_exit_2(build_engine(
        "--onnx-dir", export, "--out", out, "--dry-run", "--trt-version", "10.3", "--graphs", "memory_atention"))
    assert "--trt-version is for --dry-run" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out,
                                                                             "--trt-version", "10.3"))
    other = tmp_path / "other.json"
    other.write_text(pico_plan.read_text().replace('"solver": "', '"solver": "other-'))
    assert "is not the plan of export" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--plan",
                                                                        other, "--dry-run", "--trt-version", "10.3"))
    assert not out.exists()


@pytest.fixture
def export_copy(pico_onnx_plan, tmp_path):
    """A copy of the plan export that a test may change."""
    return Path(shutil.copytree(pico_onnx_plan, tmp_path / "export"))


def test_a_modified_graph_file_is_refused(export_copy, tmp_path):
    (export_copy / "mask_decoder.onnx").write_bytes(b"changed")
    assert "mask_decoder.onnx has changed" in _one_line_exit_2(
        build_engine("--onnx-dir", export_copy, "--out", tmp_path / "out", "--dry-run", "--trt-version", "10.3"))


@pytest.mark.parametrize("edit, message", [("drop", "not in the manifest's layer map"), ("format", "format int8")])
def test_a_plan_layer_the_export_lost_or_changed_is_refused(export_copy, pico_plan, tmp_path, edit, message):
    """A manifest no export writes (one layer dropped from the map, or in another format)."""
    manifest = manifest_of(export_copy)
    name = next(n for n, f in _plan_formats(pico_plan).items() if f != "int8")
    if edit == "drop":
        del manifest["layers"][name]
    else:
        manifest["layers"][name]["format"] = "int8"
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    assert message in _one_line_exit_2(build_engine("--onnx-dir", export_copy, "--out", tmp_path / "out", "--plan",
                                                    pico_plan, "--dry-run", "--trt-version", "10.3"))


@pytest.mark.parametrize("field, message", [("dynamic_dims", "malformed manifest"), ("layers", "with format 'fp8'")])
def test_a_manifest_with_unknown_dims_or_formats_is_refused(export_copy, tmp_path, field, message):
    manifest = manifest_of(export_copy)
    if field == "dynamic_dims":
        manifest["dynamic_dims"]["num_objects"]["min"] = 0
    else:
        next(iter(manifest["layers"].values()))["format"] = "fp8"
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    assert message in _one_line_exit_2(build_engine("--onnx-dir", export_copy, "--out", tmp_path / "out", "--dry-run",
                                                    "--trt-version", "10.3"))


def test_users_files_in_the_output_folder_are_kept(pico_onnx_plan, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "not empty" in _one_line_exit_2(build_engine("--onnx-dir", pico_onnx_plan, "--out", out, "--dry-run",
                                                        "--trt-version", "10.3"))
    dry_run(pico_onnx_plan, out, "10.3", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "build_config.json", "notes.txt"]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_a_build_or_a_versionless_dry_run_is_refused(pico_onnx_plan, tmp_path):
    for extra in ([], ["--dry-run"]):
        assert "TensorRT is not installed here" in _one_line_exit_2(
            build_engine("--onnx-dir", pico_onnx_plan, "--out", tmp_path / "out", *extra))
