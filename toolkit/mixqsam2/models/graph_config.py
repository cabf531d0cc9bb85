"""What the per-frame pipeline needs to know about a model's graphs (torch-free).

SAM2's per-frame computation runs as five graphs (``image_encoder``, ``memory_attention``,
``mask_decoder``, ``memory_encoder``, ``sis_update``; :mod:`mixqsam2.models.graphs` builds
them from sam2's modules, :mod:`mixqsam2.export` writes them as ONNX). Everything around
them — prompts, the memory bank, object pointers, choosing among mask candidates — is host
code that reads a :class:`GraphConfig`: from the sam2 model (torch backend) or from an
export's ``manifest.json`` (ONNX Runtime / TensorRT backends, no torch).

>>> config = GraphConfig(image_size=256, hidden_dim=64, mem_dim=32, num_maskmem=7, feature_size=(16, 16))
>>> config.low_res_size, config.pointer_slots(capacity=6)
(64, 22)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

# graph name -> (input names, output names); per-object graphs have a leading num_objects dim
GRAPH_IO = {
    "image_encoder": (("image",), ("image_embed", "high_res_feat0", "high_res_feat1")),
    "memory_attention": (
        ("image_embed", "cond_features", "bank_features", "bank_valid", "bank_slot",
         "pointers", "pointer_valid", "pointer_tpos"),
        ("conditioned",),
    ),
    "mask_decoder": (
        ("image_embed", "high_res_feat0", "high_res_feat1", "point_coords", "point_labels",
         "mask_input", "mask_input_valid"),
        ("masks", "ious", "object_score", "pointers"),
    ),
    "memory_encoder": (("image_embed", "mask_logits", "object_score", "mask_from_prompt"), ("memory_features",)),
    "sis_update": (
        ("bank_features", "bank_pointers", "bank_positions", "bank_scores", "bank_counts", "bank_valid",
         "new_features", "new_pointer", "new_position", "new_score"),
        ("bank_features_out", "bank_pointers_out", "bank_positions_out", "bank_scores_out",
         "bank_counts_out", "bank_valid_out"),
    ),
}
BANK_FIELDS = ("features", "pointers", "positions", "scores", "counts", "valid")


@dataclass(frozen=True)
class GraphConfig:
    """A SAM2 model's settings that the host side of the pipeline reads (names as in ``SAM2Base``)."""

    image_size: int
    hidden_dim: int
    mem_dim: int
    num_maskmem: int
    feature_size: tuple[int, int]  # (h, w) of the lowest-resolution features (stride 16)
    max_obj_ptrs_in_encoder: int = 16
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = False
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = False
    dynamic_multimask_via_stability: bool = False
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    fill_hole_area: int = 0

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's mask logits (a quarter of the model input)."""
        return self.image_size // 4

    @property
    def memory_tokens(self) -> int:
        return self.feature_size[0] * self.feature_size[1]

    def pointer_slots(self, capacity: int) -> int:
        """Object-pointer inputs of memory attention: conditioning + recent frames + bank entries."""
        return self.max_obj_ptrs_in_encoder + capacity

    def attended_keys(self, capacity: int, memory_pool: int = 1) -> int:
        """Keys per query of memory attention's cross-attention: the memories read whole, the
        pooled ones (:func:`whole_memories`) and the pointer tokens.

        >>> GraphConfig(image_size=256, hidden_dim=64, mem_dim=32, num_maskmem=7, feature_size=(16, 16)).attended_keys(6, 2)
        876
        """
        whole = whole_memories(capacity, memory_pool)
        pooled = self.memory_tokens // memory_pool**2 * (1 + capacity - whole)
        return self.memory_tokens * whole + pooled + self.pointer_slots(capacity) * (self.hidden_dim // self.mem_dim)

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """sam2's ``SAM2Base._use_multimask`` (``num_points`` = 0 without point prompts)."""
        return (
            self.multimask_output_in_sam
            and (is_init_cond_frame or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num
        )

    def to_json(self) -> dict:
        return {**asdict(self), "feature_size": list(self.feature_size)}

    @classmethod
    def from_json(cls, data: dict) -> GraphConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "feature_size": tuple(values["feature_size"])})


@dataclass(frozen=True)
class MemoryLayout:
    """Where one object's memories go in memory attention's inputs (see :func:`memory_layout`)."""

    bank_slot: np.ndarray  # [K] int64, index into maskmem_tpos_enc
    pointer_valid: np.ndarray  # [P] bool
    pointer_tpos: np.ndarray  # [P] float32


