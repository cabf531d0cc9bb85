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

import re
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

from torch import nn
from tqdm import tqdm

from mixqsam2.errors import UserInputError
from mixqsam2.quant.allocate import LayerOptions, check_feasible, effective_bits, solve_exact, solve_greedy
from mixqsam2.quant.formats import allowed_formats, get_format
from mixqsam2.quant.observers import AMAX_METHODS, InputObserver
from mixqsam2.quant.plan import PrecisionPlan, state_dict_sha256
from mixqsam2.quant.scores import format_error, wais_score

QUANTIZED_PARTS = ("image_encoder.", "memory_attention.", "memory_encoder.", "sam_mask_decoder.")
SOLVERS = {"ilp": solve_exact, "greedy": solve_greedy}
IMPORTANCES = ("wais", "measured")


@dataclass(frozen=True)
class CalibrationConfig:
    budget_bits: float
    solver: str = "ilp"
    candidates: tuple[str, ...] = ("fp16", "int8", "int4")
    block_size: int = 128
    observer: str = "percentile"
    wais: str = "l2"  # "l2" (the paper) or "rms" (the reimplementation)
    importance: str = "wais"  # the objective: "wais" (WAIS x NSR) or "measured" (mixqsam2.quant.sensitivity)
    keep_fp16: tuple[str, ...] = ()  # regular expressions of layer names pinned to fp16
    keep_first_last: bool = False

    def validate(self) -> None:
        if self.solver not in SOLVERS:
            raise UserInputError(f"unknown solver '{self.solver}'; use one of {', '.join(SOLVERS)}")
        if self.observer not in AMAX_METHODS:
            raise UserInputError(f"unknown observer '{self.observer}'; use one of {', '.join(AMAX_METHODS)}")
        if self.wais not in ("l2", "rms"):
            raise UserInputError(f"unknown WAIS variant '{self.wais}'; use l2 or rms")
        if self.importance not in IMPORTANCES:
            raise UserInputError(f"unknown importance '{self.importance}'; use one of {', '.join(IMPORTANCES)}")
        if self.block_size < 1:
            raise UserInputError(f"block size must be positive, got {self.block_size}")
        for name in self.candidates:
            get_format(name)


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
        names = ["fp16"] if pin else allowed_formats(kind, in_features, config.block_size, list(config.candidates))
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


def layer_table(layers: dict[str, nn.Module], formats: dict, observers: dict, config: CalibrationConfig) -> list[dict]:
    """Per layer: kind, params, WAIS score (normalized to sum 1), the objective's layer
    ``weight`` (the WAIS score), amax, allowed formats with (bits, expected NSR), pin reason."""
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
        rows.append({"name": name, "kind": kind, "params": layer.weight.numel(), "score": raw[name] / total,
                     "weight": raw[name] / total, "amax": amax, "options": options, "pin": pin})
    return rows


def with_measured_errors(rows: list[dict], model: nn.Module, layers: dict[str, nn.Module], config: CalibrationConfig,
                         sensitivity_loop: Callable) -> list[dict]:
    """The rows with the objective replaced by the measured output distortion of each format
    (:mod:`mixqsam2.quant.sensitivity`; layer weight 1)."""
    from mixqsam2.quant.sensitivity import measure_format_errors

    errors = measure_format_errors(model, layers, {r["name"]: r["amax"] for r in rows}, config.block_size,
                                   sensitivity_loop)
    return [{**r, "weight": 1.0, "options": {f: (bits, errors[r["name"]][f]) for f, (bits, _) in r["options"].items()}}
            for r in rows]


def _amax(observer: InputObserver, method: str, bits: int | None) -> float | None:
    return None if bits is None else observer.amax(method, bits)


def allocate(rows: list[dict], config: CalibrationConfig) -> dict[str, str]:
    """Formats by the configured solver; the objective is sum_l weight_l * error_l(format)."""
    layers = [
        LayerOptions(r["name"], r["params"], r["score"], {f: (b, r["weight"] * e) for f, (b, e) in r["options"].items()})
        for r in rows
    ]
    return SOLVERS[config.solver](layers, config.budget_bits)


def build_plan(rows: list[dict], choice: dict[str, str], config: CalibrationConfig, model_name: str,
               model_sha256: str, calibration: dict) -> PrecisionPlan:
    layers = {}
    for r in rows:
        fmt = get_format(choice[r["name"]])
        layers[r["name"]] = {
            "kind": r["kind"], "params": r["params"], "format": fmt.name, "w_bits": fmt.w_bits, "a_bits": fmt.a_bits,
            "block_size": config.block_size if fmt.blockwise else None, "score": r["score"],
            "act_amax": r["amax"][fmt.name], "error": r["options"][fmt.name][1],
            "reason": r["pin"] or f"{config.solver} solver at {config.budget_bits:g} bits",
        }
    bits = effective_bits(
        [LayerOptions(r["name"], r["params"], r["score"], r["options"]) for r in rows], choice
    )
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
    from mixqsam2.memory.prompts import Prompt, clip_box
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
            for index, rgb in enumerate(video.frames()):
                if max_frames is not None and index >= max_frames:
                    break
                tracker.step(rgb, prompts if index == 0 else None)

    return forward_loop


def format_counts(plan: PrecisionPlan) -> dict[str, int]:
    formats = [layer["format"] for layer in plan.layers.values()]
    return {f: formats.count(f) for f in sorted(set(formats))}
