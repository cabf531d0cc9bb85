"""WAIS importance scores and the expected error of each layer under each format.

WAIS (the paper): A_j = sqrt(sum_n X[n, j]^2) over the calibration tokens (``rms``: the mean
instead of the sum), H_ij = |W_ij| * A_j, S_l = mean_ij H_ij; scores are normalized to sum
to 1 over the scored layers. A conv kernel is averaged over its spatial extent first, and
input channel j of a grouped conv is the channel its group reads.

Expected error (ours): the noise-to-signal ratio of the layer's output under a format,

    NSR_l(f) = [ sum_ij (a_j * dW_ij)^2  +  mse_act(f) * sum_ij W_ij^2 ] / sum_ij (a_j * W_ij)^2

with a_j the RMS of input channel j, dW = W - Q_f(W) the weight quantization error
(per-channel int8, blockwise int4, half rounding for fp16, each summed over the kernel for
convs) and mse_act(f) the expected squared error per input element of quantizing the
activations with the calibrated amax (from the histogram; 0 for weight-only formats). It is
the expected squared output error per token divided by the output energy, assuming
uncorrelated input channels: weight error weighted by the energy of the channel it
multiplies (what the OBS saliency behind WAIS says), plus the int8 activation noise that
WAIS ignores. The allocator minimizes sum_l S_l * NSR_l(f): the paper's importance times a
format- and layer-specific error instead of a generic 2^-b.
"""

from __future__ import annotations

import torch
from torch import nn

from mixqsam2.quant.fake import quantize_weight
from mixqsam2.quant.formats import QuantFormat
from mixqsam2.quant.observers import InputObserver


def _per_input_channel(layer: nn.Module, values: torch.Tensor) -> torch.Tensor:
    """Map per-input-channel ``values`` [C_in] onto the weight's [out, in_per_group] grid."""
    weight = layer.weight
    groups = getattr(layer, "groups", 1)
    out_channels, in_per_group = weight.shape[0], weight.shape[1]
    group_of_out = torch.arange(out_channels) // (out_channels // groups)
    index = group_of_out[:, None] * in_per_group + torch.arange(in_per_group)[None, :]
    return values[index]


def _weight_2d(weight: torch.Tensor) -> torch.Tensor:
    """|W| averaged over the kernel: [out, in] for Linear and Conv."""
    return weight.abs().flatten(2).mean(2) if weight.dim() > 2 else weight.abs()


def wais_score(layer: nn.Module, observer: InputObserver, rms: bool = False) -> float:
    """The paper's S_l = mean_ij |W_ij| * A_j (before normalization)."""
    energy = _per_input_channel(layer, observer.channel_energy(rms))
    return float((_weight_2d(layer.weight.detach()) * energy).mean())


def _energy_weighted_sq(layer: nn.Module, weight: torch.Tensor, channel_rms: torch.Tensor) -> float:
    a = _per_input_channel(layer, channel_rms)
    sq = (weight * weight).flatten(2).sum(2) if weight.dim() > 2 else weight * weight
    return float((sq * a * a).sum())


def format_error(layer: nn.Module, observer: InputObserver, fmt: QuantFormat, act_amax: float,
                 block_size: int) -> float:
    """NSR_l(f), see the module docstring."""
    weight = layer.weight.detach().float()
    rms = observer.channel_energy(rms=True)
    signal = _energy_weighted_sq(layer, weight, rms)
    if fmt.name == "fp32" or signal == 0.0:
        return 0.0
    if fmt.w_bits is None:
        quantized = weight.half().float()
    else:
        quantized = quantize_weight(weight, fmt.w_bits, block_size if fmt.blockwise else None)
    error = _energy_weighted_sq(layer, weight - quantized, rms)
    if fmt.a_bits is not None:
        error += observer.quant_mse(act_amax, fmt.a_bits) * float((weight * weight).sum())
    return error / signal
