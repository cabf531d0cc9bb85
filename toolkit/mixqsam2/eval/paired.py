"""Paired comparison of two methods scored on the same units (images, objects, videos).

Two quantized models evaluated on the same held-out set share most of their errors, so
the question "is A better than B" is about the per-unit differences, not about two
independent means. :func:`paired_difference` gives the mean difference A - B and a
percentile-bootstrap confidence interval that resamples whole units;
:func:`replicated_difference` does the same over replicate pairs (A and B trained at several
seeds), resampling the pairs too.

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


def replicated_difference(pairs: list[tuple[dict[str, float], dict[str, float]]], confidence: float = 0.95,
                          resamples: int = 4000, seed: int = 0) -> dict:
    """A - B over replicate pairs (e.g. a model and its control, trained at several seeds), on the
    units every pair scored: ``mean`` of the per-unit differences averaged over the pairs, and
    a two-level percentile bootstrap (``low``, ``high``) that resamples pairs, then units, so that
    pairs disagreeing with each other widen the interval as units do. With two pairs it is crude
    (each resample draws the same pair twice half the time); ``units`` and ``pairs`` count them.

    >>> seed1 = ({"x": 0.9, "y": 0.8}, {"x": 0.8, "y": 0.7})   # A ahead by 0.1 on both units
    >>> seed2 = ({"x": 0.5, "y": 0.6}, {"x": 0.6, "y": 0.7})   # behind by 0.1 on both
    >>> d = replicated_difference([seed1, seed2])
    >>> round(d["mean"], 3), round(d["low"], 3), round(d["high"], 3), d["units"], d["pairs"]
    (0.0, -0.1, 0.1, 2, 2)
    """
    units = sorted(set.intersection(*(set(a) & set(b) for a, b in pairs)))
    if not units:
        raise ValueError("the pairs share no unit")
    diff = np.array([[a[u] - b[u] for u in units] for a, b in pairs])
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(pairs), size=(resamples, len(pairs), 1))
    cols = rng.integers(0, len(units), size=(resamples, 1, len(units)))
    means = diff[rows, cols].mean(axis=(1, 2))
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high), "units": len(units),
            "pairs": len(pairs)}
