"""A per-frame SAM2 tracker with bounded memory, built on sam2's own modules.

sam2's ``SAM2VideoPredictor`` needs the whole video up front and keeps every frame's output
forever. :class:`StreamingTracker` takes one frame at a time and keeps, per object:

- its conditioning memories (one per prompt; the frames the user annotated),
- a :class:`~mixqsam2.memory.bank.MemoryBank` of at most ``capacity`` non-conditioning
  memories, whose full-bank behaviour is a policy (``fifo`` = SAM2),
- the object pointers of the last ``max_obj_ptrs - 1`` frames (SAM2 attends to <= 16).

With an SIS policy (``sis``, ``sis-pair``) a bank entry may be *synthesized* from several
frames: its features, object pointer, score and (fractional) temporal position are
weighted means. Its features are attended at the temporal slot of its rounded position,
and its pointer joins the recent frames' pointers as one more token.

Nothing else survives a frame. The network runs through ``SAM2Base`` methods
(``forward_image``, ``track_step``, ``_forward_sam_heads``, ``_encode_new_memory``) and the
``memory_attention`` module; only the *assembly* of the attended memory is ours
(:meth:`StreamingTracker._attended_memory`), because SAM2 looks memories up by frame index
(t-1 ... t-6) while a bank that merges or keeps older memories must be read from what it
holds, each entry with its own temporal position. With ``fifo`` at capacity
``num_maskmem - 1`` the assembly gives exactly SAM2's tokens (a test compares the masks
with ``SAM2VideoPredictor`` frame by frame).

Shapes (pico at 256 px; official configs at 1024 px in brackets):
image features ``[HW=16*16 (64*64), B=1, C=64 (256)]``; a memory ``[1, C_mem=32 (64), 16, 16]``;
an object pointer ``[1, C]``, split into ``C / C_mem`` tokens of ``C_mem`` when attended.

>>> from mixqsam2.models import build_model  # doctest: +SKIP
>>> tracker = StreamingTracker(build_model("pico"))  # doctest: +SKIP
>>> result = tracker.step(first_rgb, {1: Prompt(box=(10, 10, 60, 50))})  # doctest: +SKIP
>>> result.masks[1].shape == first_rgb.shape[:2]  # doctest: +SKIP
True
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import get_1d_sine_pe

from mixqsam2.memory.bank import MemoryBank, MemoryEntry, check_capacity, make_policy
from mixqsam2.memory.prompts import Prompt
from mixqsam2.models.preprocess import preprocess_frame

# sam2's own stage names, used for per-stage latency
STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder")


@dataclass
class _ObjectState:
    bank: MemoryBank
    cond: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (frame, features, obj_ptr)
    pointers: deque = field(default_factory=deque)  # (frame, obj_ptr) of recent non-cond frames


@dataclass
class FrameResult:
    """Per object id: a boolean mask at the frame's resolution and the object-score logit."""

    frame_idx: int
    masks: dict[int, np.ndarray]
    object_scores: dict[int, float]


