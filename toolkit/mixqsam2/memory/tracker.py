"""A per-frame SAM2 tracker with bounded memory, the same for every backend.

sam2's ``SAM2VideoPredictor`` needs the whole video up front and keeps every frame's output
forever. :class:`StreamingTracker` takes one frame at a time and keeps, per object:

- its conditioning memory (the prompted frame's) and object pointer,
- a fixed-capacity memory bank (:mod:`mixqsam2.memory.synthesis`: ``K`` slots with
  features, pointer, temporal position, object score, frame count and a validity flag)
  whose full-bank behaviour is a policy: ``fifo`` (SAM2), ``prune``, ``sis`` (the paper),
  ``sis-pair`` (ours),
- the object pointers of the last ``max_obj_ptrs - 1`` frames (SAM2 attends to <= 16).

Nothing else survives a frame. The network runs as five graphs
(:mod:`mixqsam2.models.graphs`) through a *backend*: anything with ``run(name, inputs) ->
outputs`` on NumPy arrays (the memory features may be its ``resident`` arrays, below), a
``config`` (:class:`~mixqsam2.models.graph_config.GraphConfig`), a ``capacity``,
``no_mem_embed`` and ``seconds`` per graph. ``TorchGraphs`` runs sam2's modules;
``OrtGraphs`` runs the exported ONNX files without torch. This module is the host side: prompts,
the bank and its policy, pointer assembly, choosing among mask candidates. It imports only
NumPy. All tracked objects of a frame go through each graph in one call.

The memory features (each object's conditioning memory and bank, the bulk of what it keeps)
are opaque to the tracker: a backend's ``resident`` arrays hold them (:class:`HostArrays`,
NumPy, unless the backend has its own: the trt backend keeps them on the GPU for the whole
stream), and they only travel from one graph to the next.

The attended memory is read from the bank, each entry at the temporal slot of its own
position (``round(now - position)`` clipped to 1 ... num_maskmem - 1), never by looking
frames up by index; synthesized entries (``counts > 1``) add their pointer as one more
token. With ``fifo`` at capacity ``num_maskmem - 1`` this is exactly SAM2 (a test compares
the masks with ``SAM2VideoPredictor`` frame by frame).

>>> from mixqsam2.models import build_model  # doctest: +SKIP
>>> tracker = StreamingTracker(build_model("pico"))  # doctest: +SKIP
>>> result = tracker.step(first_rgb, {1: Prompt(box=(10, 10, 60, 50))})  # doctest: +SKIP
>>> result.masks[1].shape == first_rgb.shape[:2]  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.memory.prompts import Prompt, Window, crop, extent, in_window, mask_box, paste, zoom_window
from mixqsam2.memory.synthesis import RULES, MemoryArrays, empty_bank
from mixqsam2.models.graph_config import BANK_FIELDS, GraphConfig, choose_masks, memory_layout
from mixqsam2.models.postprocess import fill_holes
from mixqsam2.models.preprocess import preprocess_frame
from mixqsam2.models.resize import resize

# the graphs, for per-stage latency (sis_update is the bank policy)
STAGES = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "sis_update")
MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # sam2's _use_mask_as_output: mask -> logits
# how much a followed object's window may grow or shrink from one frame to the next (track_zoom)
FOLLOW_CHANGE = 1.05


class HostArrays:
    """Where the tracker's memory features live by default: NumPy arrays on the host.

    A backend may keep them elsewhere by offering ``resident`` with these three methods (the
    trt backend: :class:`~mixqsam2.runtime.trt_backend.DeviceArrays`); ``name`` says which
    graph input a stack is for, so such a store can reuse one buffer per input.

    >>> arrays = HostArrays()
    >>> batch = arrays.stack([arrays.put(np.zeros((2, 3))), np.ones((2, 3))], "bank_features")
    >>> batch.shape, [row.shape for row in arrays.rows(batch)]
    ((2, 2, 3), [(2, 3), (2, 3)])
    """

    def put(self, array: np.ndarray) -> np.ndarray:
        """Keep a host array."""
        return array

    def stack(self, rows: list, name: str) -> np.ndarray:
        """One batch of ``rows`` (the input ``name`` of a graph)."""
        return np.stack(rows)

    def rows(self, batch: np.ndarray, into: list | None = None) -> list:
        """The rows of a graph's output batch, one per object (``into``: the rows they replace)."""
        return list(batch)


