"""The precision plan (schema ``mixqsam2.plan/1``): what calibration decided, per layer.

It is the contract between calibration, export and TensorRT, written as JSON (atomically).
Per layer (module name as in the PyTorch model): ``kind`` (linear|conv), ``params``,
``format``, ``w_bits``, ``a_bits``, ``block_size`` (int4), ``score`` (WAIS), ``act_amax``
(int8), ``error`` (of the chosen format: the expected NSR, or with ``--importance measured``
the measured output distortion), ``reason``. Plus the model name and
state-dict hash, the budget, the achieved effective bits, the solver and a calibration
summary. Applying a plan to a model whose layers or weights differ fails with a clear message.

>>> plan = PrecisionPlan(model="pico", model_sha256="0" * 64, budget_bits=8.0, effective_bits=8.0,
...                      solver="ilp", calibration={}, layers={})
>>> PrecisionPlan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import read_json, write_json_atomic
from mixqsam2.quant.formats import get_format

SCHEMA = "mixqsam2.plan/1"


@dataclass
class PrecisionPlan:
    model: str
    model_sha256: str
    budget_bits: float
    effective_bits: float
    solver: str
    calibration: dict
    layers: dict[str, dict] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def deployable(self) -> bool:
        return all(get_format(layer["format"]).deployable for layer in self.layers.values())

    def to_json(self) -> dict:
        return {**asdict(self), "deployable": self.deployable}

    @classmethod
    def from_json(cls, data: dict) -> PrecisionPlan:
        """The plan in ``data``; anything that is not a well-formed plan is a user error.

        >>> PrecisionPlan.from_json({"schema": SCHEMA, "model": "pico"})
        Traceback (most recent call last):
        ...
        mixqsam2.errors.UserInputError: malformed precision plan: 'model_sha256' missing or not a string
        """
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != SCHEMA:
            raise UserInputError(f"not a precision plan (schema {schema!r}, expected {SCHEMA!r})")
        _check_fields(data, PLAN_FIELDS, "")
        for name, layer in data["layers"].items():
            if not isinstance(layer, dict):
                raise UserInputError(f"malformed precision plan: layer {name!r} is not an object")
            _check_fields(layer, LAYER_FIELDS, f"layer {name!r}: ")
            _check_fields(layer, FORMAT_FIELDS.get(layer["format"], {}), f"layer {name!r} ({layer['format']}): ")
            get_format(layer["format"])
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PrecisionPlan:
        return cls.from_json(read_json(path, f"plan not found: {path}"))


PLAN_FIELDS = {"model": str, "model_sha256": str, "budget_bits": (int, float), "effective_bits": (int, float),
               "solver": str, "calibration": dict, "layers": dict}
LAYER_FIELDS = {"kind": str, "params": int, "format": str}  # what export, eval and TensorRT read of a layer
FORMAT_FIELDS = {"int8": {"act_amax": (int, float)}, "int4": {"block_size": int}}  # what export reads of one


def _check_fields(data: dict, expected: dict, where: str) -> None:
    for key, kind in expected.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            what = {str: "a string", dict: "an object", int: "an integer"}.get(kind, "a number")
            raise UserInputError(f"malformed precision plan: {where}{key!r} missing or not {what}")


def state_dict_sha256(model) -> str:
    """Hash of the model's weights (names, shapes and values), to tie a plan to them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def apply_plan(model, plan: PrecisionPlan, fp16_activations: bool = True):
    """Fake-quantize ``model`` in place as ``plan`` says; a mismatching model is a user error.
    ``fp16_activations=False``: fp16-computing layers as ONNX Runtime's CPU provider runs them
    (see :mod:`mixqsam2.quant.fake`)."""
    from mixqsam2.quant.fake import quantize_layer

    modules = dict(model.named_modules())
    missing = [name for name in plan.layers if name not in modules]
    if missing:
        raise UserInputError(f"plan does not match the model: {len(missing)} layers not in it, e.g. {missing[0]}")
    for name, layer in plan.layers.items():
        params = modules[name].weight.numel()
        if params != layer["params"]:
            raise UserInputError(f"plan does not match the model: {name} has {params} weights, the plan {layer['params']}")
    sha = state_dict_sha256(model)
    if sha != plan.model_sha256:
        raise UserInputError(
            f"plan does not match the model: it was calibrated on weights {plan.model_sha256[:12]}, "
            f"these are {sha[:12]} (other checkpoint?)"
        )
    for name, layer in plan.layers.items():
        quantize_layer(modules[name], get_format(layer["format"]), layer.get("act_amax"), layer.get("block_size") or 128,
                       fp16_activations)
    return model
