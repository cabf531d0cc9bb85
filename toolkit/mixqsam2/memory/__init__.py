"""Bounded video memory: the bank-update rules, prompts, and the streaming tracker.

``synthesis`` (the fixed-capacity bank and its policies ``fifo``, ``prune``, ``sis``,
``sis-pair``), ``prompts`` and ``tracker`` import only NumPy: the Jetson runtime uses them
without torch or sam2. The torch backend comes from :mod:`mixqsam2.models.graphs`.
"""

from mixqsam2.memory.prompts import Prompt
from mixqsam2.memory.synthesis import RULES

__all__ = ["RULES", "Prompt"]
