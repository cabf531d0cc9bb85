"""Precision formats a layer can take, their costs, and TensorRT's rules for them.

Deployable (what TensorRT runs on Jetson Orin):

- ``fp16``: weights and activations in half precision (16 bits per weight).
- ``int8``: weights per-output-channel symmetric int8, activations per-tensor symmetric int8
  with a calibrated amax (8 bits per weight).
- ``int4``: weight-only, symmetric, one fp16 scale per block of ``block_size`` weights along
  the input dimension; activations stay fp16 (4 + 16 / block_size bits per weight).
  Linear layers only, and only when ``in_features`` divides into blocks.

Research (the paper's ``WbAb`` tables, simulated only, never deployable): ``wXaY`` with X, Y
in 2..8, weights per-output-channel and activations per-tensor.

``fp32`` keeps a layer untouched (used for pinned layers in research mode and for reference).

>>> get_format("int4").effective_bits(block_size=128)
4.125
>>> allowed_formats("conv", in_features=64, block_size=128, candidates=["fp16", "int8", "int4"])
['fp16', 'int8']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mixqsam2.errors import UserInputError


@dataclass(frozen=True)
class QuantFormat:
    """``w_bits``/``a_bits``: None means not quantized (fp16/fp32 storage); ``blockwise``:
    per-block weight scales (int4), else per-output-channel."""

    name: str
    w_bits: int | None
    a_bits: int | None
    storage_bits: int  # bits per weight when not quantized
    blockwise: bool = False
    deployable: bool = True
    linear_only: bool = False

    def effective_bits(self, block_size: int = 128) -> float:
        """Bits per weight, scale overhead included for blockwise formats."""
        if self.w_bits is None:
            return float(self.storage_bits)
        return self.w_bits + (16 / block_size if self.blockwise else 0.0)


DEPLOYABLE = {
    "fp32": QuantFormat("fp32", None, None, 32),
    "fp16": QuantFormat("fp16", None, None, 16),
    "int8": QuantFormat("int8", 8, 8, 8),
    "int4": QuantFormat("int4", 4, None, 4, blockwise=True, linear_only=True),
}
_RESEARCH = re.compile(r"^w([2-8])a([2-8])$")


def get_format(name: str) -> QuantFormat:
    """A deployable format by name, or a research ``wXaY``."""
    if name in DEPLOYABLE:
        return DEPLOYABLE[name]
    match = _RESEARCH.match(name)
    if match:
        w, a = int(match.group(1)), int(match.group(2))
        return QuantFormat(name, w, a, w, deployable=False)
    raise UserInputError(f"unknown format '{name}'; use fp32, fp16, int8, int4 or a research wXaY (X, Y in 2..8)")


def allowed_formats(kind: str, in_features: int, block_size: int, candidates: list[str]) -> list[str]:
    """The ``candidates`` TensorRT can run on a layer of ``kind`` (``linear``/``conv``)."""
    allowed = []
    for name in candidates:
        fmt = get_format(name)
        if fmt.linear_only and (kind != "linear" or in_features % block_size != 0):
            continue
        allowed.append(name)
    return allowed
