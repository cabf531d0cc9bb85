"""``manifest.json`` of an export folder (schema ``mixqsam2.export/1``), torch-free.

It says what each ONNX file is (role, bank policy, which runtimes can run it, inputs and
outputs with named dynamic dimensions, sha256), which model and plan the graphs were made
from (state-dict and plan hashes), the bank capacity, the host-side model settings
(:class:`~mixqsam2.models.graph_config.GraphConfig`), and where every plan layer ended up
(graph, ONNX node, op type, format) for TensorRT's per-layer settings.

:func:`read_manifest` checks a folder before anything runs: schema, every file present and
unchanged (sha256). A folder that does not match its manifest is a user error.

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
import json
from pathlib import Path

from mixqsam2.errors import UserInputError

SCHEMA = "mixqsam2.export/1"
DYNAMIC_DIMS = {"num_objects": {"min": 1, "opt": 1, "max": 16}, "num_points": {"min": 1, "opt": 2, "max": 8}}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensor_info(value_info) -> dict:
    """``{"name", "dtype", "shape"}`` of an ONNX graph input/output; dynamic dims by name."""
    from onnx import helper

    tensor = value_info.type.tensor_type
    shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
    return {"name": value_info.name, "dtype": helper.tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": shape}


def read_manifest(folder: str | Path) -> dict:
    """The manifest of an export ``folder``, after checking that every graph file matches it."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise UserInputError(f"{folder} is not an export folder: no manifest.json (make one with `mixqsam2 export`)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}") from None
    if manifest.get("schema") != SCHEMA:
        raise UserInputError(f"{path} is not a mixqsam2 export (schema {manifest.get('schema')!r}, expected {SCHEMA!r})")
    for name, graph in manifest["graphs"].items():
        file = folder / graph["file"]
        if not file.is_file():
            raise UserInputError(f"export folder {folder} does not match its manifest: {graph['file']} is missing")
        if file_sha256(file) != graph["sha256"]:
            raise UserInputError(f"export folder {folder} does not match its manifest: {graph['file']} has changed")
    return manifest
