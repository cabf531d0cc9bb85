"""ONNX export of SAM2's per-frame graphs, with a precision plan baked in.

``mixqsam2 export --model M [--checkpoint P] [--plan PLAN.json] [--capacity K] --out DIR``
writes, atomically:

- ``image_encoder.onnx``, ``memory_attention.onnx``, ``mask_decoder.onnx``,
  ``memory_encoder.onnx`` (:mod:`mixqsam2.models.graphs`; per-object graphs batched over a
  dynamic ``num_objects``), with the plan's formats as Q/DQ, INT4 block DQ and fp16 casts
  (:mod:`mixqsam2.export.precision`);
- per bank policy P: ``sis_update.P.onnx`` (standard ops; ONNX Runtime and TensorRT) and
  ``sis_update_plugin.P.onnx`` (one ``SISSynthesize`` node for the TensorRT plugin);
- ``constants.npz`` (``no_mem_embed``, added to the image features on a prompted frame) and
  ``manifest.json`` (:mod:`mixqsam2.export.manifest`).

Every graph passes ``onnx.checker.check_model(full_check=True)`` and runs in ONNX Runtime
before the folder appears; the unquantized graphs' largest difference to PyTorch on the
tracing inputs is recorded in the manifest (``parity_max_abs``).

>>> from mixqsam2.models import build_model  # doctest: +SKIP
>>> manifest = export_model(build_model("pico"), "pico", "out/pico-onnx")  # doctest: +SKIP
>>> sorted(manifest["graphs"])[:2]  # doctest: +SKIP
['image_encoder', 'mask_decoder']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError


def export_model(model, model_name: str, out_dir: str | Path, plan_path: str | Path | None = None,
                 capacity: int | None = None, overwrite: bool = False, progress: bool = True,
                 memory_pool: int = 1) -> dict:
    """Export ``model`` (a ``SAM2Base``) into ``out_dir``; returns the manifest.

    ``memory_pool``: memory attention reads the bank B x B pooled
    (:class:`~mixqsam2.models.graphs.MemoryAttentionGraph`; the manifest's ``memory_pool``).

    The plan at ``plan_path`` must have been calibrated on these weights and be deployable;
    otherwise :class:`UserInputError`, before anything is written. Its file's sha256 is the
    manifest's ``plan.sha256``.
    """
    import onnx
    from tqdm import tqdm

    from mixqsam2.export.manifest import DYNAMIC_DIMS, SCHEMA, file_sha256, tensor_info
    from mixqsam2.export.onnx_graphs import OPSET, example_inputs, export_graph, layer_nodes
    from mixqsam2.export.precision import apply_precision
    from mixqsam2.export.sis_plugin import plugin_graph
    from mixqsam2.fileio import atomic_output_dir, check_output_dir, write_json_atomic
    from mixqsam2.memory.synthesis import RULES
    from mixqsam2.models.graphs import TorchGraphs
    from mixqsam2.quant.plan import PrecisionPlan, state_dict_sha256

    check_output_dir(out_dir, overwrite)
    capacity = capacity or model.num_maskmem - 1
    model_sha = state_dict_sha256(model)
    plan = PrecisionPlan.load(plan_path) if plan_path is not None else None
    if plan is not None:
        _check_plan(plan, model, model_sha)
    graphs = TorchGraphs(model, capacity, memory_pool)
    weights = _layer_weights(model, plan)
    plan_layers = plan.layers if plan is not None else {}
    models, layer_map, parity = {}, {}, {}
    for name in tqdm(list(graphs.modules), desc="export", unit="graph", disable=not progress):
        role = name.split(".")[0]
        onnx_model = export_graph(graphs.modules[name], role, example_inputs(role, graphs.config, capacity))
        nodes = layer_nodes(onnx_model, weights)
        for layer, node in nodes.items():
            layer_map[layer] = {"graph": name, "node": node.name, "op_type": node.op_type,
                                "format": plan_layers.get(layer, {}).get("format", "fp32")}
        if plan_layers:
            onnx_model = apply_precision(onnx_model, plan_layers, {k: n.name for k, n in nodes.items()})
        else:
            parity[name] = _ort_parity(onnx_model, graphs, name, role, capacity)
        onnx.checker.check_model(onnx_model, full_check=True)
        models[name] = onnx_model
        if role == "sis_update":
            policy = name.split(".", 1)[1]
            models[f"sis_update_plugin.{policy}"] = plugin_graph(RULES[policy], onnx_model)
    missing = sorted(set(plan_layers) - set(layer_map))
    if missing:
        raise RuntimeError(f"{len(missing)} plan layers are in no exported graph, e.g. {missing[0]}")

    with atomic_output_dir(out_dir, overwrite=overwrite, kind="export") as tmp:
        entries = {}
        for name, onnx_model in models.items():
            file = f"{name}.onnx"
            onnx.save(onnx_model, tmp / file)
            role = name.split(".")[0]
            entries[name] = {
                "file": file, "sha256": file_sha256(tmp / file), "role": "sis_update" if role.startswith("sis_update") else role,
                "runs_on": ["trt"] if role == "sis_update_plugin" else ["ort", "trt"],
                "inputs": [tensor_info(v) for v in onnx_model.graph.input],
                "outputs": [tensor_info(v) for v in onnx_model.graph.output],
                **({"policy": name.split(".", 1)[1]} if "." in name else {}),
                **({"parity_max_abs": parity[name]} if name in parity else {}),
            }
        np.savez(tmp / "constants.npz", no_mem_embed=graphs.no_mem_embed)
        manifest = {
            "schema": SCHEMA, "opset": OPSET, "bank_capacity": capacity, "memory_pool": memory_pool,
            "model": manifest_model(model, model_name, model_sha),
            "plan": _plan_summary(plan, plan_path), "dynamic_dims": DYNAMIC_DIMS, "graphs": entries,
            "constants": "constants.npz", "constants_sha256": file_sha256(tmp / "constants.npz"), "layers": layer_map,
        }
        write_json_atomic(tmp / "manifest.json", manifest)
    return manifest


def manifest_model(model, model_name: str, model_sha: str | None = None) -> dict:
    """The manifest's ``model`` entry for ``model``: its name, the sha256 of its weights
    (``model_sha`` when already known) and its host-side settings
    (:func:`~mixqsam2.models.graphs.graph_config`), which the backends read from it."""
    from mixqsam2.models.graphs import graph_config
    from mixqsam2.quant.plan import state_dict_sha256

    sha = model_sha or state_dict_sha256(model)
    return {"name": model_name, "state_dict_sha256": sha, **graph_config(model).to_json()}


def _check_plan(plan, model, model_sha: str) -> None:
    if plan.model_sha256 != model_sha:
        raise UserInputError(
            f"the plan was calibrated on other weights ({plan.model_sha256[:12]}, these are {model_sha[:12]}); "
            "calibrate this checkpoint first"
        )
    if not plan.deployable:
        research = sorted({layer["format"] for layer in plan.layers.values()} - {"fp16", "int8", "int4", "fp32"})
        raise UserInputError(f"the plan uses research formats ({', '.join(research)}) that no runtime executes")
    modules = dict(model.named_modules())
    missing = [name for name in plan.layers if name not in modules]
    if missing:
        raise UserInputError(f"the plan does not match the model: {len(missing)} layers not in it, e.g. {missing[0]}")


def _layer_weights(model, plan) -> dict[str, np.ndarray]:
    """Weights of the plan's layers, or of every quantizable layer without a plan."""
    from mixqsam2.quant.calibrate import target_layers

    layers = target_layers(model)
    names = plan.layers if plan is not None else layers
    return {name: layers[name].weight.detach().float().cpu().numpy() for name in names}


def _plan_summary(plan, plan_path) -> dict | None:
    if plan is None:
        return None
    from collections import Counter

    from mixqsam2.export.manifest import file_sha256

    return {"sha256": file_sha256(Path(plan_path)), "effective_bits": plan.effective_bits,
            "budget_bits": plan.budget_bits, "formats": dict(Counter(l["format"] for l in plan.layers.values()))}


def _ort_parity(onnx_model, graphs, name: str, role: str, capacity: int) -> float:
    """Largest |ONNX Runtime - PyTorch| over the outputs, on inputs of 3 objects (not the traced 2)."""
    from mixqsam2.export.onnx_graphs import example_inputs
    from mixqsam2.export.ort_session import ort_session

    inputs = example_inputs(role, graphs.config, capacity, objects=3)
    got = ort_session(onnx_model.SerializeToString()).run(None, inputs)
    expected = graphs.run(name, inputs)
    return max(float(np.abs(g.astype(np.float32) - e.astype(np.float32)).max()) for g, e in zip(got, expected.values()))
