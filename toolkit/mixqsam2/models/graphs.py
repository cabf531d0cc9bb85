"""SAM2's per-frame computation as five fixed-shape graphs built from sam2's own modules.

These modules are what the torch backend runs and what :mod:`mixqsam2.export` writes as
ONNX, so ONNX Runtime and TensorRT execute exactly the computation that is tested against
sam2's ``SAM2VideoPredictor``. Every weight is sam2's (the graphs hold the ``SAM2Base`` and
call its submodules); what is ours is the shape of each graph:

- ``memory_attention`` reads a fixed-capacity bank ``[N, K, HW, C_mem]`` with a validity
  mask and a temporal slot per entry, plus a fixed number of object-pointer tokens with
  their own validity mask, so one graph serves every fill level: invalid entries are masked
  out of the attention (an additive -inf-like bias), never removed. RoPE is applied with
  real cos/sin tables (:mod:`mixqsam2.models.rope`): sam2's complex-number RoPE does not export.
- ``mask_decoder`` returns all four mask candidates, their IoUs, the object score and a
  pointer per output token; choosing among them is host code
  (:func:`~mixqsam2.models.graph_config.choose_masks`), as sam2 does after its decoder.
- every per-object graph takes a batch of N objects; the image features are shared.
- ``sis_update`` is the bank update of :mod:`mixqsam2.memory.synthesis` in standard tensor
  ops (comparisons, matmuls, argmax, where), batched over objects.

Shapes (pico; hiera_t at 1024 px in brackets): image_embed ``[1, 64 (256), 16 (64), 16 (64)]``,
high_res_feat0/1 ``[1, 8 (32), 64 (256), 64 (256)]`` / ``[1, 16 (64), 32 (128), 32 (128)]``,
memories ``[HW = 256 (4096), C_mem = 32 (64)]``, pointers ``[C = 64 (256)]`` attended as
``C / C_mem`` tokens each.

>>> from mixqsam2.models import build_model  # doctest: +SKIP
>>> graphs = TorchGraphs(build_model("pico"), capacity=6)  # doctest: +SKIP
>>> out = graphs.run("image_encoder", {"image": image})  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import get_1d_sine_pe
from torch import nn

from mixqsam2.errors import UserInputError
from mixqsam2.memory.synthesis import NORM_EPS, RULES, SynthesisRule
from mixqsam2.models.graph_config import GRAPH_IO, GraphConfig, whole_memories
from mixqsam2.models.rope import rope_tables, rotate_memory_keys, rotate_pairs

MASKED = -1e4  # attention bias of an invalid key: exp(-1e4) is 0 in float32, and it fits float16
NO_OBJ_SCORE = -1024.0  # sam2's mask logit where the object is not present


def graph_config(model) -> GraphConfig:
    """The host-side settings of a ``SAM2Base``."""
    decoder = model.sam_mask_decoder
    size = model.sam_image_embedding_size
    return GraphConfig(
        image_size=model.image_size, hidden_dim=model.hidden_dim, mem_dim=model.mem_dim,
        num_maskmem=model.num_maskmem, feature_size=(size, size),
        max_obj_ptrs_in_encoder=model.max_obj_ptrs_in_encoder,
        multimask_output_in_sam=model.multimask_output_in_sam,
        multimask_output_for_tracking=model.multimask_output_for_tracking,
        multimask_min_pt_num=model.multimask_min_pt_num, multimask_max_pt_num=model.multimask_max_pt_num,
        use_multimask_token_for_obj_ptr=model.use_multimask_token_for_obj_ptr,
        dynamic_multimask_via_stability=decoder.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=decoder.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=decoder.dynamic_multimask_stability_thresh,
        fill_hole_area=int(getattr(model, "fill_hole_area", 0)),
    )


def check_supported(model) -> None:
    """The graphs cover the settings of sam2's released configs; refuse others loudly."""
    required = {
        "use_high_res_features_in_sam": True, "use_mask_input_as_output_without_sam": True,
        "directly_add_no_mem_embed": True, "use_obj_ptrs_in_encoder": True, "pred_obj_scores": True,
        "non_overlap_masks_for_mem_enc": False,
    }
    wrong = [f"{k}={getattr(model, k)!r}" for k, v in required.items() if getattr(model, k) != v]
    if model.num_feature_levels != 3:
        wrong.append(f"num_feature_levels={model.num_feature_levels}")
    if wrong:
        raise NotImplementedError(f"the per-frame graphs do not cover this SAM2 config: {', '.join(wrong)}")


