"""Measured sensitivity: how far the model's outputs move per unit of noise in one layer.

The paper weighs layers by WAIS, a statistic of the layer alone. A layer's real importance
is how much of its error reaches the masks, through everything downstream of it (and, in
video, through the memories it helps write). :func:`measure_gains` measures that directly:

1. ``forward_loop(model)`` runs once clean while a hook records every call of the mask
   decoder: the mask probabilities (sigmoid of its logits), the predicted IoUs and the
   object-score probability.
2. For each layer it runs again with seeded Gaussian noise added to that layer's output,
   at a noise-to-signal ratio ``nsr`` (noise variance = ``nsr`` x the output's mean
   square, per call). The distortion D_l is the mean squared difference from the clean
   run, summed over the three outputs; video clips run through the tracker, so a disturbed
   mask also disturbs the memory written from it.
3. The gain is G_l = D_l / nsr.

To first order a format that leaves noise-to-signal ratio NSR_l(f) at the layer's output
(:func:`mixqsam2.quant.scores.format_error`) costs G_l x NSR_l(f), and the costs of
different layers add. ``calibrate --importance measured`` therefore minimizes
sum_l G_l x NSR_l(f_l), the expected output distortion of the whole plan, in place of
sum_l WAIS_l x NSR_l(f_l). It costs one pass of the sensitivity data per layer.

>>> import torch
>>> from torch import nn
>>> class Toy(nn.Module):  # two layers feeding a stand-in "mask decoder"
...     def __init__(self):
...         super().__init__()
...         self.big, self.small = nn.Linear(4, 4), nn.Linear(4, 4)
...         self.sam_mask_decoder = nn.Identity()
...     def forward(self, x):
...         y = self.big(x) + 0.01 * self.small(x)
...         return self.sam_mask_decoder((y, y[:, :1], y[:, :1], y[:, :1]))
>>> toy = Toy()
>>> gains = measure_gains(toy, {"big": toy.big, "small": toy.small}, lambda m: m(torch.randn(64, 4, generator=torch.Generator().manual_seed(0))))
>>> gains["big"] > 100 * gains["small"]
True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from tqdm import tqdm


class OutputDistortion:
    """How far a model's mask-decoder outputs move from a reference run of ``forward_loop``.

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
        handle = model.sam_mask_decoder.register_forward_hook(lambda module, args, output: consume(self._outputs(output)))
        try:
            with torch.no_grad():
                self.forward_loop(model)
        finally:
            handle.remove()

    def measure(self, model: nn.Module) -> float:
        errors: list[float] = []

        def compare(outputs) -> None:
            if len(errors) >= len(self.reference):
                raise RuntimeError("the perturbed run called the mask decoder more often than the reference run")
            errors.append(sum(float((o - r).pow(2).mean()) for o, r in zip(outputs, self.reference[len(errors)])))

        self._run(model, compare)
        if len(errors) != len(self.reference):
            raise RuntimeError("the perturbed run called the mask decoder fewer times than the reference run")
        return sum(errors) / len(errors)


def _noise_hook(nsr: float, seed: int):
    generator: dict[torch.device, torch.Generator] = {}

    def hook(module, args, output: torch.Tensor) -> torch.Tensor:
        if output.device not in generator:
            generator[output.device] = torch.Generator(device=output.device).manual_seed(seed)
        noise = torch.randn(output.shape, generator=generator[output.device], device=output.device, dtype=output.dtype)
        return output + noise * torch.sqrt(nsr * output.detach().pow(2).mean())

    return hook


def measure_gains(model: nn.Module, layers: dict[str, nn.Module], forward_loop: Callable, nsr: float = 1e-3,
                  seed: int = 0) -> dict[str, float]:
    """G_l per layer name (see the module docstring); the model is left unchanged."""
    distortion = OutputDistortion(model, forward_loop)
    gains = {}
    for index, (name, layer) in enumerate(tqdm(layers.items(), desc="measure sensitivity", unit="layer")):
        noise = layer.register_forward_hook(_noise_hook(nsr, seed + index))
        try:
            gains[name] = distortion.measure(model) / nsr
        finally:
            noise.remove()
    return gains