def whole_memories(capacity: int, memory_pool: int) -> int:
    """How many of memory attention's 1 + ``capacity`` memories it reads at full resolution:
    all, or with ``memory_pool`` > 1 the conditioning memory and the newest bank memory."""
    return min(2, 1 + capacity) if memory_pool > 1 else 1 + capacity


def memory_layout(config: GraphConfig, now: int, cond_frame: int, recent_frames: list[int],
                  bank_positions: np.ndarray, bank_merged: np.ndarray, window: int) -> MemoryLayout:
    """Temporal encodings and pointer validity of one object's memories on frame ``now``.

    Pointer slots (``pointer_slots(K)``): 0 holds the conditioning frame's pointer, 1..R the
    recent frames' (newest first, R = ``max_obj_ptrs_in_encoder - 1``), R+1.. one per bank
    slot, valid where the entry is synthesized (``bank_merged``; a raw entry's pointer is
    already among the recent ones). Attention sums over its keys, so only validity and the
    temporal encoding matter: tpos = frame distance / ``window`` (a synthesized entry's
    distance clipped to the window). A bank entry at ``position`` takes the temporal slot
    round(now - position) - 1, clipped to the ``num_maskmem - 1`` slots of past memories.
    The tracker and merge-aware training (:mod:`mixqsam2.train.banked`) both use this.

    >>> config = GraphConfig(image_size=256, hidden_dim=64, mem_dim=32, num_maskmem=7, feature_size=(16, 16))
    >>> layout = memory_layout(config, 10, 0, [9, 8], np.array([9.0, 2.5]), np.array([False, True]), 15)
    >>> layout.bank_slot.tolist(), np.flatnonzero(layout.pointer_valid).tolist()
    ([0, 5], [0, 1, 2, 17])
    """
    recent_slots = config.max_obj_ptrs_in_encoder - 1
    valid = np.zeros(1 + recent_slots + len(bank_positions), bool)
    distance = np.zeros(valid.size, np.float32)
    valid[0], distance[0] = True, now - cond_frame
    recent = sorted(recent_frames, reverse=True)[:recent_slots]
    valid[1 : 1 + len(recent)] = True
    distance[1 : 1 + len(recent)] = [now - t for t in recent]
    valid[1 + recent_slots :] = bank_merged
    distance[1 + recent_slots :] = np.minimum(now - np.asarray(bank_positions, np.float32), window)
    slot = np.clip(np.round(now - np.asarray(bank_positions, np.float32)), 1, config.num_maskmem - 1)
    return MemoryLayout(slot.astype(np.int64) - 1, valid, np.where(valid, distance / window, 0).astype(np.float32))


def choose_masks(config: GraphConfig, masks: np.ndarray, ious: np.ndarray, pointers: np.ndarray,
                 multimask: bool) -> tuple[np.ndarray, np.ndarray]:
    """The mask and object pointer sam2 keeps from the decoder's four candidates, per object.

    ``masks`` [N, 4, h, w], ``ious`` [N, 4], ``pointers`` [N, 4, C] (one per output token) ->
    (masks [N, 1, h, w], pointers [N, C]). As sam2's ``MaskDecoder.forward`` +
    ``SAM2Base._forward_sam_heads``: with ``multimask`` the best of tokens 1-3 by predicted
    IoU; otherwise token 0, unless dynamic multimask replaces an unstable token-0 mask by
    the best of 1-3. The pointer comes from token 0 unless ``use_multimask_token_for_obj_ptr``
    (and ``multimask``), then from the chosen token.
    """
    rows = np.arange(masks.shape[0])
    best_of_three = 1 + np.argmax(ious[:, 1:], axis=1)
    if multimask:
        chosen = best_of_three
    elif config.dynamic_multimask_via_stability:
        stable = _stability(masks[:, 0], config.dynamic_multimask_stability_delta) >= config.dynamic_multimask_stability_thresh
        chosen = np.where(stable, 0, best_of_three)
    else:
        chosen = np.zeros_like(best_of_three)
    token = chosen if (multimask and config.use_multimask_token_for_obj_ptr) else np.zeros_like(chosen)
    return masks[rows, chosen][:, None], pointers[rows, token]


def _stability(logits: np.ndarray, delta: float) -> np.ndarray:
    """sam2's stability score: area(logits > delta) / area(logits > -delta), 1 when empty."""
    inner = (logits > delta).reshape(len(logits), -1).sum(1).astype(np.float32)
    outer = (logits > -delta).reshape(len(logits), -1).sum(1).astype(np.float32)
    return np.where(outer > 0, inner / np.maximum(outer, 1), 1.0)
