"""Calibration: statistics -> WAIS scores + expected errors -> allocation -> precision plan.

``calibrate(model, forward_loop, config)`` hooks every Linear and Conv2d of the image
encoder, memory attention, memory encoder and mask decoder (the prompt encoder and the
small pointer heads stay fp16), runs ``forward_loop(model)`` once while the hooks stream
input statistics (:class:`~mixqsam2.quant.observers.InputObserver`), scores the layers,
and solves the allocation. :func:`make_forward_loop` builds the calibration pass from
images (GT-box prompts) and videos (first-frame mask prompts through the streaming
tracker, so memory attention and the memory encoder see real memories).

>>> cfg = CalibrationConfig(budget_bits=6.0)  # doctest: +SKIP
>>> plan = calibrate(model, make_forward_loop(images, videos), cfg, model_name="pico")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import re
import time
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Callable

from torch import nn
from tqdm import tqdm

from mixqsam2.quant.allocate import LayerOptions, check_feasible, effective_bits, solve_exact, solve_greedy
from mixqsam2.quant.formats import allowed_formats, get_format
from mixqsam2.quant.config import CalibrationConfig
from mixqsam2.quant.observers import InputObserver
from mixqsam2.quant.plan import PrecisionPlan, state_dict_sha256
from mixqsam2.quant.scores import format_error, wais_score

QUANTIZED_PARTS = ("image_encoder.", "memory_attention.", "memory_encoder.", "sam_mask_decoder.")
SOLVE = {"ilp": solve_exact, "greedy": solve_greedy}  # CalibrationConfig.solver -> solver


@dataclass(frozen=True)
class LayerCalibration:
    """What calibration found for one layer: what the allocation chooses from and the plan records.

    The objective is the sum over layers of ``error_weight * error(format)``: with the WAIS
    objective ``error`` is the expected noise-to-signal ratio and ``error_weight`` the WAIS
    score; with the measured one, ``error`` is the measured output distortion and the weight 1.
    """

    name: str
    kind: str  # "linear" | "conv"
    params: int
    wais: float  # WAIS score, normalized to sum 1 over the layers (the plan's "score")
    amax: dict[str, float | None]  # per allowed format: int8 activation range (None where not quantized)
    options: dict[str, tuple[float, float]]  # per allowed format: (effective bits, error)
    pin: str | None  # why the layer is pinned to fp16, if it is
    error_weight: float

    def layer_options(self) -> LayerOptions:
        """What the solvers see: per format, the effective bits and the weighted error."""
        return LayerOptions(self.name, self.params, self.wais,
                            {f: (bits, self.error_weight * error) for f, (bits, error) in self.options.items()})


def target_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear and Conv2d of the quantized parts, in network order."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d)) and name.startswith(QUANTIZED_PARTS)
    }


def budget_bits_for_megabytes(model: nn.Module, megabytes: float) -> float:
    """The effective-bits budget that puts the quantized layers' weights in ``megabytes`` MiB."""
    params = sum(layer.weight.numel() for layer in target_layers(model).values())
    return megabytes * 2**20 * 8 / params


def collect_statistics(layers: dict[str, nn.Module], forward_loop: Callable, model: nn.Module) -> dict:
    """Run ``forward_loop(model)`` once with an input observer on every layer."""
    observers, handles = {}, []
    for name, layer in layers.items():
        observer = InputObserver(channel_axis=1 if isinstance(layer, nn.Conv2d) else -1)
        observers[name] = observer
        handles.append(layer.register_forward_pre_hook(lambda m, args, o=observer: o.update(args[0])))
    try:
        forward_loop(model)
    finally:
        for handle in handles:
            handle.remove()
    return observers


def pin_unreached(formats: dict, observers: dict) -> dict:
    """Layers the calibration data never reached (memory layers without videos) stay fp16."""
    unreached = [name for name, o in observers.items() if o.tokens == 0]
    if unreached:
        warnings.warn(f"calibration data never reached {len(unreached)} layers (e.g. {unreached[0]}); "
                      "they stay fp16 (give --videos to calibrate the memory layers)", stacklevel=2)
    return {name: (kind, ["fp16"], "not reached by the calibration data") if name in unreached else (kind, names, pin)
            for name, (kind, names, pin) in formats.items()}


def _pinned(name: str, index: int, count: int, config: CalibrationConfig) -> str | None:
    if config.keep_first_last and index in (0, count - 1):
        return "first/last layer kept in fp16"
    for pattern in config.keep_fp16:
        if re.search(pattern, name):
            return f"pinned by --keep fp16 {pattern}"
    return None


def layer_formats(layers: dict[str, nn.Module], config: CalibrationConfig) -> dict[str, tuple[str, list[str], str | None]]:
    """Per layer: kind, the formats TensorRT's rules and the pins allow, and the pin reason."""
    table = {}
    for index, (name, layer) in enumerate(layers.items()):
        kind = "linear" if isinstance(layer, nn.Linear) else "conv"
        in_features = layer.weight.shape[1]
        pin = _pinned(name, index, len(layers), config)
        names = ["fp16"] if pin else allowed_formats(kind, in_features, config.block_size, list(config.formats))
        if not names:
            names, pin = ["fp16"], f"no candidate format is allowed on this {kind} (in_features {in_features})"
        table[name] = (kind, names, pin)
    return table


def check_budget(layers: dict[str, nn.Module], formats: dict, config: CalibrationConfig) -> None:
    """Fail before any data is run if no assignment fits the budget."""
    options = [
        LayerOptions(name, layer.weight.numel(), 0.0,
                     {f: (get_format(f).effective_bits(config.block_size), 0.0) for f in formats[name][1]})
        for name, layer in layers.items()
    ]
    check_feasible(options, config.budget_bits)


