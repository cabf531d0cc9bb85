"""A small hand-made export folder that follows the export contract (schema mixqsam2.export/1)."""

from __future__ import annotations

import json

from mixqsam2.quant.plan import PrecisionPlan
from mixqsam2.trt.manifest import SCHEMA, file_sha256

# plan layer -> (graph, ONNX node, op type, format)
LAYERS = {
    "image_encoder.trunk.blocks.0.mlp.layers.0": ("image_encoder", "/trunk/blocks.0/mlp/layers.0/MatMul", "MatMul", "int4"),
    "image_encoder.trunk.blocks.0.attn.qkv": ("image_encoder", "/trunk/blocks.0/attn/qkv/MatMul", "MatMul", "int8"),
    "image_encoder.neck.convs.0.conv": ("image_encoder", "/neck/convs.0/conv/Conv", "Conv", "fp16"),
    "memory_attention.layers.0.self_attn.q_proj": ("memory_attention", "/layers.0/self_attn/q_proj/MatMul", "MatMul",
                                                   "int8"),
    "sam_mask_decoder.transformer.layers.0.mlp.layers.0": ("mask_decoder", "/transformer/layers.0/mlp/layers.0/MatMul",
                                                           "MatMul", "fp16"),
    "memory_encoder.fuser.layers.0.pwconv1": ("memory_encoder", "/fuser/layers.0/pwconv1/MatMul", "MatMul", "int4"),
}


def _tensor(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def _graphs():
    n, k = "num_objects", 6
    bank = [_tensor("bank_features", "float32", [n, k, 16, 8]), _tensor("bank_pointers", "float32", [n, k, 16]),
            *(_tensor(f"bank_{f}", "float32", [n, k]) for f in ("positions", "scores", "counts")),
            _tensor("bank_valid", "bool", [n, k])]
    new = [_tensor("new_features", "float32", [n, 16, 8]), _tensor("new_pointer", "float32", [n, 16]),
           _tensor("new_position", "float32", [n]), _tensor("new_score", "float32", [n])]
    graphs = {
        "image_encoder": ([_tensor("image", "float32", [1, 3, 64, 64])], [_tensor("vision_features", "float32",
                                                                                    [1, 32, 4, 4])]),
        "memory_attention": ([_tensor("current_features", "float32", [n, 16, 32]), *bank[:2]],
                             [_tensor("conditioned_features", "float32", [n, 16, 32])]),
        "mask_decoder": ([_tensor("features", "float32", [n, 32, 4, 4]), _tensor("point_coords", "float32",
                                                                               [n, "num_points", 2])],
                         [_tensor("masks", "float32", [n, 4, 16, 16])]),
        "memory_encoder": ([_tensor("features", "float32", [n, 32, 4, 4]), _tensor("mask", "float32", [n, 1, 64, 64])],
                           [_tensor("memory", "float32", [n, 16, 8])]),
    }
    specs = {name: {"role": name, "runs_on": ["ort", "trt"], "inputs": i, "outputs": o} for name, (i, o) in graphs.items()}
    for policy in ("fifo", "sis", "sis-pair", "prune"):
        specs[f"sis_update.{policy}"] = {"role": "sis_update", "policy": policy, "runs_on": ["ort", "trt"],
                                         "inputs": bank + new, "outputs": bank}
        specs[f"sis_update_plugin.{policy}"] = {"role": "sis_update", "policy": policy, "runs_on": ["trt"],
                                                "inputs": bank + new, "outputs": bank}
    return specs


def write_export(folder, plan_path=None):
    """An export folder: placeholder graph files (a dry run reads only their sha256) + manifest.json."""
    folder.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for name, spec in _graphs().items():
        (folder / f"{name}.onnx").write_bytes(f"graph {name}".encode())
        graphs[name] = {"file": f"{name}.onnx", "sha256": file_sha256(folder / f"{name}.onnx"), **spec}
    plan = None
    if plan_path is not None:
        formats = [f for *_, f in LAYERS.values()]
        plan = {"sha256": file_sha256(plan_path), "effective_bits": 6.0,
                "formats": {f: formats.count(f) for f in ("int8", "int4", "fp16")}}
    manifest = {
        "schema": SCHEMA, "opset": 21, "bank_capacity": 6,
        "model": {"name": "pico", "state_dict_sha256": "0" * 64, "image_size": 64, "hidden_dim": 32, "mem_dim": 8,
                  "num_maskmem": 7, "feature_size": [4, 4], "max_obj_ptrs": 16},
        "plan": plan,
        "dynamic_dims": {"num_objects": {"min": 1, "opt": 1, "max": 16}, "num_points": {"min": 1, "opt": 2, "max": 8}},
        "graphs": graphs,
        "layers": {name: dict(zip(("graph", "node", "op_type", "format"), spec)) for name, spec in LAYERS.items()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def write_plan(path):
    layers = {name: {"kind": "conv" if op == "Conv" else "linear", "format": fmt}
              for name, (_, _, op, fmt) in LAYERS.items()}
    PrecisionPlan(model="pico", model_sha256="0" * 64, budget_bits=6.0, effective_bits=6.0, solver="ilp",
                  calibration={}, layers=layers).save(path)
    return path
