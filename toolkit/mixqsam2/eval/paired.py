"""Paired comparison of two methods scored on the same units (images, objects, videos).

Two quantized models evaluated on the same held-out set share most of their errors, so
the question "is A better than B" is about the per-unit differences, not about two
independent means. :func:`paired_difference` gives the mean difference A - B and a
percentile-bootstrap confidence interval that resamples whole units.

>>> a = {"x": 0.9, "y": 0.8, "z": 0.7}
>>> b = {"x": 0.8, "y": 0.7, "z": 0.6}
>>> d = paired_difference(a, b)
>>> round(d["mean"], 3), round(d["low"], 3), round(d["high"], 3), d["units"]
(0.1, 0.1, 0.1, 3)
"""

from __future__ import annotations

import numpy as np


def paired_difference(a: dict[str, float], b: dict[str, float], confidence: float = 0.95, resamples: int = 4000,
                      seed: int = 0) -> dict:
    """``{"mean", "low", "high", "units"}`` of a[u] - b[u] over the units both scored."""
    units = sorted(set(a) & set(b))
    if not units:
        raise ValueError("the two results share no unit")
    diff = np.array([a[u] - b[u] for u in units])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "units": len(units)}
