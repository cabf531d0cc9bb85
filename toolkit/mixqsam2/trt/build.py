"""Build the engines of a :class:`~mixqsam2.trt.config.BuildPlan` with TensorRT (imported when called).

Per engine: parse the ONNX graph (strongly typed or not, as the attempt says), set the
workspace, flags, preview features, the optimization profile and the per-layer precision,
build against a shared timing cache; the first attempt that builds wins. The output folder
gets ``<graph>.engine`` files, ``build_config.json`` (the plan, as a dry run prints it),
``engines.json`` (TensorRT version, GPU, plugin and plan sha256, and per engine the attempt
that built it) and the export's ``manifest.json`` + ``constants.npz`` (what the runtime needs
besides the engines), all at once when every engine is built.

>>> from mixqsam2.trt.config import TensorRTVersion, plan_engines  # doctest: +SKIP
>>> plan = plan_engines(ExportManifest.load("out/export"), installed_version())  # doctest: +SKIP
>>> build_engines(plan, ExportManifest.load("out/export"), "out/engines", plugin_library="libsis_plugin.so")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import atomic_output_dir, write_bytes_atomic, write_json_atomic
from mixqsam2.trt.config import BuildAttempt, BuildPlan, EngineConfig, TensorRTVersion
from mixqsam2.export.manifest import ExportManifest, file_sha256

ENGINES_SCHEMA = "mixqsam2.engines/1"
INDEX, BUILD_CONFIG = "engines.json", "build_config.json"
EXPORT_FILES = ("manifest.json", "constants.npz")  # copied along: the engine folder is all a device needs


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise UserInputError("TensorRT is not installed here (it comes with JetPack and NVIDIA's TensorRT "
                             "containers); build_engine.py --dry-run --trt-version X.Y shows the configuration "
                             "without it") from None
    return tensorrt


def installed_version() -> TensorRTVersion:
    return TensorRTVersion.parse(import_tensorrt().__version__)


PLUGIN_IDENTITY = ("SISSynthesize", "1", "mixqsam2")  # op_type, plugin_version, plugin_namespace of the node


def load_plugin_library(registry, path: str | Path) -> str:
    """Register the SISSynthesize plugin library with a TensorRT plugin registry (once per process:
    TensorRT refuses a second registration); returns the library's sha256."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"SIS plugin library not found: {path} (build it: cmake -S plugins/sis -B build/sis "
                             "-DTensorRT_ROOT=... && cmake --build build/sis)")
    if registry.get_creator(*PLUGIN_IDENTITY) is None and registry.load_library(str(path)) is None:
        raise UserInputError(f"TensorRT could not load the plugin library {path} (see TensorRT's log above)")
    return file_sha256(path)


class _BuildFailed(Exception):
    """One attempt did not build; the message says why."""


def build_engines(plan: BuildPlan, manifest: ExportManifest, out_dir: str | Path, plugin_library=None,
                  timing_cache=None, overwrite: bool = False) -> dict:
    """Build every engine of ``plan`` into ``out_dir``; returns the ``engines.json`` index."""
    from mixqsam2.trt.cuda import device_name

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    needs_plugin = any(engine.needs_plugin for engine in plan.engines)
    if needs_plugin and plugin_library is None:
        raise UserInputError("the export has SISSynthesize graphs: give --plugin-lib (or set MIXQSAM2_SIS_PLUGIN)")
    plugin_sha = load_plugin_library(trt.get_plugin_registry(), plugin_library) if needs_plugin else None
    gpu = device_name()
    builder = trt.Builder(logger)
    cache_file = Path(timing_cache) if timing_cache else None
    cache = builder.create_builder_config().create_timing_cache(
        cache_file.read_bytes() if cache_file and cache_file.is_file() else b"")
    with atomic_output_dir(out_dir, overwrite=overwrite, kind="engines") as tmp:
        for name in EXPORT_FILES:
            if (manifest.folder / name).is_file():
                shutil.copyfile(manifest.folder / name, tmp / name)
        records = {}
        for engine in plan.engines:
            serialized, attempt, failures = _build_first_that_works(trt, builder, logger, manifest, engine, cache)
            (tmp / engine.engine).write_bytes(serialized)
            records[engine.graph] = {"file": engine.engine, "sha256": file_sha256(tmp / engine.engine),
                                     "typing": attempt.typing, "flags": list(attempt.flags),
                                     "needs_plugin": engine.needs_plugin, "failed_attempts": failures}
        index = {"schema": ENGINES_SCHEMA, "tensorrt": trt.__version__, "gpu": gpu,
                 "plugin": {"path": str(Path(plugin_library).resolve()), "sha256": plugin_sha} if needs_plugin else None,
                 "plan_sha256": plan.plan_sha256, "export": str(manifest.folder), "engines": records}
        write_json_atomic(tmp / BUILD_CONFIG, plan.to_json())
        write_json_atomic(tmp / INDEX, index)
    if cache_file:
        write_bytes_atomic(cache_file, bytes(cache.serialize()))
    return index


def _build_first_that_works(trt, builder, logger, manifest, engine: EngineConfig, cache):
    failures = []
    for attempt in engine.attempts:
        try:
            return _build(trt, builder, logger, manifest.folder / engine.onnx, engine, attempt, cache), attempt, failures
        except _BuildFailed as exc:
            failures.append({"typing": attempt.typing, "error": str(exc)})
    tried = "; ".join(f"{f['typing']}: {f['error']}" for f in failures)
    raise UserInputError(f"TensorRT could not build {engine.graph} ({tried})")


def _build(trt, builder, logger, onnx: Path, engine: EngineConfig, attempt: BuildAttempt, cache) -> bytes:
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if attempt.typing == "strong" else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        raise _BuildFailed("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, engine.workspace_mb << 20)
    for flag in attempt.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for feature in engine.preview_features:
        config.set_preview_feature(getattr(trt.PreviewFeature, feature), True)
    if engine.profile:
        profile = builder.create_optimization_profile()
        for name, shapes in engine.profile.items():
            profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
        config.add_optimization_profile(profile)
    _pin_layer_precision(trt, network, attempt)
    config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise _BuildFailed("the builder returned no engine (see TensorRT's log above)")
    return bytes(serialized)


def _pin_layer_precision(trt, network, attempt: BuildAttempt) -> None:
    pinned = {layer.node: layer for layer in attempt.layers if layer.precision is not None}
    if not pinned:
        return
    found = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        spec = pinned.get(layer.name)
        if spec is not None:
            layer.precision = getattr(trt.DataType, spec.precision)
            layer.set_output_type(0, getattr(trt.DataType, spec.output_type))
            found.add(layer.name)
    missing = sorted(set(pinned) - found)
    if missing:
        raise _BuildFailed(f"{len(missing)} plan layers have no TensorRT layer of their node's name, e.g. {missing[0]}")
