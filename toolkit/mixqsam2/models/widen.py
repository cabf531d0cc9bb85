"""Widen a pico's image-encoder trunk 2x without changing what it computes (Net2Net-style).

Every trunk channel is split in two copies that carry its value. A weight that reads a split
channel is shared between the two copies as ``w/2 + n`` and ``w/2 - n``: the sum is the old
weight, and the random ``n`` lets the copies learn apart. LayerNorm over duplicated channels
sees the same mean and variance, GELU and max-pooling act per channel, and each attention
head keeps its count but doubles its width, so its query is scaled by 1/sqrt(2) to keep the
dot product's scale. The wide trunk's features are the narrow one's, duplicated, and the
neck reads them back: the model's masks are unchanged until training moves them.

This starts a wider pico (``train-pico --embed 64 --init pico.pt``) from a trained narrow one
instead of from scratch.

>>> channel_copies(4, heads=2).tolist()  # two heads of 2 channels -> two heads of 4
[0, 1, 0, 1, 2, 3, 2, 3]
"""

from __future__ import annotations

import math

import numpy as np

from mixqsam2.errors import UserInputError

TRUNK = "image_encoder.trunk."
NECK_CONVS = "image_encoder.neck.convs."


def channel_copies(width: int, heads: int = 1):
    """For a feature of ``width`` channels in ``heads`` heads, the narrow channel each of the
    wide feature's ``2 * width`` channels copies: each head's channels, then again."""
    import torch

    head = width // heads
    within = torch.cat([torch.arange(head), torch.arange(head)])
    return (torch.arange(heads)[:, None] * head + within[None]).flatten()


def _split_columns(weight, copies, noise: float, rng: np.random.Generator):
    """``weight[:, copies] / 2`` plus a noise that cancels between each column pair."""
    import torch

    wide = weight[:, copies] / 2
    pairs = torch.argsort(copies, stable=True).view(-1, 2)
    scale = noise * float(wide.std())
    shape = (weight.shape[0], pairs.shape[0], *weight.shape[2:])
    jitter = torch.from_numpy(rng.normal(0.0, scale, shape).astype(np.float32)).to(weight.dtype)
    wide[:, pairs[:, 0]] += jitter
    wide[:, pairs[:, 1]] -= jitter
    return wide


def _linear(state, name, rows, columns, noise, rng, row_scale=None):
    """The wide weight/bias of linear ``name``: rows copied (``rows``: the narrow row of each
    wide row), columns split (``columns``: likewise), rows times ``row_scale`` if given."""
    weight = _split_columns(state[name + ".weight"][rows], columns, noise, rng)
    bias = state[name + ".bias"][rows]
    if row_scale is not None:
        weight, bias = weight * row_scale[:, None], bias * row_scale
    return {name + ".weight": weight, name + ".bias": bias}


def _block(state, prefix, block, noise, rng):
    """The wide parameters of one Hiera ``MultiScaleBlock`` (``block``: its wide module)."""
    import torch

    dim, dim_out, heads = block.dim // 2, block.dim_out // 2, block.attn.num_heads
    stream_in, stream_out = channel_copies(dim), channel_copies(dim_out)
    hidden = channel_copies(state[prefix + "mlp.layers.0.bias"].shape[0])
    attended = channel_copies(dim_out, heads)
    qkv_rows = torch.cat([part * dim_out + attended for part in range(3)])
    q_scale = torch.ones(len(qkv_rows))
    q_scale[: 2 * dim_out] = 1 / math.sqrt(2)  # each head's dot product now spans twice the channels
    out = {}
    for norm, copies in (("norm1", stream_in), ("norm2", stream_out)):
        out.update({f"{prefix}{norm}.{p}": state[f"{prefix}{norm}.{p}"][copies] for p in ("weight", "bias")})
    out.update(_linear(state, prefix + "attn.qkv", qkv_rows, stream_in, noise, rng, row_scale=q_scale))
    out.update(_linear(state, prefix + "attn.proj", stream_out, attended, noise, rng))
    out.update(_linear(state, prefix + "mlp.layers.0", hidden, stream_out, noise, rng))
    out.update(_linear(state, prefix + "mlp.layers.1", stream_out, hidden, noise, rng))
    if block.dim != block.dim_out:
        out.update(_linear(state, prefix + "proj", stream_out, stream_in, noise, rng))
    return out


def widen_pico(narrow: dict, noise: float = 0.1, seed: int = 0) -> dict:
    """The state dict of a pico twice as wide as ``narrow`` (a pico state dict) that computes
    what ``narrow`` computes (see :func:`widened_state_dict`).

    >>> from mixqsam2.models import PICO_CHECKPOINT, pico_width, read_checkpoint
    >>> pico_width(widen_pico(read_checkpoint(PICO_CHECKPOINT)))
    64
    """
    from mixqsam2.models import build_pico_variant, pico_width

    return widened_state_dict(build_pico_variant(2 * pico_width(narrow)), narrow, noise, seed)


def widened_state_dict(model, narrow: dict, noise: float = 0.1, seed: int = 0) -> dict:
    """A state dict for ``model`` (a SAM2 whose Hiera trunk is twice as wide as the one of
    ``narrow``, with the same head counts: ``pico_overrides`` keeps them) that computes what
    ``narrow`` computes. ``noise``: std of the cancelling split noise, relative to the std of
    each halved weight. Keys outside the trunk and the neck's input convs are taken as they are.

    >>> from mixqsam2.models import PICO_CHECKPOINT, build_pico_variant, read_checkpoint
    >>> wide = build_pico_variant(64)
    >>> wide.load_state_dict(widened_state_dict(wide, read_checkpoint(PICO_CHECKPOINT)))
    <All keys matched successfully>
    """
    trunk = model.image_encoder.trunk
    width = narrow[TRUNK + "patch_embed.proj.weight"].shape[0]
    if trunk.patch_embed.proj.weight.shape[0] != 2 * width:
        raise UserInputError(f"cannot widen a trunk {width} wide to {trunk.patch_embed.proj.weight.shape[0]}: "
                             f"widening doubles it (give --embed {2 * width})")
    rng = np.random.default_rng(seed)
    stream = channel_copies(width)
    wide = dict(narrow)
    wide[TRUNK + "patch_embed.proj.weight"] = narrow[TRUNK + "patch_embed.proj.weight"][stream]
    wide[TRUNK + "patch_embed.proj.bias"] = narrow[TRUNK + "patch_embed.proj.bias"][stream]
    for name in ("pos_embed", "pos_embed_window"):
        wide[TRUNK + name] = narrow[TRUNK + name][:, stream]
    for index, block in enumerate(trunk.blocks):
        wide.update(_block(narrow, f"{TRUNK}blocks.{index}.", block, noise, rng))
    for index in range(len(model.image_encoder.neck.convs)):
        name = f"{NECK_CONVS}{index}.conv.weight"
        wide[name] = _split_columns(narrow[name], channel_copies(narrow[name].shape[1]), noise, rng)
    return wide
