"""Streaming activation statistics of a layer's input, collected by forward hooks.

Per layer: the per-input-channel sum of squares and token count (WAIS needs the channel
energy), and a histogram of |x| for the int8 range (amax by ``max``, ``percentile`` or
``mse``). Nothing is stored per token: the histogram has a fixed number of bins and doubles
its range (merging bin pairs) when a larger value arrives.

>>> import torch
>>> obs = InputObserver(channel_axis=-1)
>>> obs.update(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
>>> obs.channel_sumsq.tolist(), obs.tokens, obs.amax("max")
([9.0, 16.0], 2, 4.0)
"""

from __future__ import annotations

import numpy as np
import torch

from mixqsam2.quant.config import AMAX_METHODS

BINS = 2048


class InputObserver:
    def __init__(self, channel_axis: int, percentile: float = 99.99):
        self.channel_axis = channel_axis
        self.percentile = percentile
        self.channel_sumsq: torch.Tensor | None = None
        self.tokens = 0
        self.hist = np.zeros(BINS, np.float64)
        self.range = 0.0  # upper edge of the histogram

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        channels = x.movedim(self.channel_axis, -1).reshape(-1, x.shape[self.channel_axis])
        sumsq = (channels * channels).sum(0)
        self.channel_sumsq = sumsq if self.channel_sumsq is None else self.channel_sumsq + sumsq
        self.tokens += channels.shape[0]
        self._histogram(channels.abs().flatten())

    def _histogram(self, values: torch.Tensor) -> None:
        top = float(values.max()) if values.numel() else 0.0
        if top <= 0.0:
            self.hist[0] += values.numel()
            return
        if self.range == 0.0:
            self.range = top
        while top > self.range:  # double the range: bin pairs merge into the lower half
            self.hist = np.concatenate([self.hist.reshape(-1, 2).sum(1), np.zeros(BINS // 2)])
            self.range *= 2
        counts = torch.histc(values, bins=BINS, min=0.0, max=self.range)
        self.hist += counts.double().cpu().numpy()

    def channel_energy(self, rms: bool = False) -> torch.Tensor:
        """WAIS's A_j: sqrt(sum_n x_nj^2), or with ``rms`` sqrt(mean_n x_nj^2)."""
        return torch.sqrt(self.channel_sumsq / self.tokens) if rms else torch.sqrt(self.channel_sumsq)

    def amax(self, method: str, bits: int = 8) -> float:
        """Activation range: the largest |x|, a percentile of |x|, or the MSE-optimal clip."""
        edges = np.linspace(0.0, self.range, BINS + 1)
        nonzero = np.flatnonzero(self.hist)
        if nonzero.size == 0:
            return 0.0
        if method == "max":
            return float(edges[nonzero[-1] + 1])
        if method == "percentile":
            cdf = np.cumsum(self.hist) / self.hist.sum()
            return float(edges[np.searchsorted(cdf, self.percentile / 100) + 1])
        if method == "mse":
            candidates = edges[1:][edges[1:] >= edges[nonzero[-1] + 1] * 0.1]
            errors = [self.quant_mse(a, bits) for a in candidates[:: max(1, candidates.size // 256)]]
            return float(candidates[:: max(1, candidates.size // 256)][int(np.argmin(errors))])
        raise ValueError(f"unknown amax method {method!r}; use one of {AMAX_METHODS}")

    def quant_mse(self, amax: float, bits: int) -> float:
        """Expected squared error per element of symmetric ``bits`` quantization with ``amax``
        (clipping error above amax, uniform rounding noise step^2/12 below)."""
        centers = (np.arange(BINS) + 0.5) * self.range / BINS
        step = amax / (2 ** (bits - 1) - 1)
        err = np.where(centers > amax, (centers - amax) ** 2, step * step / 12)
        return float((self.hist * err).sum() / self.hist.sum())
