"""A fixed-capacity bank of non-conditioning memories and the policies that keep it full.

SAM2 attends to its conditioning (prompted) frames plus the memories of the last
``num_maskmem - 1`` frames. Here the non-conditioning memories live in a
:class:`MemoryBank` of fixed capacity; when a new memory arrives and the bank is full, its
*policy* decides what the bank becomes. ``fifo`` drops the oldest entry, which with
capacity ``num_maskmem - 1`` (6 for every official config) is exactly SAM2's behaviour.

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

from mixqsam2.errors import UserInputError


@dataclass(frozen=True)
class MemoryEntry:
    """One memory frame: encoded features ``[1, C_mem, h, w]`` (torch or NumPy), the frame
    position it stands for, and the object-score logit predicted on that frame."""

    features: Any
    temporal_pos: float
    object_score: float


class BankPolicy(Protocol):
    name: str

    def insert(self, entries: list[MemoryEntry], new: MemoryEntry, capacity: int) -> list[MemoryEntry]:
        """Return the bank after ``new`` arrives; never longer than ``capacity``."""


class FifoPolicy:
    """SAM2's behaviour: keep the newest ``capacity`` memories."""

    name = "fifo"

    def insert(self, entries: list[MemoryEntry], new: MemoryEntry, capacity: int) -> list[MemoryEntry]:
        return [*entries, new][-capacity:]


POLICIES: dict[str, type] = {"fifo": FifoPolicy}


def make_policy(name: str) -> BankPolicy:
    """Instantiate a bank policy by name (``fifo``)."""
    if name not in POLICIES:
        raise UserInputError(f"unknown memory policy '{name}'; choose one of: {', '.join(POLICIES)}")
    return POLICIES[name]()


def check_capacity(capacity: int) -> None:
    """A bank holds at least one memory; anything less is a user error."""
    if capacity < 1:
        raise UserInputError(f"memory capacity must be at least 1, got {capacity}")


class MemoryBank:
    """Non-conditioning memories of one tracked object, at most ``capacity`` of them."""

    def __init__(self, capacity: int, policy: BankPolicy):
        check_capacity(capacity)
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
        """Bytes held by the entries' feature tensors/arrays."""
        return sum(_nbytes(e.features) for e in self._entries)


def _nbytes(array) -> int:
    if array is None:
        return 0
    if hasattr(array, "nbytes"):
        return int(array.nbytes)
    return array.numel() * array.element_size()
