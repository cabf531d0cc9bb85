"""Choosing a backend: the graphs a :class:`~mixqsam2.memory.tracker.StreamingTracker` runs.

``torch`` runs sam2's modules (needs torch + sam2), ``ort`` an export folder on ONNX Runtime
(no torch), ``trt`` TensorRT engines. ``--onnx-dir`` implies ``ort`` and ``--engine-dir``
``trt``. ``--model M --backend ort`` exports M on the fly into a cache folder named after the
model's weights and the bank capacity (``$MIXQSAM2_CACHE``, default ``~/.cache/mixqsam2``), so a
second run starts at once.

>>> resolve_backend(None, onnx_dir="out/pico-onnx", engine_dir=None)
'ort'
>>> resolve_backend("trt", onnx_dir="out/pico-onnx", engine_dir=None)
Traceback (most recent call last):
...
mixqsam2.errors.UserInputError: --onnx-dir runs on the ort backend, not trt (use --engine-dir for TensorRT engines)
"""

from __future__ import annotations

import os
from pathlib import Path

from mixqsam2.errors import UserInputError

BACKENDS = ("torch", "ort", "trt")


def resolve_backend(backend: str | None, onnx_dir=None, engine_dir=None) -> str:
    """The backend to use, from ``--backend`` and the model source given."""
    implied = "ort" if onnx_dir else "trt" if engine_dir else None
    if implied and backend not in (None, implied):
        source = "--onnx-dir" if onnx_dir else "--engine-dir"
        other = "use --engine-dir for TensorRT engines" if onnx_dir else "use --onnx-dir for ONNX graphs"
        raise UserInputError(f"{source} runs on the {implied} backend, not {backend} ({other})")
    chosen = backend or implied or "torch"
    if chosen == "trt" and not engine_dir:
        raise UserInputError("--backend trt needs --engine-dir (engines from deploy/build_engine.py)")
    return chosen


def check_ort_kernels(backend: str, ort_kernels: str) -> None:
    """``--ort-kernels`` other than exact only means something to the ort backend."""
    if ort_kernels != "exact" and backend != "ort":
        raise UserInputError(f"--ort-kernels {ort_kernels} is for the ort backend, not {backend}")


def open_graphs(backend: str, model: str | None = None, checkpoint=None, onnx_dir=None, engine_dir=None,
                capacity: int | None = None, ort_kernels: str = "exact", memory_pool: int | None = None):
    """The graphs of ``backend`` for a model name (torch, or ort via the export cache), an
    export folder (ort) or an engine folder (trt); ``ort_kernels`` (exact or fast) is for ort;
    ``memory_pool`` for the graphs built here (a folder's graphs have theirs)."""
    check_ort_kernels(backend, ort_kernels)
    if (onnx_dir or engine_dir) and (model or checkpoint):
        raise UserInputError(f"--{'model' if model else 'checkpoint'} does not go with an export or engine folder: "
                             "the folder holds its model's weights")
    if backend == "trt":
        from mixqsam2.runtime.trt_backend import TrtGraphs

        return TrtGraphs(engine_dir)
    if backend == "ort":
        from mixqsam2.runtime.ort_backend import OrtGraphs, require_onnxruntime

        require_onnxruntime()
        return OrtGraphs(onnx_dir if onnx_dir else cached_export(model, checkpoint, capacity, memory_pool or 1),
                         kernels=ort_kernels)
    from mixqsam2.memory.tracker import make_torch_graphs
    from mixqsam2.models import build_model

    built = build_model(model, checkpoint)
    return make_torch_graphs(built, capacity or built.num_maskmem - 1, memory_pool or 1)


def cached_export(model_name: str, checkpoint=None, capacity: int | None = None, memory_pool: int = 1) -> Path:
    """An export of the model in the cache, made now if it is not there yet (needs torch + sam2)."""
    from mixqsam2.export import export_model, manifest_model
    from mixqsam2.export.manifest import read_manifest
    from mixqsam2.models import build_model

    model = build_model(model_name, checkpoint)
    capacity = capacity or model.num_maskmem - 1
    pooled = f"-pool{memory_pool}" if memory_pool > 1 else ""
    expected = manifest_model(model, model_name)
    folder = cache_root() / "onnx" / f"{model_name}-{expected['state_dict_sha256'][:16]}-k{capacity}{pooled}"
    try:
        current = read_manifest(folder)["model"] == expected
    except UserInputError:
        current = False
    if not current:  # not made yet, damaged, or made with other host-side settings (same weights)
        export_model(model, model_name, folder, capacity=capacity, memory_pool=memory_pool, overwrite=True)
    return folder


def cache_root() -> Path:
    return Path(os.environ.get("MIXQSAM2_CACHE", Path.home() / ".cache" / "mixqsam2"))
