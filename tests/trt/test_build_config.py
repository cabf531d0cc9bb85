"""deploy/build_engine.py --dry-run: the exact build configuration per engine, without TensorRT."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from export_fixture import write_export, write_plan

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "build_engine.py"


@pytest.fixture
def planned_export(tmp_path):
    """(export folder, plan path) of a mixed int4/int8/fp16 plan."""
    plan = write_plan(tmp_path / "plan.json")
    return write_export(tmp_path / "export", plan), plan


def build_engine(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def dry_run(export, out, version, *extra):
    done = build_engine("--onnx-dir", export, "--out", out, "--dry-run", "--trt-version", version, *extra)
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "build_config.json").read_text())
    assert json.loads(done.stdout) == written
    return written


def _plan_layers(config):
    """plan layer -> format, over the first attempt of every engine (each layer once)."""
    layers = [layer for engine in config["engines"] for layer in engine["attempts"][0]["layers"]]
    assert len(layers) == len({layer["layer"] for layer in layers})
    return {layer["layer"]: layer["format"] for layer in layers}


@pytest.mark.parametrize("version", ["10.3", "10.16", "11.4"])
def test_every_plan_layer_is_mapped_and_counts_per_format_equal_the_plan(planned_export, tmp_path, version):
    export, plan_path = planned_export
    config = dry_run(export, tmp_path / "out", version, "--plan", plan_path)
    plan = json.loads(plan_path.read_text())
    assert _plan_layers(config) == {name: layer["format"] for name, layer in plan["layers"].items()}
    expected = Counter(layer["format"] for layer in plan["layers"].values())
    assert config["formats"] == {f: expected[f] for f in ("int4", "int8", "fp16")}
    assert config["plan_sha256"] == json.loads((export / "manifest.json").read_text())["plan"]["sha256"]


def test_tensorrt_10_3_tries_strong_typing_then_weak_typing_with_layer_precision(planned_export, tmp_path):
    export, plan = planned_export
    engines = {e["graph"]: e for e in dry_run(export, tmp_path / "out", "10.3", "--plan", plan)["engines"]}
    encoder = engines["image_encoder"]
    strong, weak = encoder["attempts"]
    assert strong["typing"] == "strong" and strong["flags"] == []
    assert all(layer["precision"] is None for layer in strong["layers"])
    assert weak["typing"] == "weak"
    assert weak["flags"] == ["FP16", "INT8", "INT4", "OBEY_PRECISION_CONSTRAINTS"]
    pinned = {layer["node"]: (layer["precision"], layer["output_type"]) for layer in weak["layers"]}
    assert pinned == {"/trunk/blocks.0/mlp/layers.0/MatMul": (None, None),  # int4: the INT4 DQ decides
                      "/trunk/blocks.0/attn/qkv/MatMul": (None, None),  # int8: its Q/DQ pair decides
                      "/neck/convs.0/conv/Conv": ("HALF", "HALF")}
    assert engines["memory_attention"]["attempts"][1]["flags"] == ["FP16", "INT8"]  # no fp16 layer: nothing pinned
    assert engines["sis_update.fifo"]["attempts"][1]["flags"] == ["FP16"]


@pytest.mark.parametrize("version", ["10.12", "10.16", "11.4"])
def test_newer_tensorrt_builds_strongly_typed_only_without_precision_flags(planned_export, tmp_path, version):
    export, plan = planned_export
    for engine in dry_run(export, tmp_path / "out", version, "--plan", plan)["engines"]:
        assert [(a["typing"], a["flags"]) for a in engine["attempts"]] == [("strong", [])]


def test_profiles_come_from_the_dynamic_dims_and_plugin_graphs_alias_the_bank(planned_export, tmp_path):
    export, _ = planned_export
    engines = {e["graph"]: e for e in dry_run(export, tmp_path / "out", "10.3", "--workspace-mb", "256")["engines"]}
    assert engines["image_encoder"]["profile"] == {}  # static
    assert engines["mask_decoder"]["profile"]["point_coords"] == {"min": [1, 1, 2], "opt": [1, 2, 2],
                                                                   "max": [16, 8, 2]}
    assert engines["sis_update_plugin.sis"]["profile"]["bank_features"]["max"] == [16, 6, 16, 8]
    plugin_graphs = {g for g, e in engines.items() if e["needs_plugin"]}
    assert plugin_graphs == {f"sis_update_plugin.{p}" for p in ("fifo", "sis", "sis-pair", "prune")}
    assert all(engines[g]["preview_features"] == ["ALIASED_PLUGIN_IO_10_03"] for g in plugin_graphs)
    assert engines["sis_update.sis"]["preview_features"] == [] and engines["sis_update.sis"]["workspace_mb"] == 256


def _one_line_exit_2(done):
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    return done.stderr


def test_bad_input_is_one_line_and_exit_2(planned_export, tmp_path):
    export, plan = planned_export
    out = tmp_path / "out"
    assert "not an export folder" in _one_line_exit_2(build_engine("--onnx-dir", tmp_path, "--out", out, "--dry-run",
                                                                   "--trt-version", "10.3"))
    assert "TensorRT >= 10.0" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--dry-run",
                                                               "--trt-version", "8.6"))
    assert "not a TensorRT version" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--dry-run",
                                                                     "--trt-version", "ten"))
    assert "--trt-version is for --dry-run" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out,
                                                                             "--trt-version", "10.3"))
    other = write_plan(tmp_path / "other.json")
    other.write_text(other.read_text().replace('"solver": "ilp"', '"solver": "greedy"'))
    assert "is not the plan of export" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--plan",
                                                                        other, "--dry-run", "--trt-version", "10.3"))
    assert not out.exists()


def test_a_modified_graph_file_is_refused(planned_export, tmp_path):
    export, _ = planned_export
    (export / "mask_decoder.onnx").write_bytes(b"changed")
    assert "does not match its sha256" in _one_line_exit_2(
        build_engine("--onnx-dir", export, "--out", tmp_path / "out", "--dry-run", "--trt-version", "10.3"))


def test_a_plan_layer_missing_from_the_export_is_refused(tmp_path):
    plan = write_plan(tmp_path / "plan.json")
    data = json.loads(plan.read_text())
    data["layers"]["image_encoder.extra"] = {"kind": "linear", "format": "int8"}
    plan.write_text(json.dumps(data))
    export = write_export(tmp_path / "export", plan)
    assert "not in the manifest's layer map" in _one_line_exit_2(
        build_engine("--onnx-dir", export, "--out", tmp_path / "out", "--plan", plan, "--dry-run", "--trt-version",
                     "10.3"))


def test_users_files_in_the_output_folder_are_kept(planned_export, tmp_path):
    export, _ = planned_export
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "not empty" in _one_line_exit_2(build_engine("--onnx-dir", export, "--out", out, "--dry-run",
                                                        "--trt-version", "10.3"))
    dry_run(export, out, "10.3", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["build_config.json", "notes.txt"]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_a_build_or_a_versionless_dry_run_is_refused(planned_export, tmp_path):
    export, _ = planned_export
    for extra in ([], ["--dry-run"]):
        assert "TensorRT is not installed here" in _one_line_exit_2(
            build_engine("--onnx-dir", export, "--out", tmp_path / "out", *extra))
