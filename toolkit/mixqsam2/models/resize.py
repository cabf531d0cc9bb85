"""Bilinear resizing exactly as ``torch.nn.functional.interpolate`` does it, in NumPy.

sam2 resizes masks with ``F.interpolate(mode="bilinear", align_corners=False)``, with
``antialias=True`` when it shrinks a prompt mask. The host side of the pipeline must do the
same without torch, so each axis is a matrix of PyTorch's interpolation weights
(half-pixel centres; with antialias, a triangle filter widened by the scale factor, as
ATen's ``_upsample_bilinear2d_aa``), applied as ``rows @ x @ cols.T``.

>>> import numpy as np
>>> resize(np.array([[0.0, 1.0]], np.float32), (1, 4)).round(3).tolist()
[[0.0, 0.25, 0.75, 1.0]]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def interpolation_matrix(in_size: int, out_size: int, antialias: bool = False) -> np.ndarray:
    """[out_size, in_size] float32 weights of PyTorch's bilinear interpolation along one axis."""
    scale = in_size / out_size
    if antialias and scale > 1.0:
        return _triangle_weights(in_size, out_size, scale)
    weights = np.zeros((out_size, in_size), np.float32)
    # float32 arithmetic, as ATen computes the source coordinate for float tensors
    source = np.maximum(np.float32(scale) * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    low = np.minimum(np.floor(source).astype(int), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = (source - low).astype(np.float32)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights


def _triangle_weights(in_size: int, out_size: int, scale: float) -> np.ndarray:
    """ATen's antialiased bilinear weights when shrinking: support ``scale``, normalized rows."""
    weights = np.zeros((out_size, in_size), np.float32)
    for i in range(out_size):
        center = scale * (i + 0.5)
        first = max(int(center - scale + 0.5), 0)
        last = min(int(center + scale + 0.5), in_size)
        taps = np.arange(first, last)
        w = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) / scale))
        weights[i, first:last] = w / w.sum()
    return weights


def resize(array: np.ndarray, size: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """Resize the last two axes of ``array`` to ``size`` (height, width), float32."""
    rows = interpolation_matrix(array.shape[-2], size[0], antialias)
    cols = interpolation_matrix(array.shape[-1], size[1], antialias)
    return (rows @ array.astype(np.float32) @ cols.T).astype(np.float32)