def layer_table(layers: dict[str, nn.Module], formats: dict, observers: dict,
                config: CalibrationConfig) -> list[LayerCalibration]:
    """Per layer: WAIS score, int8 ranges and the expected NSR of each allowed format."""
    raw = {name: wais_score(layer, observers[name], rms=config.wais == "rms") if observers[name].tokens else 0.0
           for name, layer in layers.items()}
    total = sum(raw.values()) or 1.0
    rows = []
    for name, layer in tqdm(layers.items(), desc="score layers", unit="layer"):
        kind, names, pin = formats[name]
        observer = observers[name]
        amax = {fmt: _amax(observer, config.observer, get_format(fmt).a_bits) for fmt in names}
        options = {
            fmt: (get_format(fmt).effective_bits(config.block_size),
                  format_error(layer, observer, get_format(fmt), amax[fmt], config.block_size) if observer.tokens else 0.0)
            for fmt in names
        }
        rows.append(LayerCalibration(name, kind, layer.weight.numel(), raw[name] / total, amax, options, pin,
                                     error_weight=raw[name] / total))
    return rows


def with_measured_errors(rows: list[LayerCalibration], model: nn.Module, layers: dict[str, nn.Module],
                         config: CalibrationConfig, sensitivity_loop: Callable) -> list[LayerCalibration]:
    """The rows with the objective replaced by the measured output distortion of each format
    (:mod:`mixqsam2.quant.sensitivity`; layer weight 1)."""
    from mixqsam2.quant.sensitivity import measure_format_errors

    errors = measure_format_errors(model, layers, {r.name: r.amax for r in rows}, config.block_size, sensitivity_loop)
    return [replace(r, error_weight=1.0, options={f: (bits, errors[r.name][f]) for f, (bits, _) in r.options.items()})
            for r in rows]


def _amax(observer: InputObserver, method: str, bits: int | None) -> float | None:
    return None if bits is None else observer.amax(method, bits)


def allocate(rows: list[LayerCalibration], config: CalibrationConfig) -> dict[str, str]:
    """Formats by the configured solver; the objective is sum_l error_weight_l * error_l(format)."""
    return SOLVE[config.solver]([r.layer_options() for r in rows], config.budget_bits)


def build_plan(rows: list[LayerCalibration], choice: dict[str, str], config: CalibrationConfig, model_name: str,
               model_sha256: str, calibration: dict) -> PrecisionPlan:
    layers = {}
    for r in rows:
        fmt = get_format(choice[r.name])
        layers[r.name] = {
            "kind": r.kind, "params": r.params, "format": fmt.name, "w_bits": fmt.w_bits, "a_bits": fmt.a_bits,
            "block_size": config.block_size if fmt.blockwise else None, "score": r.wais,
            "act_amax": r.amax[fmt.name], "error": r.options[fmt.name][1],
            "reason": r.pin or f"{config.solver} solver at {config.budget_bits:g} bits",
        }
    bits = effective_bits([r.layer_options() for r in rows], choice)
    return PrecisionPlan(model=model_name, model_sha256=model_sha256, budget_bits=config.budget_bits,
                         effective_bits=bits, solver=config.solver,
                         calibration={**calibration, "config": _jsonable(asdict(config))}, layers=layers)


def _jsonable(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def calibrate(model: nn.Module, forward_loop: Callable, config: CalibrationConfig, model_name: str,
              data_summary: dict | None = None, sensitivity_loop: Callable | None = None) -> PrecisionPlan:
    """Statistics, scores and allocation in one call; returns the plan (the model is unchanged).
    With ``config.importance == "measured"`` each layer's formats are measured on
    ``sensitivity_loop`` (default: ``forward_loop``), one pass per layer and format."""
    config.validate()
    start = time.perf_counter()
    layers = target_layers(model)
    formats = layer_formats(layers, config)
    check_budget(layers, formats, config)
    observers = collect_statistics(layers, forward_loop, model)
    formats = pin_unreached(formats, observers)
    check_budget(layers, formats, config)
    rows = layer_table(layers, formats, observers, config)
    if config.importance == "measured":
        rows = with_measured_errors(rows, model, layers, config, sensitivity_loop or forward_loop)
    choice = allocate(rows, config)
    summary = {**(data_summary or {}), "seconds": time.perf_counter() - start}
    return build_plan(rows, choice, config, model_name, state_dict_sha256(model), summary)


def make_forward_loop(images: list, videos: list, max_frames: int | None = None, progress: bool = True) -> Callable:
    """The calibration pass: GT-box prompts on ``images`` (ImageSample), first-frame mask
    prompts on ``videos`` (VideoSample, at most ``max_frames`` frames each)."""
    from mixqsam2.memory.prompts import Prompt, clip_box, prompt_then_track
    from mixqsam2.memory.tracker import StreamingTracker

    def forward_loop(model) -> None:
        tracker = StreamingTracker(model)
        for sample in tqdm(images, desc="calibrate images", unit="img", disable=not progress):
            if sample.boxes:
                rgb = sample.rgb()
                tracker.segment_image(rgb, {k: Prompt(box=clip_box(b, *rgb.shape[:2])) for k, b in sample.boxes.items()})
        for video in tqdm(videos, desc="calibrate videos", unit="video", disable=not progress):
            tracker = StreamingTracker(model, num_frames=len(video.frame_paths))
            prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
            for _ in prompt_then_track(tracker, itertools.islice(video.frames(), max_frames), prompts):
                pass

    return forward_loop


def format_counts(plan: PrecisionPlan) -> dict[str, int]:
    formats = [layer["format"] for layer in plan.layers.values()]
    return {f: formats.count(f) for f in sorted(set(formats))}