class ImageEncoderGraph(nn.Module):
    """image [1, 3, S, S] (normalized) -> image_embed, high_res_feat0, high_res_feat1."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        fpn = self.model.forward_image(image)["backbone_fpn"]  # conv_s0/s1 already applied
        return fpn[-1], fpn[0], fpn[1]


class MemoryAttentionGraph(nn.Module):
    """Current features conditioned on a fixed-capacity memory bank and object pointers.

    Inputs (N objects, K bank slots, P pointer slots): image_embed [1, C, h, w];
    cond_features [N, 1, HW, C_mem] (the prompted frame's memory, temporal slot
    ``num_maskmem - 1``); bank_features [N, K, HW, C_mem], bank_valid [N, K] bool,
    bank_slot [N, K] int64 (index into ``maskmem_tpos_enc``); pointers [N, P, C],
    pointer_valid [N, P] bool, pointer_tpos [N, P] (frame distance / (max_obj_ptrs - 1)).
    Output: conditioned [N, C, h, w].

    ``memory_pool`` B > 1 attends to the bank's older memories at 1/B of their resolution per
    side; the conditioning memory and the newest bank memory (the smallest temporal slot) stay
    whole. Each B x B block of an older memory's keys (after RoPE, at their own positions) and
    values is averaged into one key and value, whose attention logit gets + log(B^2), so that
    it weighs as the B^2 tokens it stands for (exactly what attending to the B^2 tokens would
    give if they all equalled their mean; values are pooled before their projection, which is
    linear). The attention products over those K - 1 memories cost 1/B^2.
    """

    def __init__(self, model, capacity: int, memory_pool: int = 1):
        super().__init__()
        self.model = model
        h = w = model.sam_image_embedding_size
        check_memory_pool(memory_pool, h)
        self.memory_pool, self.capacity = memory_pool, capacity
        self.whole = whole_memories(capacity, memory_pool)  # leading memories attended whole
        self.tokens = h * w
        self.split = model.hidden_dim // model.mem_dim  # a pointer is `split` tokens of C_mem
        self.num_pointers = model.max_obj_ptrs_in_encoder + capacity
        # registered buffers (persistent: the exporter then writes each once as an initializer;
        # non-persistent ones become a Constant node per use, 140 MB for hiera_t)
        pos = model.image_encoder.neck.position_encoding(torch.zeros(1, model.hidden_dim, h, w))
        self.register_buffer("image_pos", pos.flatten(2).permute(0, 2, 1))  # [1, HW, C]
        mem_pos = model.memory_encoder.position_encoding(torch.zeros(1, model.mem_dim, h, w))
        self.register_buffer("memory_pos", mem_pos.flatten(2).permute(0, 2, 1)[:, None])
        self.memories = 1 + capacity  # the conditioning memory + the bank
        self._register_rope(model)

    def _register_rope(self, model):
        """cos/sin tables of the frame's tokens, one pair per distinct attention shape (in sam2's
        configs every layer shares one): a graph for hiera_t at 1024 px would otherwise carry
        hundreds of MB of identical tables."""
        side = model.sam_image_embedding_size
        self._rope_names = {}
        for index, layer in enumerate(model.memory_attention.layers):
            for kind, attention in (("self", layer.self_attn), ("cross", layer.cross_attn_image)):
                cos, sin = rope_tables(attention.compute_cis(end_x=side, end_y=side))
                name = next((n for n in set(self._rope_names.values()) if torch.equal(getattr(self, f"{n}_cos"), cos)
                             and torch.equal(getattr(self, f"{n}_sin"), sin)), None)
                if name is None:
                    name = f"rope{len(set(self._rope_names.values()))}"
                    self.register_buffer(f"{name}_cos", cos)
                    self.register_buffer(f"{name}_sin", sin)
                self._rope_names[(kind, index)] = name

    def _rope(self, kind: str, index: int):
        name = self._rope_names[(kind, index)]
        return getattr(self, f"{name}_cos"), getattr(self, f"{name}_sin")

    def forward(self, image_embed, cond_features, bank_features, bank_valid, bank_slot,
                pointers, pointer_valid, pointer_tpos):
        model, n = self.model, cond_features.shape[0]
        side = model.sam_image_embedding_size
        memory, memory_pos, key_valid = self._memory_tokens(cond_features, bank_features, bank_valid, bank_slot)
        ptr, ptr_pos, ptr_valid = self._pointer_tokens(pointers, pointer_valid, pointer_tpos)
        memory = torch.cat([memory, ptr], dim=1)
        memory_pos = torch.cat([memory_pos, ptr_pos], dim=1)
        key_bias = self._key_bias(key_valid, ptr_valid)

        curr = image_embed.flatten(2).permute(0, 2, 1)  # [1, HW, C]
        output = curr + 0.1 * self.image_pos if model.memory_attention.pos_enc_at_input else curr
        output = output.expand(n, -1, -1)
        for index, layer in enumerate(model.memory_attention.layers):
            output = self._layer(index, layer, output, memory, memory_pos, key_bias)
        output = model.memory_attention.norm(output)
        return output.permute(0, 2, 1).reshape(n, model.hidden_dim, side, side)

    def _memory_tokens(self, cond_features, bank_features, bank_valid, bank_slot):
        n = cond_features.shape[0]
        if self.memory_pool > 1:
            bank_features, bank_valid, bank_slot = _newest_first(bank_features, bank_valid, bank_slot, self.capacity)
        tpos = self.model.maskmem_tpos_enc[:, 0, 0]  # [num_maskmem, C_mem]
        cond_slot = torch.full_like(bank_slot[:, :1], self.model.num_maskmem - 1)
        slots = torch.cat([cond_slot, bank_slot], dim=1)  # [N, 1 + K]
        memory = torch.cat([cond_features, bank_features], dim=1)  # [N, 1 + K, HW, C_mem]
        memory_pos = self.memory_pos + tpos[slots][:, :, None, :]
        valid = torch.cat([torch.ones_like(bank_valid[:, :1]), bank_valid], dim=1)  # [N, 1 + K]
        return memory.reshape(n, -1, memory.shape[-1]), memory_pos.reshape(n, -1, memory.shape[-1]), valid

    def _key_bias(self, memory_valid, pointer_valid):
        """Additive attention bias [N, 1, 1, keys]: MASKED on invalid keys, + log(B^2) on pooled ones."""
        n, pooled_tokens = memory_valid.shape[0], self.tokens // self.memory_pool**2
        bias = torch.where(memory_valid, 0.0, MASKED)  # [N, 1 + K]
        parts = [bias[:, : self.whole, None].expand(-1, -1, self.tokens).reshape(n, -1)]
        if self.whole < self.memories:
            pooled = bias[:, self.whole :, None] + 2 * math.log(self.memory_pool)
            parts.append(pooled.expand(-1, -1, pooled_tokens).reshape(n, -1))
        parts.append(torch.where(pointer_valid, 0.0, MASKED))
        return torch.cat(parts, dim=1)[:, None, None, :]

    def _pointer_tokens(self, pointers, pointer_valid, pointer_tpos):
        model, n = self.model, pointers.shape[0]
        tokens = pointers.reshape(n, -1, model.mem_dim)  # pointer p -> tokens p*split ... p*split+split-1
        if model.add_tpos_enc_to_obj_ptrs:
            dim = model.hidden_dim if model.proj_tpos_enc_in_obj_ptrs else model.mem_dim
            pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(pointer_tpos, dim=dim))  # [N, P, C_mem]
            pos = pos.repeat_interleave(self.split, dim=1)
        else:
            pos = torch.zeros_like(tokens)
        return tokens, pos, pointer_valid.repeat_interleave(self.split, dim=1)

    def _layer(self, index, layer, tgt, memory, memory_pos, key_bias):
        """``MemoryAttentionLayer.forward`` with real RoPE and a key mask, without dropout (off in
        eval; merge-aware training runs this graph too, so it trains memory attention without it)."""
        x = layer.norm1(tgt)
        q = k = x + self.image_pos if layer.pos_enc_at_attn else x
        tgt = tgt + _rope_attention(layer.self_attn, q, k, x, self._rope("self", index), memories=1)
        x = layer.norm2(tgt)
        q = x + self.image_pos if layer.pos_enc_at_cross_attn_queries else x
        k = memory + memory_pos if layer.pos_enc_at_cross_attn_keys else memory
        rope = self._rope("cross", index)
        pool = (self.memory_pool, self.whole) if self.memory_pool > 1 else None
        tgt = tgt + _rope_attention(layer.cross_attn_image, q, k, memory, rope, self.memories, key_bias, pool)
        x = layer.norm3(tgt)
        return tgt + layer.linear2(layer.activation(layer.linear1(x)))


def _rope_attention(attention, q, k, v, rope, memories: int, key_bias=None, pool: tuple[int, int] | None = None):
    """sam2's ``RoPEAttention.forward`` with cos/sin tables (``rope``) and an optional additive
    key bias; the keys are ``memories`` frames of the queries' length, then unrotated tokens.
    ``pool`` (B, whole): the frames after the first ``whole`` are B x B average-pooled, the keys
    after RoPE, the values before their projection; ``key_bias`` is then for the pooled layout."""
    tokens = rope[0].shape[0]
    if pool:
        v = _pool_frames(v[:, None], tokens, pool[1], memories, pool[0])[:, 0]
    q = attention._separate_heads(attention.q_proj(q), attention.num_heads)
    k = attention._separate_heads(attention.k_proj(k), attention.num_heads)
    v = attention._separate_heads(attention.v_proj(v), attention.num_heads)
    q, k = rotate_pairs(q, *rope), rotate_memory_keys(k, *rope, memories)
    if pool:
        k = _pool_frames(k, tokens, pool[1], memories, pool[0])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
    return attention.out_proj(attention._recombine_heads(out))


def _pool_frames(x, tokens: int, whole: int, memories: int, pool: int):
    """x [N, heads, memories * tokens + P, d] (square frames, row-major) -> the first ``whole``
    frames and the last P tokens as they are, the other frames ``pool`` x ``pool`` average-pooled."""
    n, heads, _, d = x.shape
    side, start, end, frames = math.isqrt(tokens), whole * tokens, memories * tokens, memories - whole
    # one axis at a time: a mean over two strided axes at once is ~10x slower on CPU
    columns = x[:, :, start:end].reshape(n, heads, frames, side, side // pool, pool, d).mean(dim=5)
    pooled = columns.reshape(n, heads, frames, side // pool, pool, side // pool, d).mean(dim=4)
    return torch.cat([x[:, :, :start], pooled.reshape(n, heads, -1, d), x[:, :, end:]], dim=2)


def _newest_first(features, valid, slot, capacity: int):
    """The bank [N, K, ...] (K = ``capacity``) reordered so that the newest valid memory (the
    smallest temporal slot; ties: the lower bank index) comes first, the others after it in
    bank-index order; a bank with no valid memory keeps its order. Exact (a gather on the
    flattened N*K axis), static shapes, standard ops."""
    n, k = valid.shape[0], capacity
    index = torch.arange(k, device=valid.device)
    age_rank = torch.where(valid, slot, torch.iinfo(slot.dtype).max // (2 * k)) * k + index  # unique per slot
    newest = age_rank.argmin(-1, keepdim=True)  # [N, 1]
    rest = index[None, :-1] + (index[None, :-1] >= newest).long()  # [N, K - 1]
    flat = (torch.cat([newest, rest], dim=1) + k * torch.arange(n, device=valid.device)[:, None]).reshape(-1)

    def reorder(x):
        return x.reshape(n * k, *x.shape[2:])[flat].reshape(x.shape)

    return reorder(features), reorder(valid.int()).bool(), reorder(slot)


def check_memory_pool(memory_pool: int, side: int) -> None:
    """A pooling factor that divides the side of the memories' token grid.

    >>> check_memory_pool(2, 16)
    >>> check_memory_pool(3, 16)
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: --memory-pool 3 must divide the memory grid's side (16 tokens): one of 1, 2, 4, 8, 16
    """
    if memory_pool < 1:
        raise UserInputError(f"--memory-pool must be at least 1, got {memory_pool}")
    if side % memory_pool:
        divisors = ", ".join(str(b) for b in range(1, side + 1) if side % b == 0)
        raise UserInputError(f"--memory-pool {memory_pool} must divide the memory grid's side ({side} tokens): "
                             f"one of {divisors}")


class MaskDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder + object-pointer head, for N objects.

    Inputs: image_embed [N, C, h, w] (memory-conditioned, or image + ``no_mem_embed`` on a
    prompted frame); high_res_feat0/1 [1, ...]; point_coords [N, P, 2] in model pixels and
    point_labels [N, P] int32 (sam2's convention: box = labels 2, 3; -1 = no point);
    mask_input [N, 1, S, S] with mask_input_valid [N] bool (a mask prompt: it goes through
    ``mask_downsample`` as in sam2's ``_use_mask_as_output``). Outputs: masks [N, 4, 4h, 4w]
    (logits; -1024 where the object score says absent), ious [N, 4], object_score [N, 1],
    pointers [N, 4, C] (one per output token, mixed with ``no_obj_ptr`` as sam2 does).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embed, high_res_feat0, high_res_feat1, point_coords, point_labels,
                mask_input, mask_input_valid):
        model = self.model
        encoder = model.sam_prompt_encoder
        sparse, dense = encoder(points=(point_coords, point_labels), boxes=None, masks=None)
        dense_from_mask = encoder.mask_downscaling(model.mask_downsample(mask_input))
        dense = torch.where(mask_input_valid[:, None, None, None], dense_from_mask, dense)
        masks, ious, tokens, object_score = model.sam_mask_decoder.predict_masks(
            image_embeddings=image_embed, image_pe=encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            repeat_image=False, high_res_features=[high_res_feat0, high_res_feat1],
        )
        appearing = object_score > 0  # [N, 1]
        masks = torch.where(appearing[:, :, None, None], masks.float(), NO_OBJ_SCORE)
        pointers = model.obj_ptr_proj(tokens)
        weight = (object_score.sigmoid() if model.soft_no_obj_ptr else appearing.float())[:, :, None]
        if model.fixed_no_obj_ptr:
            pointers = weight * pointers
        pointers = pointers + (1 - weight) * model.no_obj_ptr
        return masks, ious, object_score, pointers


class MemoryEncoderGraph(nn.Module):
    """image_embed [1, C, h, w] (raw backbone features) + chosen mask logits [N, 1, 4h, 4w],
    object_score [N, 1], mask_from_prompt [N] bool -> memory_features [N, HW, C_mem].

    ``SAM2Base._encode_new_memory``; the features are rounded to bfloat16, as sam2 stores them.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embed, mask_logits, object_score, mask_from_prompt):
        model = self.model
        size = (model.image_size, model.image_size)
        high_res = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
        soft = high_res.sigmoid()
        if model.binarize_mask_from_pts_for_mem_enc:  # prompted frames: the mask the user sees
            soft = torch.where(mask_from_prompt[:, None, None, None], (high_res > 0).float(), soft)
        mask = soft * model.sigmoid_scale_for_mem_enc + model.sigmoid_bias_for_mem_enc
        features = model.memory_encoder(image_embed, mask, skip_mask_sigmoid=True)["vision_features"]
        if model.no_obj_embed_spatial is not None:
            absent = 1 - (object_score > 0).float()
            features = features + absent[:, :, None, None] * model.no_obj_embed_spatial[:, :, None, None]
        features = features.to(torch.bfloat16).float()
        return features.flatten(2).permute(0, 2, 1)


