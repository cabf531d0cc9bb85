"""Memory-bank updates (FIFO, SIS synthesis, pruning): the algorithm, in torch-free NumPy.

This module is the specification the PyTorch bank policy, the NumPy (ONNX Runtime) path and
the CUDA kernel in ``plugins/sis/`` all implement. It imports only NumPy.

The bank (one tracked object) is a fixed-capacity tensor of ``K`` slots:

========== =============== ===============================================================
field      shape / dtype   meaning
========== =============== ===============================================================
features   [K, HW, C]      memory-encoder output of the slot (flattened spatial tokens)
pointers   [K, P]          object pointer of the slot
positions  [K] float32     temporal position (frame index; fractional once synthesized)
scores     [K] float32     object-score logit
counts     [K] float32     how many frames the slot stands for (1 = a raw memory)
valid      [K] bool        slot holds a memory
========== =============== ===============================================================

Conditioning (prompted) frames are never in the bank, so they are never merged.

``sis_update(bank, new, rule)``, where ``new`` is the memory of the newest frame:

1. If a slot is free, ``new`` is written into the first free slot. Nothing is merged, so
   until the bank is full every rule behaves like FIFO.
   Two rules only drop a memory when the bank is full (no synthesis, so nothing the model
   has not seen in training): ``fifo`` (SAM2) frees the oldest candidate, ``prune``
   (Surgical SAM2's rule) frees the candidate most similar to ``new`` (cosine as in step 2;
   ties: the older). ``new`` then takes the freed slot. The steps below are the merges.
2. Otherwise the *candidates* are the K held memories, ordered by temporal position (ties:
   lower slot first); ``new`` is the *reference*. Each memory is flattened to a vector of
   HW*C values and the cosine similarity of every pair is taken (an (K+1)x(K+1) Gram
   matrix over candidates + reference, computed in float32, norms clamped at 1e-12).
3. Selection and weights (:func:`select_merge`):

   - ``sis`` (the paper): s_i = cos(F_i, F_ref) for every candidate; the ``top_k`` (default 3;
     at most K) with the largest s_i are selected (ties: older first) and weighted
     w = softmax(s_sel / temperature) (temperature 1 in the paper).
   - ``sis-pair`` (ours): the pair of candidates (i < j) with the largest cos(F_i, F_j) is
     selected (ties: the pair with the oldest members first, lexicographically), with
     weights w_i proportional to counts_i * (sigmoid(scores_i) + 1e-3): a synthesized slot
     counts for all the frames it holds (the result is their running mean, so old
     content is not washed out by repeated merges), and a memory in which the object was
     not seen weighs little.
4. The synthesized memory: every field is the weighted sum of the selected slots' field
   (features, pointers, scores, positions; accumulated in float32, stored in the bank's
   dtype), ``counts`` is their sum. It is written into
   the selected slot with the oldest position; the other selected slots are freed; ``new``
   is written into the first free slot (lowest index). ``sis`` with top_k = 3 thus leaves
   K-1 memories, ``sis-pair`` always K.

The tracker maps a (possibly fractional) position to the temporal encoding slot
round(now - position) clipped to [1, num_maskmem - 1], exactly as for raw memories.

>>> import numpy as np
>>> bank = empty_bank(capacity=3, tokens=1, channels=2, pointer_dim=2)
>>> for t, f in enumerate([[1, 0], [0, 1], [1, 0.1], [0, 1]]):
...     bank = sis_update(bank, entry([f], [0, 0], position=t, score=5.0), RULES["sis-pair"])
>>> bank.positions.tolist(), bank.counts.tolist()  # frames 0 and 2 were alike: merged
([1.0, 1.0, 3.0], [2.0, 1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORM_EPS = 1e-12
CONFIDENCE_FLOOR = 1e-3


@dataclass(frozen=True)
class SynthesisRule:
    """How a full bank is updated. ``kind``: "drop-oldest" (fifo), "drop-most-similar"
    (prune), "topk-to-newest" (the paper's SIS, ``top_k`` >= 2) or "closest-pair" (ours)."""

    name: str
    kind: str
    top_k: int = 3
    temperature: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown bank-update kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.kind == "topk-to-newest" and self.top_k < 2:
            raise ValueError(f"top_k must be at least 2 (a merge of one memory frees no slot), got {self.top_k}")

    @property
    def merges(self) -> bool:
        """Whether a full bank synthesizes entries (otherwise it drops one)."""
        return self.kind in ("topk-to-newest", "closest-pair")


KINDS = ("drop-oldest", "drop-most-similar", "topk-to-newest", "closest-pair")


RULES = {
    "fifo": SynthesisRule("fifo", "drop-oldest"),
    "prune": SynthesisRule("prune", "drop-most-similar"),
    "sis": SynthesisRule("sis", "topk-to-newest", top_k=3, temperature=1.0),
    "sis-pair": SynthesisRule("sis-pair", "closest-pair"),
}


@dataclass(frozen=True)
class MemoryArrays:
    """One memory or a bank of them (leading slot axis), as NumPy arrays; see module docstring."""

    features: np.ndarray
    pointers: np.ndarray
    positions: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    valid: np.ndarray


def empty_bank(capacity: int, tokens: int, channels: int, pointer_dim: int, dtype=np.float32) -> MemoryArrays:
    """A bank of ``capacity`` free slots."""
    return MemoryArrays(
        features=np.zeros((capacity, tokens, channels), dtype),
        pointers=np.zeros((capacity, pointer_dim), dtype),
        positions=np.zeros(capacity, np.float32),
        scores=np.zeros(capacity, np.float32),
        counts=np.zeros(capacity, np.float32),
        valid=np.zeros(capacity, bool),
    )


def entry(features, pointer, position: float, score: float) -> MemoryArrays:
    """The memory of one frame (a bank of one slot): ``features`` [HW, C], ``pointer`` [P]."""
    features = np.asarray(features, np.float32)
    return MemoryArrays(
        features=features[None], pointers=np.asarray(pointer, np.float32)[None],
        positions=np.array([position], np.float32), scores=np.array([score], np.float32),
        counts=np.ones(1, np.float32), valid=np.ones(1, bool),
    )


def cosine_gram(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows of ``vectors`` [n, D] (float32 math)."""
    vectors = vectors.astype(np.float32)
    norms = np.maximum(np.linalg.norm(vectors, axis=1), NORM_EPS)
    unit = vectors / norms[:, None]
    return unit @ unit.T


def select_merge(gram: np.ndarray, scores: np.ndarray, counts: np.ndarray, rule: SynthesisRule):
    """Which candidates merge and with what weights.

    ``gram``: (n+1)x(n+1) cosine similarities of the n candidates (oldest first) and, last,
    the reference (the newest memory). ``scores``/``counts``: the candidates' object-score
    logits and frame counts. Returns (indices into the candidates, float32 weights summing to 1).

    >>> gram = np.array([[1, .2, .9], [.2, 1, .1], [.9, .1, 1]], np.float32)
    >>> select_merge(gram, np.zeros(2), np.ones(2), RULES["sis"])[0].tolist()
    [0, 1]
    """
    n = gram.shape[0] - 1
    if rule.kind == "topk-to-newest":
        to_ref = gram[:n, n].astype(np.float32)
        order = np.argsort(-to_ref, kind="stable")  # stable: ties keep the older first
        chosen = np.sort(order[: min(rule.top_k, n)])
        logits = to_ref[chosen] / np.float32(rule.temperature)
        weights = np.exp(logits - logits.max())
    elif rule.kind == "closest-pair":
        i, j = np.triu_indices(n, k=1)
        best = int(np.argmax(gram[i, j]))  # first maximum = lexicographically oldest pair
        chosen = np.array([i[best], j[best]])
        confidence = 1.0 / (1.0 + np.exp(-np.asarray(scores, np.float32)[chosen])) + CONFIDENCE_FLOOR
        weights = np.asarray(counts, np.float32)[chosen] * confidence
    else:
        raise ValueError(f"{rule.name!r} drops memories; it does not merge them")
    return chosen, (weights / weights.sum()).astype(np.float32)


def select_drop(gram: np.ndarray, rule: SynthesisRule) -> int:
    """Which candidate (index, oldest first) a dropping rule frees; ``gram`` as in :func:`select_merge`.

    >>> gram = np.array([[1, .2, .9], [.2, 1, .1], [.9, .1, 1]], np.float32)
    >>> select_drop(gram, RULES["fifo"]), select_drop(gram, RULES["prune"])
    (0, 0)
    """
    if rule.kind == "drop-oldest":
        return 0
    if rule.kind == "drop-most-similar":
        return int(np.argmax(gram[:-1, -1]))  # first maximum: the older of equals
    raise ValueError(f"{rule.name!r} merges memories; it does not drop them")


def sis_update(bank: MemoryArrays, new: MemoryArrays, rule: SynthesisRule) -> MemoryArrays:
    """The bank after the newest memory ``new`` (one slot) arrives; ``bank`` is not modified."""
    free = np.flatnonzero(~bank.valid)
    if free.size:
        return _write(bank, int(free[0]), new, 0)
    slots = np.lexsort((np.arange(bank.valid.size), bank.positions))  # candidates, oldest first
    if rule.kind == "drop-oldest":
        return _write(bank, int(slots[0]), new, 0)
    vectors = np.concatenate([bank.features[slots], new.features]).reshape(slots.size + 1, -1)
    if not rule.merges:
        return _write(bank, int(slots[select_drop(cosine_gram(vectors), rule)]), new, 0)
    chosen, weights = select_merge(cosine_gram(vectors), bank.scores[slots], bank.counts[slots], rule)
    selected = slots[chosen]  # chosen is sorted by age, so selected[0] is the oldest
    merged = _weighted(bank, selected, weights)
    bank = _write(bank, int(selected[0]), merged, 0)  # fresh arrays: safe to edit in place
    bank.valid[selected[1:]] = False
    return _write(bank, int(np.flatnonzero(~bank.valid)[0]), new, 0)


def _weighted(bank: MemoryArrays, slots: np.ndarray, weights: np.ndarray) -> MemoryArrays:
    def wsum(values):  # float32 accumulation, stored in the bank's dtype
        w = weights.reshape((-1,) + (1,) * (values.ndim - 1))
        return (w * values[slots].astype(np.float32)).sum(axis=0, keepdims=True).astype(values.dtype)

    return MemoryArrays(
        features=wsum(bank.features), pointers=wsum(bank.pointers), positions=wsum(bank.positions),
        scores=wsum(bank.scores), counts=bank.counts[slots].sum(keepdims=True), valid=np.ones(1, bool),
    )


def _write(bank: MemoryArrays, slot: int, source: MemoryArrays, index: int) -> MemoryArrays:
    fields = {}
    for name in ("features", "pointers", "positions", "scores", "counts", "valid"):
        values = getattr(bank, name).copy()
        values[slot] = getattr(source, name)[index]
        fields[name] = values
    return MemoryArrays(**fields)
