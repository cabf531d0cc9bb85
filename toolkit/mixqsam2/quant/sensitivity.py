"""Measured sensitivity: how far the model's outputs move when one layer is quantized.

The paper weighs layers by WAIS, a statistic of the layer alone, and our default multiplies
it by each format's expected noise-to-signal ratio. A layer's real cost is how much of its
error reaches the masks, through everything downstream of it (and, in video, through the
memories it helps write). :func:`measure_format_errors` measures that directly:

1. ``forward_loop(model)`` runs once unquantized while every call of the mask decoder's
   ``predict_masks`` is recorded: the probabilities (sigmoid of the logits) of all its
   masks, the predicted IoUs and the object-score probability. These are the raw
   predictions, before sam2 picks one mask or gates an absent object: those are thresholds
   that the smallest change (even fp16 rounding) flips on borderline cases, and a flip is
   as likely under one format as under another, so it would only add noise.
2. For each layer and candidate format it runs again with only that layer fake-quantized.
   The distortion D_l(f) is the mean squared difference from the unquantized run per
   decoder call, summed over the three outputs. Video clips run through the tracker, so a
   changed mask also changes the memory written from it.

``calibrate --importance measured`` minimizes sum_l D_l(f_l), the plan's output
distortion under the assumption that the layers' effects add (first order), in place of
sum_l WAIS_l x NSR_l(f_l). fp16 costs 0: it is the reference every format is weighed
against (TensorRT runs the unquantized layers in fp16). The price is one pass of the
sensitivity data per layer and non-fp16 format.

>>> import torch
>>> from torch import nn
>>> class Decoder(nn.Module):  # stands in for sam2's mask decoder
...     def predict_masks(self, y):
...         return y, y[:, :1], None, y[:, :1]
>>> class Toy(nn.Module):  # two layers feeding the decoder
...     def __init__(self):
...         super().__init__()
...         self.big, self.small = nn.Linear(4, 4), nn.Linear(4, 4)
...         self.sam_mask_decoder = Decoder()
...     def forward(self, x):
...         return self.sam_mask_decoder.predict_masks(self.big(x) + 0.01 * self.small(x))
>>> toy, x = Toy(), torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
>>> errors = measure_format_errors(toy, {"big": toy.big, "small": toy.small},
...                                {"big": {"int8": 3.0}, "small": {"int8": 3.0}}, 128, lambda m: m(x))
>>> errors["big"]["int8"] > 100 * errors["small"]["int8"]
True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from tqdm import tqdm


class OutputDistortion:
    """How far a model's raw mask-decoder predictions move from a reference run of ``forward_loop``.

    Built once on the reference model (its outputs are recorded, in call order);
    :meth:`measure` runs ``forward_loop`` on a perturbed model (the same model with a hook,
    or a modified copy) and returns the mean squared difference per decoder call, summed
    over mask probabilities, predicted IoUs and object-score probabilities.
    """

    def __init__(self, model: nn.Module, forward_loop: Callable) -> None:
        self.forward_loop = forward_loop
        self.reference: list[tuple[torch.Tensor, ...]] = []
        self._run(model, self.reference.append)
        if not self.reference:
            raise ValueError("the sensitivity data never reached the mask decoder")

    @staticmethod
    def _outputs(output) -> tuple[torch.Tensor, ...]:
        masks, ious, _tokens, object_scores = output
        return (torch.sigmoid(masks.detach().float()), ious.detach().float(), torch.sigmoid(object_scores.detach().float()))

    def _run(self, model: nn.Module, consume: Callable) -> None:
        decoder = model.sam_mask_decoder
        predict_masks = decoder.predict_masks

        def recorded(*args, **kwargs):
            output = predict_masks(*args, **kwargs)
            consume(self._outputs(output))
            return output

        decoder.predict_masks = recorded  # an instance attribute over the class's method
        try:
            with torch.no_grad():
                self.forward_loop(model)
        finally:
            del decoder.predict_masks

    def measure(self, model: nn.Module) -> float:
        """The mean over decoder calls of :meth:`per_call`."""
        errors = self.per_call(model)
        return sum(errors) / len(errors)

    def per_call(self, model: nn.Module) -> list[float]:
        """The squared difference from the reference, call by call."""
        errors: list[float] = []

        def compare(outputs) -> None:
            if len(errors) >= len(self.reference):
                raise RuntimeError("the perturbed run called the mask decoder more often than the reference run")
            errors.append(sum(float((o - r).pow(2).mean()) for o, r in zip(outputs, self.reference[len(errors)])))

        self._run(model, compare)
        if len(errors) != len(self.reference):
            raise RuntimeError("the perturbed run called the mask decoder fewer times than the reference run")
        return errors


def measure_format_errors(model: nn.Module, layers: dict[str, nn.Module], candidates: dict[str, dict[str, float | None]],
                          block_size: int, forward_loop: Callable) -> dict[str, dict[str, float]]:
    """D_l(f) for every layer and every candidate format but fp16/fp32 (those cost 0);
    ``candidates[name]`` maps a format name to its activation amax. The model is left as it was."""
    from mixqsam2.quant.fake import layer_quantized
    from mixqsam2.quant.formats import get_format

    distortion = OutputDistortion(model, forward_loop)
    measured = [(name, fmt) for name in layers for fmt in candidates[name] if fmt not in ("fp16", "fp32")]
    errors = {name: {fmt: 0.0 for fmt in candidates[name]} for name in layers}
    for name, fmt in tqdm(measured, desc="measure layer errors", unit="pass"):
        with layer_quantized(layers[name], get_format(fmt), candidates[name][fmt], block_size):
            errors[name][fmt] = distortion.measure(model)
    return errors