class BankUpdateGraph(nn.Module):
    """``sis_update`` of :mod:`mixqsam2.memory.synthesis` for N banks at once, in standard ops.

    Inputs/outputs as ``GRAPH_IO["sis_update"]``: bank fields [N, K, ...] (valid bool) and the
    newest memory per object; returns the updated bank fields. Every branch is computed and
    the result picked with ``where``, so the graph has static shapes and no control flow.
    """

    def __init__(self, rule: SynthesisRule):
        super().__init__()
        self.rule = rule

    def forward(self, bank_features, bank_pointers, bank_positions, bank_scores, bank_counts, bank_valid,
                new_features, new_pointer, new_position, new_score):
        n, k = bank_valid.shape
        slots = torch.arange(k, device=bank_valid.device)
        # age rank of every slot: position, then slot index (the spec's lexsort)
        older = (bank_positions[:, None, :] < bank_positions[:, :, None]) | (
            (bank_positions[:, None, :] == bank_positions[:, :, None]) & (slots[None, :] < slots[:, None])
        )
        rank = older.sum(-1)  # [N, K], 0 = oldest
        unit = _unit(bank_features.reshape(n, k, -1))
        to_new = (unit @ _unit(new_features.reshape(n, -1))[:, :, None])[..., 0]  # [N, K]
        bank = (bank_features, bank_pointers, bank_positions, bank_scores, bank_counts)
        new = (new_features, new_pointer, new_position, new_score, torch.ones_like(new_position))
        if self.rule.merges:
            selected, weights = self._select_merge(unit, to_new, rank, bank_scores, bank_counts)
            target = selected & (rank == torch.where(selected, rank, k).amin(-1, keepdim=True))
            merged = [_weighted_sum(field, weights) for field in bank]
            merged[4] = (bank_counts * selected).sum(-1)
            bank = tuple(_put(field, target, value) for field, value in zip(bank, merged))
            full_valid = bank_valid & ~(selected & ~target)
        else:
            target = self._select_drop(to_new, rank)
            full_valid = bank_valid & ~target
        has_free = (~bank_valid).any(-1, keepdim=True)
        valid = (has_free & bank_valid) | (~has_free & full_valid)  # no Where on bool: ONNX Runtime lacks it
        bank = tuple(torch.where(_expand(has_free, old), old, upd) for old, upd in
                     zip((bank_features, bank_pointers, bank_positions, bank_scores, bank_counts), bank))
        first_free = F.one_hot(torch.argmax((~valid).to(torch.int32), dim=-1), k).bool()
        bank = tuple(_put(field, first_free, value) for field, value in zip(bank, new))
        return (*bank, valid | first_free)

    def _select_merge(self, unit, to_new, rank, scores, counts):
        k = rank.shape[-1]
        if self.rule.kind == "topk-to-newest":
            # j beats i: more similar to the newest, or as similar and older (the spec's stable order)
            beats = (to_new[:, None, :] > to_new[:, :, None]) | (
                (to_new[:, None, :] == to_new[:, :, None]) & (rank[:, None, :] < rank[:, :, None])
            )
            selected = beats.sum(-1) < min(self.rule.top_k, k)
            logits = torch.where(selected, to_new / self.rule.temperature, -torch.inf)
            return selected, torch.softmax(logits, dim=-1)
        # closest pair (i older than j), ties: the lexicographically oldest pair in age order
        gram = unit @ unit.transpose(1, 2)
        pair_key = rank[:, :, None] * k + rank[:, None, :]  # row-major position in age order
        candidates = rank[:, :, None] < rank[:, None, :]
        best = torch.where(candidates, gram, -torch.inf).flatten(1).amax(-1)[:, None, None]
        is_best = candidates & (gram == best)
        first = torch.where(is_best, pair_key, k * k).flatten(1).amin(-1)[:, None, None]
        pair = is_best & (pair_key == first)
        selected = pair.any(-1) | pair.any(-2)
        confidence = counts * (torch.sigmoid(scores) + 1e-3)
        weights = torch.where(selected, confidence, 0.0)
        # a bank with free slots is not merged (its result is discarded), but its weights must
        # not be 0/0: training backpropagates through both branches of the final where
        return selected, weights / torch.clamp(weights.sum(-1, keepdim=True), min=1e-30)

    def _select_drop(self, to_new, rank):
        if self.rule.kind == "drop-oldest":
            return rank == 0
        best = to_new.amax(-1, keepdim=True)
        is_best = to_new == best
        return is_best & (rank == torch.where(is_best, rank, rank.shape[-1]).amin(-1, keepdim=True))