@dataclass
class ObjectMemory:
    """What the tracker keeps of one object: its prompted frame and a bounded history."""

    cond_frame: int
    cond_features: np.ndarray  # [HW, C_mem], held by the backend's resident arrays
    cond_pointer: np.ndarray  # [C]
    bank: MemoryArrays  # K slots
    window: Window | None  # the view of the frame it is tracked on (None: the whole frame; see track_zoom)
    recent: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (frame, pointer), newest last

    def nbytes(self) -> int:
        held = [self.cond_features, self.cond_pointer, *(p for _, p in self.recent)]
        held += [getattr(self.bank, name) for name in BANK_FIELDS]
        return sum(a.nbytes for a in held)


@dataclass
class FrameResult:
    """Per object id: a boolean mask at the frame's resolution and the object-score logit."""

    frame_idx: int
    masks: dict[int, np.ndarray]
    object_scores: dict[int, float]


def make_torch_graphs(model, capacity: int, memory_pool: int = 1):
    """The torch backend for a sam2 model (imports torch and sam2)."""
    from mixqsam2.models.graphs import TorchGraphs

    return TorchGraphs(model, capacity, memory_pool)


class StreamingTracker:
    """Track prompted objects through a stream of RGB frames with a fixed memory budget.

    ``graphs`` is a backend (see the module docstring) or a sam2 model (run with the torch
    backend). ``capacity`` defaults to ``num_maskmem - 1`` (SAM2's six memories); a backend
    built for a capacity serves exactly that one. ``num_frames`` is only a hint: sam2 attends
    to ``min(num_frames, 16)`` object pointers, so give the video length when it is known
    and short, to match sam2 exactly. ``fill_holes`` fills small holes in the masks as sam2's
    predictor does with its CUDA extension (``fill_hole_area`` of the model; sam2 without the
    extension skips it, so a comparison with such a sam2 turns it off). ``box_zoom``: a box
    prompt spanning less than this share of the frame is segmented on a zoomed view of the
    frame in which it spans that share (:func:`~mixqsam2.memory.prompts.zoom_window`; one more
    image-encoder pass per such box; in a video, the mask found there prompts the object, so
    its score on that frame is a mask prompt's); None (sam2's behaviour) segments every box on
    the whole frame. ``track_zoom``: an object spanning less than this share of the frame is
    tracked on a window that follows it, in which it spans that share: a box or mask prompt
    starts it there; after every frame the window is re-centred on the object's mask, its
    size changing by at most ``FOLLOW_CHANGE`` a frame (so an object prompted by points, or
    one that was large and shrinks, narrows in gradually from the whole frame), and kept
    while the mask is empty; the object's memories are encoded from that view. Each distinct
    view costs one image-encoder pass a frame (objects on the whole frame share one, and a
    frame with nothing to segment is not encoded). None (sam2's behaviour) tracks every
    object on the whole frame. ``memory_pool`` B: memory attention reads the bank's older
    memories (all but the newest) B x B average-pooled, so their share of the attention
    products costs 1/B^2 (:class:`~mixqsam2.models.graphs.MemoryAttentionGraph`; the bank itself
    is unchanged); a property of the graphs, so with a backend it only checks that the backend
    was built with it. None: the backend's (1 with a model: sam2's attention).
    """

    def __init__(self, graphs, memory: str = "fifo", capacity: int | None = None, num_frames: int | None = None,
                 fill_holes: bool = True, box_zoom: float | None = None, track_zoom: float | None = None,
                 memory_pool: int | None = None):
        if memory not in RULES:
            raise UserInputError(f"unknown memory policy '{memory}'; choose one of: {', '.join(RULES)}")
        for name, share in (("box zoom", box_zoom), ("track zoom", track_zoom)):
            if share is not None and not 0 < share < 1:
                raise UserInputError(f"{name} must be a share of the frame between 0 and 1, got {share}")
        self.box_zoom, self.track_zoom = box_zoom, track_zoom
        self.rule = RULES[memory]
        if not hasattr(graphs, "run"):
            pool = 1 if memory_pool is None else memory_pool
            graphs = make_torch_graphs(graphs, capacity or default_capacity(graphs), pool)
        self.memory_pool = getattr(graphs, "memory_pool", 1)
        if memory_pool not in (None, self.memory_pool):
            raise UserInputError(f"the {graphs.name} graphs read the bank with --memory-pool {self.memory_pool}, "
                                 f"not {memory_pool}: build or export them with --memory-pool {memory_pool}")
        self.graphs = graphs
        self.resident = getattr(graphs, "resident", None) or HostArrays()
        self.config: GraphConfig = graphs.config
        self.capacity = graphs.capacity if capacity is None else capacity
        check_capacity(self.capacity, memory, graphs.capacity)
        max_ptrs = self.config.max_obj_ptrs_in_encoder
        # at least 2, so that a pointer one frame back has a defined temporal encoding
        self.max_obj_ptrs = max(2, min(num_frames or max_ptrs, max_ptrs))
        self.fill_hole_area = self.config.fill_hole_area if fill_holes else 0
        self.frame_idx = -1
        self.objects: dict[int, ObjectMemory] = {}
        self._seconds_before = dict(graphs.seconds)  # a backend may serve several trackers in turn
        self.peak_memory_bytes = 0  # the most memory_bytes() held after any frame

    @property
    def policy(self):
        """The bank-update rule (``.name`` is the policy name)."""
        return self.rule

    # ------------------------------------------------------------------ public API
    def step(self, rgb: np.ndarray, prompts: dict[int, Prompt] | None = None) -> FrameResult:
        """Process the next frame; ``prompts`` start (or restart) objects on this frame."""
        prompts = prompts or {}
        frame_hw = _validate(rgb, prompts)
        self.frame_idx += 1
        zoomed = self._zoomed_boxes(rgb, prompts)
        prompts = {k: Prompt(mask=zoomed[k]) if k in zoomed else p for k, p in prompts.items()}
        encoded = self._encoder(rgb)
        whole = (0, 0, *frame_hw)
        windows = {k: self._window(extent(p), frame_hw) or whole for k, p in prompts.items()}
        windows.update({k: _inside(state.window, frame_hw) for k, state in self.objects.items() if k not in prompts})
        low_res, scores = {}, {}
        for window, ids in _by_window(windows, prompts).items():
            image, local = encoded(window), {k: in_window(prompts[k], window) for k in ids}
            # sam2 encodes a prompted frame's memory from its hole-filled mask (it re-encodes
            # consolidated outputs); later frames' memories are encoded before the filling
            prompted = {k: (self._filled(m), *rest) for k, (m, *rest) in self._segment(image, local, window[2:]).items()}
            self._start_objects(image, prompted, None if window == whole else window)
            low_res.update({k: v[0] for k, v in prompted.items()})
            scores.update({k: v[1] for k, v in prompted.items()})
        for window, ids in _by_window(windows, self.objects.keys() - prompts.keys()).items():
            for obj_id, (mask, score) in self._track(encoded(window), ids).items():
                low_res[obj_id], scores[obj_id] = mask, score
        masks = {k: self._pasted(v, windows[k], frame_hw) for k, v in low_res.items()}
        self._follow(masks, frame_hw)
        self.peak_memory_bytes = max(self.peak_memory_bytes, self.memory_bytes())
        return FrameResult(self.frame_idx, {**masks, **zoomed}, scores)

    def segment_image(self, rgb: np.ndarray, prompts: dict[int, Prompt]) -> dict[int, np.ndarray]:
        """Single-image segmentation (SAM mode): one mask per prompt, no memory kept."""
        frame_hw = _validate(rgb, prompts)
        zoomed = self._zoomed_boxes(rgb, prompts)
        rest = {k: p for k, p in prompts.items() if k not in zoomed}
        masks = self._frame_masks({k: v[0] for k, v in self._segment_frame(rgb, rest, frame_hw).items()}, frame_hw)
        return {k: zoomed[k] if k in zoomed else masks[k] for k in prompts}

    def _segment_frame(self, rgb: np.ndarray, prompts: dict[int, Prompt], frame_hw) -> dict[int, tuple]:
        return self._segment(self._encode_image(rgb), prompts, frame_hw) if prompts else {}

    def _zoomed_boxes(self, rgb: np.ndarray, prompts: dict[int, Prompt]) -> dict[int, np.ndarray]:
        """Masks of the box prompts small enough to zoom in on (``box_zoom``), each segmented on
        its own view of the frame and put back at the frame's resolution (empty ones left out:
        their box is segmented on the frame)."""
        out = {}
        height, width = rgb.shape[:2]
        for obj_id, prompt in prompts.items():
            zoomable = self.box_zoom is not None and prompt.box is not None
            window = zoom_window(prompt.box, height, width, self.box_zoom) if zoomable else None
            if window is None:
                continue
            low_res = self._segment_frame(crop(rgb, window), {obj_id: in_window(prompt, window)}, window[2:])[obj_id][0]
            mask = self._pasted(low_res, window, (height, width))
            if mask.any():
                out[obj_id] = mask
        return out

    def _window(self, box, frame_hw, previous: Window | None = None) -> Window | None:
        """The view an object spanning ``box`` is tracked on: with ``track_zoom`` its zoom
        window (sized within ``FOLLOW_CHANGE`` of ``previous``), else None (the whole frame)."""
        if self.track_zoom is None or box is None:
            return None
        return zoom_window(box, *frame_hw, self.track_zoom, previous, FOLLOW_CHANGE)

    def _follow(self, masks: dict[int, np.ndarray], frame_hw) -> None:
        """Re-centre each followed object's window on its new mask (an empty mask keeps it)."""
        for obj_id, mask in masks.items() if self.track_zoom is not None else ():
            state = self.objects[obj_id]
            if mask.any():
                state.window = self._window(mask_box(mask), frame_hw, _inside(state.window, frame_hw))

    def _encoder(self, rgb: np.ndarray):
        """``window -> image encoding`` of that view of ``rgb``, each view encoded once."""
        done = {}

        def encoded(window: Window) -> dict[str, np.ndarray]:
            if window not in done:
                done[window] = self._encode_image(crop(rgb, window))
            return done[window]

        return encoded

    def stage_ms_per_frame(self) -> dict[str, float]:
        """Mean milliseconds per frame spent in each graph so far."""
        frames = max(1, self.frame_idx + 1)
        spent = {stage: seconds - self._seconds_before.get(stage, 0.0) for stage, seconds in self.graphs.seconds.items()}
        return {stage: 1000 * seconds / frames for stage, seconds in spent.items()}

    def memory_bytes(self) -> int:
        """Bytes of everything the tracker keeps across frames (memories and pointers)."""
        return sum(state.nbytes() for state in self.objects.values())

    # ------------------------------------------------------------------ graphs
    def _encode_image(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        image = preprocess_frame(rgb, self.config.image_size)[None]
        return self.graphs.run("image_encoder", {"image": image})

    def _decode(self, image: dict, embed: np.ndarray, coords, labels, mask_input, mask_valid) -> dict:
        return self.graphs.run("mask_decoder", {
            "image_embed": embed, "high_res_feat0": image["high_res_feat0"],
            "high_res_feat1": image["high_res_feat1"], "point_coords": coords,
            "point_labels": labels, "mask_input": mask_input, "mask_input_valid": mask_valid,
        })

    def _segment(self, image: dict, prompts: dict[int, Prompt], frame_hw) -> dict[int, tuple]:
        """The prompted frame without memory (sam2's initial conditioning frame).

        Returns per object (low-res mask logits [h, w], object score, pointer [C]). Objects
        are decoded together per number of prompt points; mask prompts give their own mask
        (sam2's ``use_mask_input_as_output_without_sam``) and take their pointer from the decoder.
        """
        embed = image["image_embed"] + self.graphs.no_mem_embed
        groups: dict[int | None, list[int]] = {}  # None: mask prompts
        for obj_id, prompt in prompts.items():
            groups.setdefault(None if prompt.mask is not None else _num_points(prompt), []).append(obj_id)
        out = {}
        for num_points, ids in groups.items():
            inputs = [_decoder_prompt(prompts[k], frame_hw, self.config.image_size) for k in ids]
            coords, labels, masks, mask_valid = (np.stack(x) for x in zip(*inputs))
            decoded = self._decode(image, np.repeat(embed, len(ids), 0), coords, labels, masks, mask_valid)
            # a mask prompt's pointer comes from a single-mask decoder call (sam2's _use_mask_as_output)
            multimask = num_points is not None and self.config.use_multimask(True, num_points)
            chosen, pointers = choose_masks(self.config, decoded["masks"], decoded["ious"], decoded["pointers"], multimask)
            for row, obj_id in enumerate(ids):
                if mask_valid[row]:
                    logits = masks[row] * MASK_OUT_SCALE + MASK_OUT_BIAS
                    low_res = resize(logits, (self.config.low_res_size,) * 2, antialias=True)[0]
                    out[obj_id] = (low_res, MASK_OUT_SCALE + MASK_OUT_BIAS, pointers[row])
                else:
                    out[obj_id] = (chosen[row, 0], float(decoded["object_score"][row, 0]), pointers[row])
        return out

    def _encode_memories(self, image: dict, masks: list, scores: list, from_prompt: bool) -> np.ndarray:
        return self.graphs.run("memory_encoder", {
            "image_embed": image["image_embed"],
            "mask_logits": np.stack(masks)[:, None].astype(np.float32),
            "object_score": np.array(scores, np.float32)[:, None],
            "mask_from_prompt": np.full(len(masks), from_prompt),
        })["memory_features"]

    def _start_objects(self, image: dict, prompted: dict[int, tuple], window: Window | None) -> None:
        ids = list(prompted)
        features = self._encode_memories(image, [prompted[k][0] for k in ids], [prompted[k][1] for k in ids], True)
        bank_shape = (self.capacity, self.config.memory_tokens, self.config.mem_dim, self.config.hidden_dim)
        for obj_id, cond_features in zip(ids, self.resident.rows(features)):
            bank = empty_bank(*bank_shape)
            self.objects[obj_id] = ObjectMemory(
                cond_frame=self.frame_idx, cond_features=cond_features,
                cond_pointer=prompted[obj_id][2], bank=replace(bank, features=self.resident.put(bank.features)),
                window=window,
            )

    def _track(self, image: dict, ids: list[int]) -> dict[int, tuple[np.ndarray, float]]:
        states = [self.objects[k] for k in ids]
        # one stack of the banks serves memory attention and, after it, the bank update
        banks = self.resident.stack([s.bank.features for s in states], "bank_features")
        conditioned = self.graphs.run("memory_attention", {
            "image_embed": image["image_embed"], **self._memory_inputs(states, banks),
        })["conditioned"]
        n = len(ids)
        decoded = self._decode(
            image, conditioned, np.zeros((n, 1, 2), np.float32), -np.ones((n, 1), np.int32),
            np.zeros((n, 1, self.config.image_size, self.config.image_size), np.float32), np.zeros(n, bool),
        )
        multimask = self.config.use_multimask(False, 0)
        masks, pointers = choose_masks(self.config, decoded["masks"], decoded["ious"], decoded["pointers"], multimask)
        scores = decoded["object_score"][:, 0]
        features = self._encode_memories(image, list(masks[:, 0]), list(scores), False)
        self._update_banks(states, banks, features, pointers, scores)
        for state, pointer in zip(states, pointers):
            state.recent = [*state.recent, (self.frame_idx, pointer)][-(self.max_obj_ptrs - 1):]
        return {k: (masks[row, 0], float(scores[row])) for row, k in enumerate(ids)}

    def _update_banks(self, states: list[ObjectMemory], banks, features, pointers, scores) -> None:
        """``banks``: the stacked bank features of ``states`` (as memory attention read them; a
        backend may update them in place, so they are not used after this)."""
        slot_fields = [name for name in BANK_FIELDS if name != "features"]  # per-slot numbers, on the host
        updated = self.graphs.run(f"sis_update.{self.rule.name}", {
            "bank_features": banks,
            **{f"bank_{name}": np.stack([getattr(s.bank, name) for s in states]) for name in slot_fields},
            "new_features": features, "new_pointer": pointers.astype(np.float32),
            "new_position": np.full(len(states), self.frame_idx, np.float32),
            "new_score": scores.astype(np.float32),
        })
        banks = self.resident.rows(updated["bank_features_out"], into=[s.bank.features for s in states])
        for row, (state, bank_features) in enumerate(zip(states, banks)):
            state.bank = MemoryArrays(features=bank_features,
                                      **{name: updated[f"bank_{name}_out"][row] for name in slot_fields})

    # ------------------------------------------------------------------ memory assembly
    def _memory_inputs(self, states: list[ObjectMemory], banks) -> dict[str, np.ndarray]:
        """The memory-attention inputs of a batch of objects (fixed shapes, validity masks;
        the layout is :func:`~mixqsam2.models.graph_config.memory_layout`'s); ``banks``: their
        stacked bank features."""
        recent_slots = self.config.max_obj_ptrs_in_encoder - 1
        layouts = [self._layout(state) for state in states]
        pointers = np.zeros((len(states), self.config.pointer_slots(self.capacity), self.config.hidden_dim), np.float32)
        for row, state in enumerate(states):
            pointers[row, 0] = state.cond_pointer
            for slot, (_, pointer) in enumerate(reversed(state.recent)):
                pointers[row, 1 + slot] = pointer
            pointers[row, 1 + recent_slots :] = state.bank.pointers
        cond = self.resident.stack([s.cond_features for s in states], "cond_features")
        return {
            "cond_features": cond.reshape(len(states), 1, *cond.shape[1:]),
            "bank_features": banks,
            "bank_valid": np.stack([s.bank.valid for s in states]),
            "bank_slot": np.stack([layout.bank_slot for layout in layouts]),
            "pointers": pointers,
            "pointer_valid": np.stack([layout.pointer_valid for layout in layouts]),
            "pointer_tpos": np.stack([layout.pointer_tpos for layout in layouts]),
        }

    def _layout(self, state: ObjectMemory):
        merged = state.bank.valid & (state.bank.counts > 1)
        return memory_layout(self.config, self.frame_idx, state.cond_frame, [t for t, _ in state.recent],
                             state.bank.positions, merged, self.max_obj_ptrs - 1)

    def _frame_masks(self, low_res: dict[int, np.ndarray], frame_hw) -> dict[int, np.ndarray]:
        """Low-res mask logits -> boolean masks at the frame resolution (holes filled, bilinear, > 0)."""
        return {obj_id: resize(self._filled(logits), frame_hw) > 0 for obj_id, logits in low_res.items()}

    def _pasted(self, logits: np.ndarray, window: Window, frame_hw) -> np.ndarray:
        """A view's low-res mask logits -> its boolean mask at its place in the frame."""
        return paste(self._frame_masks({0: logits}, window[2:])[0], window, *frame_hw)

    def _filled(self, logits: np.ndarray) -> np.ndarray:
        return fill_holes(logits, self.fill_hole_area) if self.fill_hole_area > 0 else logits


def default_capacity(graphs) -> int:
    """The bank capacity a backend was built for, or SAM2's (``num_maskmem - 1``) for a model."""
    return graphs.capacity if hasattr(graphs, "run") else graphs.num_maskmem - 1


def check_capacity(capacity: int, memory: str, built_for: int | None = None) -> None:
    """A bank holds at least one memory (two for a merging policy); a backend serves its own capacity."""
    minimum = 2 if RULES[memory].merges else 1
    if capacity < minimum:
        which = f" with memory policy '{memory}'" if minimum > 1 else ""
        raise UserInputError(f"memory capacity must be at least {minimum}{which}, got {capacity}")
    if built_for is not None and capacity != built_for:
        raise UserInputError(f"these graphs were built for a memory capacity of {built_for}, not {capacity}")


def _validate(rgb: np.ndarray, prompts: dict[int, Prompt]) -> tuple[int, int]:
    height, width = rgb.shape[:2]
    for prompt in prompts.values():
        prompt.validate(height, width)
    return height, width


def _by_window(windows: dict[int, Window], ids) -> dict[Window, list[int]]:
    """``ids`` grouped by their window, in the order of ``windows`` (one graph batch per view).

    >>> _by_window({1: (0, 0, 9, 9), 2: (1, 1, 3, 3), 3: (0, 0, 9, 9)}, {1, 2, 3})
    {(0, 0, 9, 9): [1, 3], (1, 1, 3, 3): [2]}
    """
    groups: dict[Window, list[int]] = {}
    for obj_id, window in windows.items():
        if obj_id in ids:
            groups.setdefault(window, []).append(obj_id)
    return groups


def _inside(window: Window | None, frame_hw) -> Window:
    """``window`` if it lies inside a frame of ``frame_hw`` (a stream's frames may change
    size), else the whole frame (what None stands for)."""
    whole = (0, 0, *frame_hw)
    if window is None:
        return whole
    top, left, rows, cols = window
    return window if top + rows <= frame_hw[0] and left + cols <= frame_hw[1] else whole


def _num_points(prompt: Prompt) -> int:
    return 2 if prompt.box is not None else len(prompt.points)


def _decoder_prompt(prompt: Prompt, frame_hw, image_size: int):
    """(point_coords [P, 2], point_labels [P], mask_input [1, S, S], mask_valid) for one prompt,
    scaled as sam2's predictor does: a box is two points labelled 2 and 3; a mask is resized
    to the model input (antialiased) and binarized at 0.5."""
    height, width = frame_hw
    if prompt.mask is not None:
        mask = prompt.mask.astype(np.float32)
        if mask.shape != (image_size, image_size):
            mask = (resize(mask, (image_size, image_size), antialias=True) >= 0.5).astype(np.float32)
        return np.zeros((1, 2), np.float32), -np.ones(1, np.int32), mask[None], np.True_
    if prompt.box is not None:
        coords, labels = np.asarray(prompt.box, np.float32).reshape(2, 2), np.array([2, 3], np.int32)
    else:
        coords = np.asarray(prompt.points, np.float32)
        labels = np.asarray(prompt.labels or [1] * len(prompt.points), np.int32)
    coords = coords / np.array([width, height], np.float32) * image_size
    return coords, labels, np.zeros((1, image_size, image_size), np.float32), np.False_
