"""Rotary position encoding in real arithmetic (cos/sin), for graphs that cannot hold complex numbers.

sam2's ``RoPEAttention`` rotates adjacent channel pairs (x[2i], x[2i+1]) of queries and keys
by complex multiplication with ``freqs_cis`` (``torch.polar``). Neither ONNX exporter handles
complex tensors, so here the same rotation is written with the real and imaginary parts:

    (a, b) -> (a cos t - b sin t, a sin t + b cos t)

``rope_tables`` gives cos/sin per token (``[L, D]``, each angle repeated for its pair), and
``rotate_pairs`` applies them: ``x * cos + swap(x) * sin`` with ``swap(a, b) = (-b, a)``.

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


def rope_tables(freqs_cis: torch.Tensor, repeat: int = 1, identity_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[L * repeat + identity_tokens, D]`` for sam2's complex ``freqs_cis`` ``[L, D/2]``.

    ``repeat`` tiles the table (sam2's ``rope_k_repeat``: every memory frame gets the same
    rotation); ``identity_tokens`` rows at the end rotate by 0 (object-pointer tokens, which
    sam2 excludes from RoPE with ``num_k_exclude_rope``).
    """
    cos = freqs_cis.real.repeat_interleave(2, dim=-1).repeat(repeat, 1)
    sin = freqs_cis.imag.repeat_interleave(2, dim=-1).repeat(repeat, 1)
    if identity_tokens:
        cos = torch.cat([cos, cos.new_ones(identity_tokens, cos.shape[1])])
        sin = torch.cat([sin, sin.new_zeros(identity_tokens, sin.shape[1])])
    return cos, sin


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x`` ``[..., L, D]`` by the angles of ``cos``/``sin`` ``[L, D]``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    swapped = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(x.shape)
    return x * cos + swapped * sin