def _unit(vectors):
    return vectors / torch.clamp(torch.linalg.vector_norm(vectors, dim=-1, keepdim=True), min=NORM_EPS)


def _expand(mask, like):
    """``mask`` [N, K] (or [N, 1]) broadcast against ``like`` [N, K, ...]."""
    return mask.reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))


def _weighted_sum(field, weights):
    """sum_k weights[n, k] * field[n, k] -> [N, ...]."""
    return (_expand(weights, field) * field).sum(1)


def _put(field, where, value):
    """``field`` with ``value`` [N, ...] written into the slots where ``where`` [N, K] is true."""
    return torch.where(_expand(where, field), value[:, None], field)


class TorchGraphs:
    """Runs the five graphs with PyTorch on NumPy inputs; the reference backend.

    ``run(name, inputs)`` takes and returns ``{tensor name: np.ndarray}`` as ONNX Runtime
    does, so the pipeline is the same for every backend. ``memory_pool``: see
    :class:`MemoryAttentionGraph`. ``sis_update.<policy>`` names the
    bank update of a policy. ``seconds`` accumulates the time spent per graph.
    """

    name = "torch"

    def __init__(self, model, capacity: int, memory_pool: int = 1):
        check_supported(model)
        self.model = model
        self.config = graph_config(model)
        self.capacity, self.memory_pool = capacity, memory_pool
        self.no_mem_embed = model.no_mem_embed.detach().reshape(1, -1, 1, 1).float().cpu().numpy()
        modules = {
            "image_encoder": ImageEncoderGraph(model),
            "memory_attention": MemoryAttentionGraph(model, capacity, memory_pool),
            "mask_decoder": MaskDecoderGraph(model),
            "memory_encoder": MemoryEncoderGraph(model),
            **{f"sis_update.{name}": BankUpdateGraph(rule) for name, rule in RULES.items()},
        }
        # eval mode, so that nothing that restores a graph's mode (torch.onnx.export does) turns
        # the model's dropout on: the wrappers hold the model as a submodule
        self.modules = {name: module.eval().to(model.device) for name, module in modules.items()}
        self.seconds: dict[str, float] = defaultdict(float)

    @torch.inference_mode()
    def run(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        device = self.model.device
        role = name.split(".")[0]
        in_names, out_names = GRAPH_IO[role]
        outputs = self.modules[name](*(torch.from_numpy(np.ascontiguousarray(inputs[k])).to(device) for k in in_names))
        result = {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                  for k, v in zip(out_names, outputs if isinstance(outputs, tuple) else (outputs,))}
        self.seconds[role] += time.perf_counter() - start
        return result
