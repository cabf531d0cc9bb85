"""Fake quantization that simulates what TensorRT executes (symmetric, narrow range).

A value quantized to b bits with range ``amax`` becomes
``clamp(round(x / s), -q, q) * s`` with ``q = 2**(b-1) - 1`` and ``s = amax / q`` for weights
(symmetric, narrow range: int8 in [-127, 127]); activations saturate at ``-q - 1`` as ONNX's and
TensorRT's ``QuantizeLinear`` do. Weights are quantized per output channel, or
per block of ``block_size`` input elements (int4, with fp16 scales as the exported graph
stores them); activations per tensor with a calibrated amax. ``fp16`` rounds through half
precision. A layer that computes in fp16 (``fp16``, and weight-only ``int4``) also returns
fp16-rounded outputs, as the exported graph and TensorRT's fp16 kernels do. With
``fp16_activations=False`` such a layer keeps its fp16 weights but rounds neither its input
nor its output: the arithmetic of ONNX Runtime's CPU provider, which drops the fp32 -> fp16
-> fp32 cast pairs and computes fp16 layers in fp32 (what the ort backend's parity is checked
against).

Quantizers are submodules named as in ModelOpt: ``layer.weight_quantizer`` and
``layer.input_quantizer``, with a readable repr; :func:`quant_summary` tabulates them.

>>> import torch
>>> fake_quant(torch.tensor([0.6, -1.0, 0.26]), torch.tensor(1.0), bits=2)
tensor([ 1., -1.,  0.])
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from mixqsam2.quant.formats import QuantFormat


def fake_quant(x: torch.Tensor, amax: torch.Tensor, bits: int, narrow: bool = True) -> torch.Tensor:
    """Symmetric fake quantization of ``x`` with ``amax`` broadcast against it; ``narrow``
    clamps to [-q, q] (weights), otherwise to [-q - 1, q] as ONNX/TensorRT ``QuantizeLinear``
    saturates activations."""
    qmax = 2 ** (bits - 1) - 1
    scale = torch.clamp(amax, min=1e-12) / qmax
    return torch.clamp(torch.round(x / scale), -qmax - (0 if narrow else 1), qmax) * scale


def quantize_weight(weight: torch.Tensor, bits: int, block_size: int | None = None) -> torch.Tensor:
    """Per-output-channel (dim 0) or, with ``block_size``, per-block along the input (dim 1)."""
    if block_size is None:
        amax = weight.abs().flatten(1).amax(dim=1).view(-1, *([1] * (weight.dim() - 1)))
        return fake_quant(weight, amax, bits)
    out_features, in_features = weight.shape
    blocks = weight.reshape(out_features, in_features // block_size, block_size)
    qmax = 2 ** (bits - 1) - 1
    scale = (torch.clamp(blocks.abs().amax(dim=2, keepdim=True), min=1e-12) / qmax).half().float()  # fp16 scales
    return (torch.clamp(torch.round(blocks / scale), -qmax, qmax) * scale).reshape_as(weight)


class TensorQuantizer(nn.Module):
    """Fake-quantizes a tensor: ``bits`` (None = fp16 rounding), per-tensor ``amax`` or per-axis."""

    def __init__(self, bits: int | None, axis: str, amax: float | None = None, block_size: int | None = None):
        super().__init__()
        self.bits, self.axis, self.block_size = bits, axis, block_size
        self.register_buffer("amax", torch.tensor(float(amax)) if amax is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x.half().to(x.dtype)
        return fake_quant(x, self.amax.to(x.dtype), self.bits, narrow=self.axis != "per-tensor")

    def extra_repr(self) -> str:
        if self.bits is None:
            return "fp16"
        amax = f", amax={float(self.amax):.4f}" if self.amax is not None else ""
        block = f", block={self.block_size}" if self.block_size else ""
        return f"{self.bits} bit, {self.axis}{block}{amax}"


def quantize_layer(layer: nn.Module, fmt: QuantFormat, act_amax: float | None, block_size: int,
                   fp16_activations: bool = True):
    """Fake-quantize ``layer`` in place: its weight now, its input (and, computing in fp16, its
    output) on every call. Returns the hooks' handles (empty for fp32, which changes nothing)."""
    if fmt.name == "fp32":
        return []
    weight = layer.weight.data
    if fmt.w_bits is None:
        layer.weight_quantizer = TensorQuantizer(None, "per-tensor")
        layer.weight.data = weight.half().float()
    elif fmt.blockwise:
        layer.weight_quantizer = TensorQuantizer(fmt.w_bits, "per-block", block_size=block_size)
        layer.weight.data = quantize_weight(weight, fmt.w_bits, block_size)
    else:
        layer.weight_quantizer = TensorQuantizer(fmt.w_bits, "per-channel(0)")
        layer.weight.data = quantize_weight(weight, fmt.w_bits)
    if fmt.a_bits is None and not fp16_activations:
        return []  # weights only: ONNX Runtime's CPU arithmetic
    if fmt.a_bits is None:
        layer.input_quantizer = TensorQuantizer(None, "per-tensor")
    else:
        layer.input_quantizer = TensorQuantizer(fmt.a_bits, "per-tensor", amax=act_amax)
    handles = [layer.register_forward_pre_hook(lambda module, args: (module.input_quantizer(args[0]), *args[1:]))]
    if fmt.a_bits is None:  # fp16 compute: the output is fp16 too
        handles.append(layer.register_forward_hook(lambda module, args, output: output.half().to(output.dtype)))
    return handles


@contextmanager
def layer_quantized(layer: nn.Module, fmt: QuantFormat, act_amax: float | None, block_size: int):
    """``layer`` fake-quantized inside the ``with`` block and exactly as before after it."""
    weight = layer.weight.data.clone()
    handles = quantize_layer(layer, fmt, act_amax, block_size)
    try:
        yield layer
    finally:
        layer.weight.data = weight
        for handle in handles:
            handle.remove()
        if handles:
            del layer.weight_quantizer, layer.input_quantizer


def quant_summary(model: nn.Module) -> str:
    """One line per quantized layer: name, weight quantizer, input quantizer."""
    rows = [
        f"{name:<70} w: {module.weight_quantizer.extra_repr():<32} in: {module.input_quantizer.extra_repr()}"
        for name, module in model.named_modules()
        if hasattr(module, "weight_quantizer")
    ]
    return "\n".join(rows) if rows else "(no quantized layers)"
