"""A fixed-capacity bank of non-conditioning memories and the policies that keep it full.

SAM2 attends to its conditioning (prompted) frames plus the memories of the last
``num_maskmem - 1`` frames. Here the non-conditioning memories live in a
:class:`MemoryBank` of fixed capacity; when a new memory arrives and the bank is full, its
*policy* decides what the bank becomes. ``fifo`` drops the oldest entry, which with
capacity ``num_maskmem - 1`` (6 for every official config) is exactly SAM2's behaviour.
``sis`` (the Mix-QSAM2 paper) and ``sis-pair`` (ours) merge similar memories into one
synthesized entry instead (:mod:`mixqsam2.memory.synthesis` specifies the algorithm).

Each entry carries its own temporal position (the frame it came from), and the tracker
builds the attended memory from the entries the bank holds and those positions, never
by looking frames up by index.

>>> bank = MemoryBank(capacity=2, policy=make_policy("fifo"))
>>> for t in range(4):
...     bank.add(MemoryEntry(features=None, temporal_pos=float(t), object_score=1.0))
>>> [e.temporal_pos for e in bank.entries]
[2.0, 3.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.memory.synthesis import RULES, SynthesisRule, cosine_gram, select_merge


@dataclass(frozen=True)
class MemoryEntry:
    """One memory: encoded features ``[1, C_mem, h, w]`` and object pointer ``[1, C]`` (torch
    tensors or NumPy arrays), the frame position it stands for (fractional once
    synthesized), its object-score logit, and how many frames it stands for."""

    features: Any
    temporal_pos: float
    object_score: float
    obj_ptr: Any = None
    frames: float = 1.0


class BankPolicy(Protocol):
    name: str
    min_capacity: int

    def insert(self, entries: list[MemoryEntry], new: MemoryEntry, capacity: int) -> list[MemoryEntry]:
        """Return the bank after ``new`` arrives; never longer than ``capacity``."""


class FifoPolicy:
    """SAM2's behaviour: keep the newest ``capacity`` memories."""

    name = "fifo"
    min_capacity = 1

    def insert(self, entries: list[MemoryEntry], new: MemoryEntry, capacity: int) -> list[MemoryEntry]:
        return [*entries, new][-capacity:]


class SynthesisPolicy:
    """SIS: when the bank is full, merge the memories ``rule`` selects into one entry.

    Works on torch tensors or NumPy arrays; the selection is
    :func:`~mixqsam2.memory.synthesis.select_merge` on float32 cosine similarities, the
    merge a weighted sum in float32 stored back in the entries' dtype.
    """

    min_capacity = 2  # a merge needs two older memories

    def __init__(self, rule: SynthesisRule):
        self.rule = rule
        self.name = rule.name

    def insert(self, entries: list[MemoryEntry], new: MemoryEntry, capacity: int) -> list[MemoryEntry]:
        if len(entries) < capacity:
            return [*entries, new]
        candidates = sorted(entries, key=lambda e: e.temporal_pos)  # stable: ties keep bank order
        vectors = np.stack([_numpy_f32(e.features).ravel() for e in [*candidates, new]])
        scores = np.array([e.object_score for e in candidates], np.float32)
        counts = np.array([e.frames for e in candidates], np.float32)
        chosen, weights = select_merge(cosine_gram(vectors), scores, counts, self.rule)
        selected = [candidates[i] for i in chosen]
        merged = MemoryEntry(
            features=_weighted_sum([e.features for e in selected], weights),
            temporal_pos=float(sum(w * np.float32(e.temporal_pos) for w, e in zip(weights, selected))),
            object_score=float(sum(w * np.float32(e.object_score) for w, e in zip(weights, selected))),
            obj_ptr=_weighted_sum([e.obj_ptr for e in selected], weights) if new.obj_ptr is not None else None,
            frames=float(counts[chosen].sum()),
        )
        kept = [e for i, e in enumerate(candidates) if i not in set(chosen.tolist())]
        return [*kept, merged, new]


def _numpy_f32(array) -> np.ndarray:
    if isinstance(array, np.ndarray):
        return array.astype(np.float32)
    return array.detach().float().cpu().numpy()  # a torch tensor


def _weighted_sum(arrays: list, weights: np.ndarray):
    """sum_i weights[i] * arrays[i] in float32, returned in the arrays' own type and dtype."""
    if isinstance(arrays[0], np.ndarray):
        return sum(w * a.astype(np.float32) for w, a in zip(weights, arrays)).astype(arrays[0].dtype)
    total = sum(float(w) * a.float() for w, a in zip(weights, arrays))
    return total.to(arrays[0].dtype)


POLICIES: dict[str, Any] = {
    "fifo": FifoPolicy,
    "sis": lambda: SynthesisPolicy(RULES["sis"]),
    "sis-pair": lambda: SynthesisPolicy(RULES["sis-pair"]),
}


def make_policy(name: str) -> BankPolicy:
    """Instantiate a bank policy by name (``fifo``, ``sis``, ``sis-pair``)."""
    if name not in POLICIES:
        raise UserInputError(f"unknown memory policy '{name}'; choose one of: {', '.join(POLICIES)}")
    return POLICIES[name]()


def check_capacity(capacity: int, policy: BankPolicy | None = None) -> None:
    """A bank holds at least one memory (two for SIS); anything less is a user error."""
    minimum = policy.min_capacity if policy is not None else 1
    if capacity < minimum:
        which = f" with memory policy '{policy.name}'" if policy is not None and minimum > 1 else ""
        raise UserInputError(f"memory capacity must be at least {minimum}{which}, got {capacity}")


class MemoryBank:
    """Non-conditioning memories of one tracked object, at most ``capacity`` of them."""

    def __init__(self, capacity: int, policy: BankPolicy):
        check_capacity(capacity, policy)
        self.capacity = capacity
        self.policy = policy
        self._entries: list[MemoryEntry] = []

    @property
    def entries(self) -> tuple[MemoryEntry, ...]:
        """The held memories, oldest temporal position first."""
        return tuple(self._entries)

    def add(self, entry: MemoryEntry) -> None:
        entries = self.policy.insert(self._entries, entry, self.capacity)
        if len(entries) > self.capacity:
            raise RuntimeError(f"policy '{self.policy.name}' overfilled the bank ({len(entries)} > {self.capacity})")
        self._entries = sorted(entries, key=lambda e: e.temporal_pos)

    def nbytes(self) -> int:
        """Bytes held by the entries' feature and pointer tensors/arrays."""
        return sum(_nbytes(e.features) + _nbytes(e.obj_ptr) for e in self._entries)


def _nbytes(array) -> int:
    if array is None:
        return 0
    if hasattr(array, "nbytes"):
        return int(array.nbytes)
    return array.numel() * array.element_size()
