"""sam2's ``SAM2Train`` with the deployed memory bank in the loop (merge-aware training).

sam2 trains memory attention on the raw memories of the last ``num_maskmem - 1`` frames. A
bank policy that synthesizes memories (``sis``, ``sis-pair``) or keeps old ones (``prune``)
shows memory attention entries it never saw in training. :class:`BankedSAM2Train` keeps,
per tracked object, the fixed-capacity bank of :mod:`mixqsam2.memory.synthesis` while a
clip is tracked, updates it with the graph the deployment runs
(:class:`~mixqsam2.models.graphs.BankUpdateGraph`), and conditions every frame through
:class:`~mixqsam2.models.graphs.MemoryAttentionGraph` with the tracker's memory layout
(:func:`~mixqsam2.models.graph_config.memory_layout`). Everything is differentiable in the
memories: merged features pass their gradient on to the memory encoder. Prompts, decoding,
correction clicks and losses are ``SAM2Train``'s.

Set ``model.bank_rule`` and ``model.bank_capacity`` before each forward (and
``model.bank_memory_pool`` to train reading the bank pooled, as ``--memory-pool`` deploys it); with ``fifo`` at
``num_maskmem - 1`` this is sam2's own memory selection (one conditioning frame, no dropout
in memory attention). Recent object pointers are encoded over the window a stream uses
(``max_obj_ptrs_in_encoder - 1`` frames), where sam2's training uses the clip's length: a
clip of 10 frames would otherwise teach distances in ninths that a deployed stream gives in
fifteenths.

>>> from mixqsam2.train.config import PICO_V2
>>> from mixqsam2.train.loop import build_train_model
>>> model = build_train_model(PICO_V2)  # a BankedSAM2Train
>>> model.bank_rule, model.bank_capacity = RULES["sis"], 3
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from training.model.sam2 import SAM2Train

from mixqsam2.memory.synthesis import RULES
from mixqsam2.models.graph_config import memory_layout
from mixqsam2.models.graphs import BankUpdateGraph, MemoryAttentionGraph, graph_config


@dataclass
class ClipBanks:
    """The banks of all objects of a batch while one clip is tracked (torch tensors [B, K, ...])."""

    cond_frame: int
    cond_features: torch.Tensor  # [B, 1, HW, C_mem]
    cond_pointer: torch.Tensor  # [B, C]
    fields: tuple  # features, pointers, positions, scores, counts, valid
    recent: list = field(default_factory=list)  # (frame, pointer [B, C]), newest last
    added: set = field(default_factory=set)


class BankedSAM2Train(SAM2Train):
    """``SAM2Train`` whose non-prompted frames read memory from a bank run by ``bank_rule``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bank_rule = RULES["fifo"]
        self.bank_capacity = self.num_maskmem - 1
        self.bank_memory_pool = 1
        self._graphs = {}  # a plain dict: the graphs hold the model, they must not be its submodules
        self._config = graph_config(self)  # what the tracker's memory layout reads
        self._banks = None

    def forward(self, input):
        self._banks = None
        try:
            return super().forward(input)
        finally:
            self._banks = None

    def _prepare_memory_conditioned_features(self, frame_idx, is_init_cond_frame, current_vision_feats,
                                             current_vision_pos_embeds, feat_sizes, output_dict, num_frames,
                                             track_in_reverse=False):
        if is_init_cond_frame:
            return super()._prepare_memory_conditioned_features(
                frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes,
                output_dict, num_frames, track_in_reverse)
        banks = self._updated_banks(output_dict, frame_idx)
        (height, width), batch = feat_sizes[-1], current_vision_feats[-1].shape[1]
        image_embed = current_vision_feats[-1].permute(1, 2, 0).reshape(batch, self.hidden_dim, height, width)
        attention = self._graph("attention", (self.bank_capacity, self.bank_memory_pool))
        return attention(image_embed, **self._attention_inputs(banks, frame_idx))

    def _graph(self, kind: str, key):
        if (kind, key) not in self._graphs:
            graph = MemoryAttentionGraph(self, *key) if kind == "attention" else BankUpdateGraph(key)
            self._graphs[(kind, key)] = graph.to(self.device)
        return self._graphs[(kind, key)]

    def _updated_banks(self, output_dict, frame_idx: int) -> ClipBanks:
        if len(output_dict["cond_frame_outputs"]) != 1:
            raise ValueError("merge-aware training prompts one conditioning frame per clip "
                             "(num_init_cond_frames_for_train=1)")
        if self._banks is None:
            self._banks = self._empty_banks(output_dict["cond_frame_outputs"])
        banks, update = self._banks, self._graph("update", self.bank_rule)
        window = self.max_obj_ptrs_in_encoder - 1
        for frame in sorted(t for t in output_dict["non_cond_frame_outputs"] if t < frame_idx and t not in banks.added):
            out = output_dict["non_cond_frame_outputs"][frame]
            features = out["maskmem_features"].flatten(2).permute(0, 2, 1)
            position = torch.full((features.shape[0],), float(frame), device=features.device)
            score = out["multistep_object_score_logits"][-1][:, 0].detach()  # SAM2Train's final object score
            banks.fields = update(*banks.fields, features, out["obj_ptr"], position, score)
            banks.recent = [*banks.recent, (frame, out["obj_ptr"])][-window:]
            banks.added.add(frame)
        return banks

    def _empty_banks(self, cond_outputs: dict) -> ClipBanks:
        (cond_frame, out), = cond_outputs.items()
        features = out["maskmem_features"].flatten(2).permute(0, 2, 1)  # [B, HW, C_mem]
        batch, capacity = features.shape[0], self.bank_capacity
        zeros = features.new_zeros
        fields = (zeros(batch, capacity, *features.shape[1:]), zeros(batch, capacity, self.hidden_dim),
                  zeros(batch, capacity), zeros(batch, capacity), zeros(batch, capacity),
                  torch.zeros(batch, capacity, dtype=torch.bool, device=features.device))
        return ClipBanks(cond_frame, features[:, None], out["obj_ptr"], fields)

    def _attention_inputs(self, banks: ClipBanks, frame_idx: int) -> dict:
        features, pointers, positions, _, counts, valid = banks.fields
        window = self.max_obj_ptrs_in_encoder - 1
        merged = (valid & (counts > 1)).cpu().numpy()
        layouts = [memory_layout(self._config, frame_idx, banks.cond_frame, [t for t, _ in banks.recent],
                                 row_positions, row_merged, window)
                   for row_positions, row_merged in zip(positions.detach().cpu().numpy(), merged)]
        recent = [p for _, p in reversed(banks.recent)]  # newest first, padded to the window
        recent += [torch.zeros_like(banks.cond_pointer)] * (window - len(recent))
        all_pointers = torch.cat([banks.cond_pointer[:, None], torch.stack(recent, 1), pointers], 1)

        def stacked(name, dtype):
            return torch.from_numpy(np.stack([getattr(layout, name) for layout in layouts])).to(self.device, dtype)

        return {
            "cond_features": banks.cond_features, "bank_features": features, "bank_valid": valid,
            "bank_slot": stacked("bank_slot", torch.long), "pointers": all_pointers,
            "pointer_valid": stacked("pointer_valid", torch.bool), "pointer_tpos": stacked("pointer_tpos", torch.float32),
        }
