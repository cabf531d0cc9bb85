"""What TensorRT is asked to build, per engine, decided without TensorRT (so a dry run can show it).

The typing mode follows the TensorRT version:

- TensorRT >= 10.12 and 11.x: strongly typed networks only. Precision lives in the ONNX graph
  (Q/DQ for int8, INT4 DequantizeLinear with block_size for int4, FP16 initializers + casts);
  no precision flags (deprecated in 10.12, removed in 11.0).
- TensorRT 10.0-10.11 (JetPack 6 runs 10.3): the same graph strongly typed first; if the parser
  or builder refuses it, weak typing with the flags of the formats the engine's layers have
  (``FP16`` for fp16 and int4, which computes in fp16; ``INT8``; ``INT4``), and, where ``FP16``
  is on, fp16 layers pinned to HALF and fp32 layers (no plan) to FLOAT (precision and output
  type, by ONNX node name from the manifest) under ``OBEY_PRECISION_CONSTRAINTS``; int8/int4
  layers keep the precision their Q/DQ nodes give them (explicit quantization). An engine
  without fp16 or int4 layers gets no flag: TensorRT builds it in fp32, as the graph is.
- Older TensorRT (8.x, JetPack 5) cannot parse opset-21 graphs with INT4 block weights nor load
  IPluginV3 plugins: refused.

Dynamic dims (``num_objects``, ``num_points``) become one optimization profile per engine;
graphs with the SISSynthesize node ask for aliased plugin I/O (in-place bank update).

>>> TensorRTVersion.parse("10.3.0.30"), TensorRTVersion.parse("11.4") >= STRONGLY_TYPED_ONLY
(TensorRTVersion(major=10, minor=3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from mixqsam2.errors import UserInputError
from mixqsam2.export.manifest import LAYER_FORMATS, ExportManifest, GraphSpec, file_sha256


class TensorRTVersion(NamedTuple):
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> TensorRTVersion:
        """``"10.3"``, ``"10.3.0.30"`` (``tensorrt.__version__``) -> (10, 3)."""
        parts = str(text).split(".")
        try:
            return cls(int(parts[0]), int(parts[1]))
        except (IndexError, ValueError):
            raise UserInputError(f"not a TensorRT version: {text!r} (expected MAJOR.MINOR, e.g. 10.3)") from None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


OLDEST_SUPPORTED = TensorRTVersion(10, 0)  # IPluginV3, INT4 block DequantizeLinear, strongly typed networks
STRONGLY_TYPED_ONLY = TensorRTVersion(10, 12)  # precision flags and layer precision deprecated, removed in 11.0
ALIASED_PLUGIN_IO = "ALIASED_PLUGIN_IO_10_03"  # trt.PreviewFeature: the plugin updates the bank in place
QUANTIZED_FORMAT_FLAGS = {"int8": "INT8", "int4": "INT4"}  # plan format -> trt.BuilderFlag weak typing needs
PINNED_TYPES = {"fp16": "HALF", "fp32": "FLOAT"}  # trt.DataType of the layers weak typing pins (when FP16 is on)


@dataclass(frozen=True)
class LayerPrecision:
    """One plan layer in an engine. ``precision``/``output_type`` (TensorRT DataType names) are
    set only for weak typing; None means the graph decides (Q/DQ, casts, fp16 weights)."""

    layer: str
    node: str
    op_type: str
    format: str
    precision: str | None = None
    output_type: str | None = None


@dataclass(frozen=True)
class BuildAttempt:
    """One way to build an engine: a typing mode, builder flags, per-layer precision."""

    typing: str  # "strong" | "weak"
    flags: tuple[str, ...]  # trt.BuilderFlag names
    layers: tuple[LayerPrecision, ...]


@dataclass(frozen=True)
class EngineConfig:
    """Everything the build of one engine sets; ``attempts`` are tried in order."""

    graph: str
    onnx: str
    engine: str
    attempts: tuple[BuildAttempt, ...]
    profile: dict[str, dict[str, list[int]]]  # input name -> min/opt/max shapes (dynamic inputs only)
    preview_features: tuple[str, ...]
    needs_plugin: bool
    workspace_mb: int


@dataclass(frozen=True)
class BuildPlan:
    """The configuration of every engine of an export for one TensorRT version."""

    tensorrt: str
    export: str
    plan_sha256: str | None
    formats: dict[str, int]  # layers per format over all engines (fp32: not in the plan)
    engines: tuple[EngineConfig, ...]

    def to_json(self) -> dict:
        return asdict(self)


def plan_engines(manifest: ExportManifest, version: TensorRTVersion, plan_path=None,
                 workspace_mb: int = 1024, graphs: Sequence[str] | None = None) -> BuildPlan:
    """The build configuration of every TensorRT graph of ``manifest`` (``runs_on`` has trt),
    or of ``graphs`` only (e.g. one graph to time; ``run_stream`` needs them all).

    ``plan_path``: the plan the export was made with; it must be the manifest's plan and every
    one of its layers must be in the manifest's layer map with the same format.
    """
    if version < OLDEST_SUPPORTED:
        raise UserInputError(f"TensorRT {version} cannot build these graphs (opset 21, INT4 block weights, "
                             f"IPluginV3): TensorRT >= {OLDEST_SUPPORTED} is needed (JetPack 6 has 10.3); "
                             "on JetPack 5 use the ort backend")
    if workspace_mb < 1:
        raise UserInputError(f"--workspace-mb must be at least 1, got {workspace_mb}")
    plan_sha = _checked_plan_sha256(manifest, plan_path)
    buildable = [name for name, graph in manifest.graphs.items() if "trt" in graph.runs_on]
    wanted = buildable if graphs is None else [name for name in buildable if name in graphs]
    unknown = sorted(set(graphs or ()) - set(buildable))
    if unknown or not wanted:
        raise UserInputError(f"the export has no TensorRT graph {', '.join(unknown) or '(none named)'}; "
                             f"it has {', '.join(buildable)}")
    engines = tuple(_engine(manifest, manifest.graphs[name], version, workspace_mb) for name in wanted)
    formats = {f: sum(1 for e in engines for layer in e.attempts[0].layers if layer.format == f)
               for f in LAYER_FORMATS}
    return BuildPlan(tensorrt=str(version), export=str(manifest.folder), plan_sha256=plan_sha, formats=formats,
                     engines=engines)


def _checked_plan_sha256(manifest: ExportManifest, plan_path) -> str | None:
    """The plan's sha256 after checking it is the one baked into the export."""
    baked = (manifest.plan or {}).get("sha256")
    if plan_path is None:
        return baked
    from mixqsam2.quant.plan import PrecisionPlan

    plan = PrecisionPlan.load(plan_path)
    sha = file_sha256(plan_path)
    if baked != sha:
        baked_text = f"plan {baked[:12]}" if baked else "no plan"
        raise UserInputError(f"plan {plan_path} ({sha[:12]}) is not the plan of export {manifest.folder} "
                             f"({baked_text}); export again with this plan or give the export's plan")
    for name, layer in plan.layers.items():
        mapped = manifest.layers.get(name)
        if mapped is None or mapped.format != layer["format"]:
            found = f"format {mapped.format}" if mapped else "not in the manifest's layer map"
            raise UserInputError(f"plan layer {name} ({layer['format']}) is {found} in {manifest.folder}")
    return sha


