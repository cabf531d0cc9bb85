"""The export folder as TensorRT needs it: ``manifest.json`` (schema ``mixqsam2.export/1``) + ONNX files.

A manifest lists the graphs (file, sha256, role, where they run, I/O with named dynamic dims),
the dynamic dims' min/opt/max, the plan it was exported with, and the map plan layer ->
ONNX node that weakly typed TensorRT builds use for per-layer precision. Every problem is a
:class:`~mixqsam2.errors.UserInputError` naming the file and the field.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); (d / "g.onnx").write_bytes(b"onnx")
4
>>> graph = {"file": "g.onnx", "sha256": file_sha256(d / "g.onnx"), "role": "image_encoder",
...          "runs_on": ["ort", "trt"], "inputs": [{"name": "image", "dtype": "float32", "shape": [1, 3, 8, 8]}],
...          "outputs": [{"name": "feats", "dtype": "float32", "shape": [1, 4, 2, 2]}]}
>>> manifest = {"schema": SCHEMA, "opset": 21, "bank_capacity": 6, "model": {"name": "pico"}, "plan": None,
...             "dynamic_dims": {}, "graphs": {"image_encoder": graph}, "layers": {}}
>>> _ = (d / "manifest.json").write_text(json.dumps(manifest))
>>> ExportManifest.load(d).graphs["image_encoder"].inputs[0].shape
(1, 3, 8, 8)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mixqsam2.errors import UserInputError

SCHEMA = "mixqsam2.export/1"
FORMATS = ("fp16", "int8", "int4")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; ``shape`` holds ints and names of dynamic dims."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class GraphSpec:
    name: str
    file: str
    sha256: str
    role: str
    runs_on: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    policy: str | None = None  # sis_update roles: the bank policy (fifo, sis, sis-pair, prune)

    @property
    def uses_sis_plugin(self) -> bool:
        """Whether the graph holds the SISSynthesize custom node (TensorRT only)."""
        return self.runs_on == ("trt",)


@dataclass(frozen=True)
class LayerSpec:
    """Where a plan layer landed: ``node`` is the ONNX node (= TensorRT layer) name in ``graph``."""

    graph: str
    node: str
    op_type: str
    format: str


@dataclass(frozen=True)
class ExportManifest:
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
        """Read ``folder/manifest.json`` and check it against the ONNX files next to it."""
        folder = Path(folder)
        path = folder / "manifest.json"
        if not path.is_file():
            raise UserInputError(f"{folder} is not an export folder: no manifest.json (make one with mixqsam2 export)")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserInputError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else None
            raise UserInputError(f"{path}: schema {found!r}, expected {SCHEMA!r}")
        try:
            manifest = cls(
                folder=folder, opset=int(data["opset"]), bank_capacity=int(data["bank_capacity"]),
                model=dict(data["model"]), plan=data["plan"], dynamic_dims=_dynamic_dims(data["dynamic_dims"]),
                graphs={name: _graph(name, g) for name, g in data["graphs"].items()},
                layers={name: LayerSpec(**layer) for name, layer in data["layers"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserInputError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        manifest._check(path)
        return manifest

    def _check(self, path: Path) -> None:
        for graph in self.graphs.values():
            onnx = self.folder / graph.file
            if not onnx.is_file():
                raise UserInputError(f"{path}: graph {graph.name} names {graph.file}, which is missing")
            if file_sha256(onnx) != graph.sha256:
                raise UserInputError(f"{onnx} does not match its sha256 in the manifest (modified or half-copied)")
            for tensor in graph.inputs:
                unknown = [d for d in tensor.shape if isinstance(d, str) and d not in self.dynamic_dims]
                if unknown:
                    raise UserInputError(f"{path}: input {tensor.name} of {graph.name} has dims {unknown} "
                                         "not in dynamic_dims")
        for name, layer in self.layers.items():
            if layer.graph not in self.graphs or layer.format not in FORMATS:
                raise UserInputError(f"{path}: layer {name} maps to graph {layer.graph!r} with format "
                                     f"{layer.format!r} (graphs: {', '.join(self.graphs)}; formats: {FORMATS})")


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
