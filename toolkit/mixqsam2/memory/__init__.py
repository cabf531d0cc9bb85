"""Bounded video memory: the memory bank, its full-bank policies, and the streaming tracker.

``bank`` and ``prompts`` are torch-free (the Jetson runtime uses them with NumPy arrays);
``tracker`` (torch + sam2) is imported only where it is used:
``from mixqsam2.memory.tracker import StreamingTracker``.
"""

from mixqsam2.memory.bank import POLICIES, FifoPolicy, MemoryBank, MemoryEntry, make_policy
from mixqsam2.memory.prompts import Prompt

__all__ = ["POLICIES", "FifoPolicy", "MemoryBank", "MemoryEntry", "Prompt", "make_policy"]
