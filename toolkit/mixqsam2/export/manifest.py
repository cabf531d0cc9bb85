"""``manifest.json`` of an export folder (schema ``mixqsam2.export/1``), torch-free and onnx-free.

It says what each ONNX file is (role, bank policy, which runtimes can run it, inputs and
outputs with named dynamic dimensions, sha256), which model and plan the graphs were made
from (state-dict and plan hashes), the bank capacity, the host-side model settings
(:class:`~mixqsam2.models.graph_config.GraphConfig`), and where every quantizable layer ended
up (graph, ONNX node, op type, format: the plan's, or ``fp32`` without one) for TensorRT's
per-layer settings.

:func:`read_manifest` checks a folder before anything runs: schema, every file present and
unchanged (sha256 of each graph and of ``constants.npz``). A folder that does not match its
manifest is a user error. An engine folder (``deploy/build_engine.py``) carries the manifest
without the ONNX files: ``read_manifest(folder, with_graphs=False)``. :class:`ExportManifest`
is the same manifest, typed and checked further, as TensorRT's build configuration reads it.

>>> import json, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "manifest.json").write_text(json.dumps({"schema": "other"}))
>>> read_manifest(folder)
Traceback (most recent call last):
...
mixqsam2.errors.UserInputError: ... is not a mixqsam2 export (schema 'other', expected 'mixqsam2.export/1')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import read_json

SCHEMA = "mixqsam2.export/1"
DYNAMIC_DIMS = {"num_objects": {"min": 1, "opt": 1, "max": 16}, "num_points": {"min": 1, "opt": 2, "max": 8}}
LAYER_FORMATS = ("int4", "int8", "fp16", "fp32")  # fp32: a layer no plan quantized


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class HostSide:
    """What the tracker's host code needs from an export or engine folder (see
    :class:`~mixqsam2.memory.tracker.StreamingTracker`): the model settings, the bank capacity
    and memory pooling the graphs were built for, and ``no_mem_embed`` [1, C, 1, 1]."""

    config: object  # mixqsam2.models.graph_config.GraphConfig
    capacity: int
    no_mem_embed: object  # np.ndarray
    memory_pool: int = 1


def host_side(folder: str | Path, manifest: dict) -> HostSide:
    """The :class:`HostSide` of a folder whose ``manifest`` has been read."""
    import numpy as np

    from mixqsam2.models.graph_config import GraphConfig

    constants = Path(folder) / manifest["constants"]
    try:
        no_mem_embed = np.load(constants)["no_mem_embed"]
    except Exception as exc:  # numpy raises many types for a missing or damaged file
        raise UserInputError(f"cannot read {constants}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return HostSide(GraphConfig.from_json(manifest["model"]), int(manifest["bank_capacity"]), no_mem_embed,
                    int(manifest.get("memory_pool", 1)))


def tensor_info(value_info) -> dict:
    """``{"name", "dtype", "shape"}`` of an ONNX graph input/output; dynamic dims by name."""
    from onnx import helper

    tensor = value_info.type.tensor_type
    shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
    return {"name": value_info.name, "dtype": helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": shape}


def read_manifest(folder: str | Path, with_graphs: bool = True) -> dict:
    """The manifest of an export ``folder``, after checking that every graph file matches it
    (``with_graphs=False``: the schema only, for a folder that carries the manifest alone)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    manifest = read_json(path, f"{folder} is not an export folder: no manifest.json (make one with `mixqsam2 export`)")
    schema = manifest.get("schema") if isinstance(manifest, dict) else None
    if schema != SCHEMA:
        raise UserInputError(f"{path} is not a mixqsam2 export (schema {schema!r}, expected {SCHEMA!r})")
    files = {graph["file"]: graph["sha256"] for graph in manifest["graphs"].values()}
    if "constants_sha256" in manifest:  # exports made before it was recorded: checked when read (host_side)
        files[manifest["constants"]] = manifest["constants_sha256"]
    for name, sha256 in files.items() if with_graphs else ():
        file = folder / name
        if not file.is_file():
            raise UserInputError(f"export folder {folder} does not match its manifest: {name} is missing")
        if file_sha256(file) != sha256:
            raise UserInputError(f"export folder {folder} does not match its manifest: {name} has changed")
    return manifest


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; ``shape`` holds ints and names of dynamic dims."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the export. ``policy``: the bank policy of a ``sis_update`` graph."""

    name: str
    file: str
    sha256: str
    role: str
    runs_on: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    policy: str | None = None

    @property
    def uses_sis_plugin(self) -> bool:
        """Whether the graph holds the SISSynthesize custom node (TensorRT only)."""
        return self.runs_on == ("trt",)


@dataclass(frozen=True)
class LayerSpec:
    """Where a quantizable layer landed: ``node`` is the ONNX node (= TensorRT layer) name in ``graph``."""

    graph: str
    node: str
    op_type: str
    format: str


@dataclass(frozen=True)
class ExportManifest:
    """An export folder's manifest, typed; :meth:`load` reads and checks it.

    >>> ExportManifest.load("out/pico-onnx").layers["image_encoder.neck.convs.0.conv"].format  # doctest: +SKIP
    'int8'
    """

    folder: Path
    opset: int
    bank_capacity: int
    model: dict
    plan: dict | None
    dynamic_dims: dict[str, dict[str, int]]
    graphs: dict[str, GraphSpec]
    layers: dict[str, LayerSpec]

    @classmethod
    def load(cls, folder: str | Path) -> ExportManifest:
        """:func:`read_manifest`, then every field typed and every dynamic dim and layer format known."""
        folder = Path(folder)
        data = read_manifest(folder)
        try:
            manifest = cls(
                folder=folder, opset=int(data["opset"]), bank_capacity=int(data["bank_capacity"]),
                model=dict(data["model"]), plan=data["plan"], dynamic_dims=_dynamic_dims(data["dynamic_dims"]),
                graphs={name: _graph(name, g) for name, g in data["graphs"].items()},
                layers={name: LayerSpec(**layer) for name, layer in data["layers"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            path = folder / "manifest.json"
            raise UserInputError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        manifest._check_names()
        return manifest

    def _check_names(self) -> None:
        path = self.folder / "manifest.json"
        for graph in self.graphs.values():
            for tensor in graph.inputs:
                unknown = [d for d in tensor.shape if isinstance(d, str) and d not in self.dynamic_dims]
                if unknown:
                    raise UserInputError(f"{path}: input {tensor.name} of {graph.name} has dims {unknown} "
                                         "not in dynamic_dims")
        for name, layer in self.layers.items():
            if layer.graph not in self.graphs or layer.format not in LAYER_FORMATS:
                raise UserInputError(f"{path}: layer {name} maps to graph {layer.graph!r} with format "
                                     f"{layer.format!r} (graphs: {', '.join(self.graphs)}; formats: {LAYER_FORMATS})")


def _dynamic_dims(data: dict) -> dict[str, dict[str, int]]:
    dims = {name: {k: int(v[k]) for k in ("min", "opt", "max")} for name, v in data.items()}
    for name, d in dims.items():
        if not 0 < d["min"] <= d["opt"] <= d["max"]:
            raise ValueError(f"dynamic dim {name} needs 0 < min <= opt <= max, got {d}")
    return dims


def _graph(name: str, data: dict) -> GraphSpec:
    def tensors(items):
        return tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in items)

    return GraphSpec(name=name, file=data["file"], sha256=data["sha256"], role=data["role"],
                     runs_on=tuple(data["runs_on"]), inputs=tensors(data["inputs"]), outputs=tensors(data["outputs"]),
                     policy=data.get("policy"))
