"""Rotary position encoding in real arithmetic (cos/sin), for graphs that cannot hold complex numbers.

sam2's ``RoPEAttention`` rotates adjacent channel pairs (x[2i], x[2i+1]) of queries and keys
by complex multiplication with ``freqs_cis`` (``torch.polar``). Neither ONNX exporter handles
complex tensors, so here the same rotation is written with the real and imaginary parts:

    (a, b) -> (a cos t - b sin t, a sin t + b cos t)

``rope_tables`` gives cos/sin per token (``[L, D]``, each angle repeated for its pair),
``rotate_pairs`` applies them: ``x * cos + swap(x) * sin`` with ``swap(a, b) = (-b, a)``, and
``rotate_memory_keys`` rotates a cross-attention key sequence of several memory frames.

>>> import torch
>>> from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
>>> freqs = compute_axial_cis(dim=8, end_x=2, end_y=2)
>>> q = torch.randn(1, 1, 4, 8)
>>> cos, sin = rope_tables(freqs)
>>> expected, _ = apply_rotary_enc(q, q, freqs)
>>> torch.allclose(rotate_pairs(q, cos, sin), expected, atol=1e-6)
True
"""

from __future__ import annotations

import torch


def rope_tables(freqs_cis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[L, D]`` for sam2's complex ``freqs_cis`` ``[L, D/2]``."""
    cos = freqs_cis.real.repeat_interleave(2, dim=-1)
    sin = freqs_cis.imag.repeat_interleave(2, dim=-1)
    return cos, sin


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[..., L, D]`` by the angles of ``cos``/``sin`` ``[L, D]``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    swapped = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(x.shape)
    return x * cos + swapped * sin


def rotate_memory_keys(k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, memories: int) -> torch.Tensor:
    """Keys ``[..., memories * L + P, D]``: each of the ``memories`` frames of ``L`` tokens rotated
    by the same ``[L, D]`` tables (sam2's ``rope_k_repeat``), the last ``P`` tokens (object
    pointers, sam2's ``num_k_exclude_rope``) left as they are. The frames are rotated through a
    reshape, so no tiled table is stored in an exported graph."""
    tokens = cos.shape[0] * memories
    frames = k[..., :tokens, :].reshape(*k.shape[:-2], memories, cos.shape[0], k.shape[-1])
    rotated = rotate_pairs(frames, cos, sin).reshape(*k.shape[:-2], tokens, k.shape[-1])
    return torch.cat([rotated, k[..., tokens:, :]], dim=-2)