class StreamingTracker:
    """Track prompted objects through a stream of RGB frames with a fixed memory budget.

    ``capacity`` defaults to ``num_maskmem - 1`` (SAM2's six memories). ``num_frames`` is
    only a hint: sam2 attends to ``min(num_frames, 16)`` object pointers, so give the video
    length when it is known and short, to match sam2 exactly. Memories are stored in
    ``storage_dtype`` (bfloat16, as sam2 stores them).
    """

    def __init__(
        self,
        model,
        memory: str = "fifo",
        capacity: int | None = None,
        num_frames: int | None = None,
        storage_dtype: torch.dtype = torch.bfloat16,
    ):
        self.model = model
        self.policy = make_policy(memory)
        self.capacity = model.num_maskmem - 1 if capacity is None else capacity
        check_capacity(self.capacity, self.policy)  # here, not when the first object's bank is made
        # at least 2, so that a pointer one frame back has a defined temporal encoding
        self.max_obj_ptrs = max(2, min(num_frames or model.max_obj_ptrs_in_encoder, model.max_obj_ptrs_in_encoder))
        self.storage_dtype = storage_dtype
        self.frame_idx = -1
        self.objects: dict[int, _ObjectState] = {}
        self._memory_pos_enc: torch.Tensor | None = None  # [HW, 1, C_mem], same for every memory
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.peak_memory_bytes = 0  # the most memory_bytes() held after any frame

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def step(self, rgb: np.ndarray, prompts: dict[int, Prompt] | None = None) -> FrameResult:
        """Process the next frame; ``prompts`` start (or restart) objects on this frame."""
        prompts = prompts or {}
        frame_hw = self._validate(rgb, prompts)
        self.frame_idx += 1
        feats, pos, sizes = self._encode_image(rgb)
        low_res, scores = {}, {}
        for obj_id, prompt in prompts.items():
            low_res[obj_id], scores[obj_id] = self._start_object(obj_id, prompt, feats, pos, sizes, frame_hw)
        for obj_id, state in self.objects.items():
            if obj_id not in prompts:
                low_res[obj_id], scores[obj_id] = self._track_object(state, feats, pos, sizes)
        self.peak_memory_bytes = max(self.peak_memory_bytes, self.memory_bytes())
        return FrameResult(self.frame_idx, _to_frame_masks(low_res, frame_hw), scores)

    @torch.inference_mode()
    def segment_image(self, rgb: np.ndarray, prompts: dict[int, Prompt]) -> dict[int, np.ndarray]:
        """Single-image segmentation (SAM mode): one mask per prompt, no memory kept."""
        frame_hw = self._validate(rgb, prompts)
        feats, pos, sizes = self._encode_image(rgb)
        low_res = {k: self._segment_prompt(p, feats, pos, sizes, frame_hw)["pred_masks"] for k, p in prompts.items()}
        return _to_frame_masks(low_res, frame_hw)

    @staticmethod
    def _validate(rgb: np.ndarray, prompts: dict[int, Prompt]) -> tuple[int, int]:
        height, width = rgb.shape[:2]
        for prompt in prompts.values():
            prompt.validate(height, width)
        return height, width

    def stage_ms_per_frame(self) -> dict[str, float]:
        """Mean milliseconds per frame spent in each of sam2's stages so far."""
        frames = max(1, self.frame_idx + 1)
        return {stage: 1000 * seconds / frames for stage, seconds in self.stage_seconds.items()}

    def memory_bytes(self) -> int:
        """Bytes of everything the tracker keeps across frames (memories and pointers)."""
        total = 0
        for state in self.objects.values():
            total += state.bank.nbytes()
            total += sum(f.nbytes + p.nbytes for _, f, p in state.cond)
            in_bank = {id(e.obj_ptr) for e in state.bank.entries}  # fifo shares them with the bank
            total += sum(p.nbytes for _, p in state.pointers if id(p) not in in_bank)
        return total

    # ------------------------------------------------------------------ stages
    @contextmanager
    def _timed(self, stage: str):
        start = time.perf_counter()
        yield
        self.stage_seconds[stage] += time.perf_counter() - start

    def _encode_image(self, rgb: np.ndarray):
        with self._timed("image_encoder"):
            image = torch.from_numpy(preprocess_frame(rgb, self.model.image_size))[None].to(self.model.device)
            backbone_out = self.model.forward_image(image)
            _, feats, pos, sizes = self.model._prepare_backbone_features(backbone_out)
        return feats, pos, sizes

    def _segment_prompt(self, prompt: Prompt, feats, pos, sizes, frame_hw) -> dict:
        """SAM2 on one prompted frame without memory (``track_step`` as an initial
        conditioning frame); returns its outputs without encoding a memory."""
        model = self.model
        point_inputs, mask_inputs = _prompt_to_model_inputs(prompt, frame_hw, model.image_size, model.device)
        with self._timed("mask_decoder"):
            return model.track_step(
                frame_idx=self.frame_idx,
                is_init_cond_frame=True,
                current_vision_feats=feats,
                current_vision_pos_embeds=pos,
                feat_sizes=sizes,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},  # unused on a first frame
                num_frames=None,
                run_mem_encoder=False,
            )

    def _start_object(self, obj_id, prompt: Prompt, feats, pos, sizes, frame_hw):
        """Segment a prompted frame and store it as the object's conditioning memory.

        As in sam2's predictor: the prompt frame's memory is encoded from the low-res
        mask upsampled to the model size, binarized (the mask the user sees)."""
        out = self._segment_prompt(prompt, feats, pos, sizes, frame_hw)
        size = (self.model.image_size, self.model.image_size)
        high_res = F.interpolate(out["pred_masks"], size=size, mode="bilinear", align_corners=False)
        features = self._encode_memory(feats, sizes, high_res, out["object_score_logits"], from_prompt=True)
        self.objects[obj_id] = _ObjectState(
            bank=MemoryBank(self.capacity, self.policy),
            cond=[(self.frame_idx, features, out["obj_ptr"])],
            pointers=deque(maxlen=self.max_obj_ptrs - 1),
        )
        return out["pred_masks"], float(out["object_score_logits"])

    def _track_object(self, state: _ObjectState, feats, pos, sizes):
        model = self.model
        high_res_feats = [
            x.permute(1, 2, 0).view(x.size(1), x.size(2), *s) for x, s in zip(feats[:-1], sizes[:-1])
        ]
        with self._timed("memory_attention"):
            memory, memory_pos, num_ptr_tokens = self._attended_memory(state)
            conditioned = model.memory_attention(
                curr=feats[-1:], curr_pos=pos[-1:], memory=memory, memory_pos=memory_pos,
                num_obj_ptr_tokens=num_ptr_tokens,
            )
            h, w = sizes[-1]
            conditioned = conditioned.permute(1, 2, 0).view(1, model.hidden_dim, h, w)
        with self._timed("mask_decoder"):
            _, _, _, low_res, high_res, obj_ptr, score = model._forward_sam_heads(
                backbone_features=conditioned,
                high_res_features=high_res_feats if len(high_res_feats) else None,
                multimask_output=model._use_multimask(False, None),
            )
        features = self._encode_memory(feats, sizes, high_res, score, from_prompt=False)
        state.bank.add(MemoryEntry(features, float(self.frame_idx), float(score), obj_ptr=obj_ptr))
        state.pointers.append((self.frame_idx, obj_ptr))
        return low_res, float(score)

    def _encode_memory(self, feats, sizes, high_res_masks, score, from_prompt: bool) -> torch.Tensor:
        with self._timed("memory_encoder"):
            features, pos_enc = self.model._encode_new_memory(
                current_vision_feats=feats,
                feat_sizes=sizes,
                pred_masks_high_res=high_res_masks,
                object_score_logits=score,
                is_mask_from_pts=from_prompt,
            )
        if self._memory_pos_enc is None:
            self._memory_pos_enc = pos_enc[-1].flatten(2).permute(2, 0, 1).clone()
        return features.to(self.storage_dtype)

    # ------------------------------------------------------------------ memory assembly
    def _attended_memory(self, state: _ObjectState):
        """Memory tokens and their positional encodings for the current frame.

        Mirrors the non-initial branch of ``SAM2Base._prepare_memory_conditioned_features``,
        reading the bank instead of frame indices. Order: conditioning memories (temporal
        slot ``num_maskmem - 1``), bank entries oldest first (slot ``t_rel - 1`` for an
        entry ``t_rel`` frames back, clipped to the slots that exist), then object pointers
        (conditioning ones first, then recent frames newest first, then synthesized bank
        entries) with a sine encoding of their frame distance (clipped to the pointer window).
        """
        model, now = self.model, self.frame_idx
        last_slot = model.num_maskmem - 1
        spatial = [(f, last_slot) for _, f, _ in state.cond]
        for entry in state.bank.entries:
            t_rel = min(max(int(round(now - entry.temporal_pos)), 1), last_slot)
            spatial.append((entry.features, t_rel - 1))
        memory = [f.float().flatten(2).permute(2, 0, 1) for f, _ in spatial]
        memory_pos = [self._memory_pos_enc + model.maskmem_tpos_enc[slot] for _, slot in spatial]

        pointers = [(now - t, p) for t, _, p in state.cond] + [(now - t, p) for t, p in reversed(state.pointers)]
        window = self.max_obj_ptrs - 1
        pointers += [(min(now - e.temporal_pos, window), e.obj_ptr) for e in state.bank.entries if e.frames > 1]
        ptr_tokens = self._pointer_tokens(pointers)
        if ptr_tokens is not None:
            memory.append(ptr_tokens[0])
            memory_pos.append(ptr_tokens[1])
        num_ptr_tokens = 0 if ptr_tokens is None else ptr_tokens[0].shape[0]
        return torch.cat(memory, dim=0), torch.cat(memory_pos, dim=0), num_ptr_tokens

    def _pointer_tokens(self, pointers: list[tuple[int, torch.Tensor]]):
        model = self.model
        if not model.use_obj_ptrs_in_encoder or not pointers:
            return None
        distances, ptrs = zip(*pointers)
        obj_ptrs = torch.stack(ptrs, dim=0)  # [P, 1, C]
        if model.add_tpos_enc_to_obj_ptrs:
            dim = model.hidden_dim if model.proj_tpos_enc_in_obj_ptrs else model.mem_dim
            rel = torch.tensor(distances, dtype=torch.float32) / (self.max_obj_ptrs - 1)
            obj_pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(rel, dim=dim)).unsqueeze(1)
        else:
            obj_pos = obj_ptrs.new_zeros(len(ptrs), 1, model.mem_dim)
        split = model.hidden_dim // model.mem_dim  # a C-dim pointer becomes `split` tokens of C_mem
        if split > 1:
            obj_ptrs = obj_ptrs.reshape(-1, 1, split, model.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        return obj_ptrs, obj_pos


def _to_frame_masks(low_res: dict, frame_hw) -> dict[int, np.ndarray]:
    """Low-res mask logits -> boolean masks at the frame resolution (bilinear, > 0)."""
    return {
        obj_id: (F.interpolate(m, size=frame_hw, mode="bilinear", align_corners=False)[0, 0] > 0).cpu().numpy()
        for obj_id, m in low_res.items()
    }


def _prompt_to_model_inputs(prompt: Prompt, frame_hw, image_size: int, device):
    """``(point_inputs, mask_inputs)`` for ``track_step``, scaled as sam2's predictor does."""
    height, width = frame_hw
    if prompt.mask is not None:
        mask = torch.from_numpy(prompt.mask.astype(np.float32))[None, None].to(device)
        if mask.shape[-2:] != (image_size, image_size):
            mask = F.interpolate(mask, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
            mask = (mask >= 0.5).float()
        return None, mask
    if prompt.box is not None:
        coords = torch.tensor(prompt.box, dtype=torch.float32).reshape(1, 2, 2)
        labels = torch.tensor([[2, 3]], dtype=torch.int32)
    else:
        coords = torch.tensor(prompt.points, dtype=torch.float32)[None]
        labels = torch.tensor([prompt.labels or [1] * len(prompt.points)], dtype=torch.int32)
    coords = coords / torch.tensor([width, height], dtype=torch.float32) * image_size
    return {"point_coords": coords.to(device), "point_labels": labels.to(device)}, None