def _engine(manifest: ExportManifest, graph: GraphSpec, version: TensorRTVersion, workspace_mb: int) -> EngineConfig:
    layers = [LayerPrecision(name, spec.node, spec.op_type, spec.format)
              for name, spec in manifest.layers.items() if spec.graph == graph.name]
    strong = BuildAttempt("strong", (), tuple(layers))
    attempts = (strong,) if version >= STRONGLY_TYPED_ONLY else (strong, _weak_attempt(layers))
    return EngineConfig(
        graph=graph.name, onnx=graph.file, engine=f"{graph.name}.engine", attempts=attempts,
        profile=_profile(manifest, graph), preview_features=(ALIASED_PLUGIN_IO,) if graph.uses_sis_plugin else (),
        needs_plugin=graph.uses_sis_plugin, workspace_mb=workspace_mb,
    )


def _weak_attempt(layers: list[LayerPrecision]) -> BuildAttempt:
    formats = {layer.format for layer in layers}
    half = bool(formats & {"fp16", "int4"})  # int4 is weight-only: its layer computes in fp16
    flags = ("FP16",) * half + tuple(flag for f, flag in QUANTIZED_FORMAT_FLAGS.items() if f in formats)
    if not half:  # nothing runs in fp16: TensorRT keeps fp32 wherever no Q/DQ says otherwise
        return BuildAttempt("weak", flags, tuple(layers))
    pinned = tuple(LayerPrecision(**{**asdict(layer), "precision": PINNED_TYPES[layer.format],
                                     "output_type": PINNED_TYPES[layer.format]})
                   if layer.format in PINNED_TYPES else layer for layer in layers)
    obey = ("OBEY_PRECISION_CONSTRAINTS",) * any(layer.precision for layer in pinned)
    return BuildAttempt("weak", flags + obey, pinned)


def _profile(manifest: ExportManifest, graph: GraphSpec) -> dict[str, dict[str, list[int]]]:
    profile = {}
    for tensor in graph.inputs:
        if any(isinstance(d, str) for d in tensor.shape):
            profile[tensor.name] = {
                level: [manifest.dynamic_dims[d][level] if isinstance(d, str) else d for d in tensor.shape]
                for level in ("min", "opt", "max")
            }
    return profile
