"""Video evaluation: DAVIS J&F with a first-frame ground-truth mask prompt per object.

Each video streams through a :class:`~mixqsam2.memory.tracker.StreamingTracker` with the
chosen memory policy and capacity; J and F are taken on every annotated frame and averaged
per object without the first and last annotated frames (DAVIS-2017). The overall J and F
average all objects of all videos, as the DAVIS benchmark does. :func:`first_mask_baseline`
scores the trivial tracker that repeats the prompt mask, the floor a model has to beat;
:func:`grabcut_track_baseline` a classical one that re-segments each frame from the last
mask's box with GrabCut, the level a learned tracker should clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from mixqsam2.data.loaders import VideoSample
from mixqsam2.errors import UserInputError
from mixqsam2.eval.agreement import MaskCallback
from mixqsam2.eval.metrics import boundary_f, mask_iou, video_jf
from mixqsam2.memory.prompts import Prompt, clip_box, prompt_then_track

if TYPE_CHECKING:  # the tracker loads cv2: imported where a video is tracked
    from mixqsam2.memory.tracker import FrameResult


def evaluate_video(model, video: VideoSample, memory: str = "fifo", capacity: int | None = None,
                   on_mask: MaskCallback | None = None, track_zoom: float | None = None,
                   memory_pool: int | None = None) -> dict:
    from mixqsam2.memory.tracker import StreamingTracker

    tracker = StreamingTracker(model, memory=memory, capacity=capacity, num_frames=len(video.frame_paths),
                               track_zoom=track_zoom, memory_pool=memory_pool)
    prompts, results = prompted_stream(tracker, video)
    return {
        **score_video(video, ((name, result.masks) for name, result in results), on_mask),
        "frames": len(video.frame_paths),
        "memory_pool": tracker.memory_pool,
        "memory_bank_bytes": tracker.peak_memory_bytes,
        "latency_ms": tracker.stage_ms_per_frame(),
    }


def prompted_stream(tracker, video: VideoSample) -> tuple[dict[int, Prompt], Iterator[tuple[str, FrameResult]]]:
    """The evaluation protocol's prompts (each object's first-frame ground-truth mask) and
    ``(frame name, result)`` of every frame of ``video`` streamed through ``tracker`` with them."""
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    return prompts, zip(video.frame_names, prompt_then_track(tracker, video.frames(), prompts))


def _require_videos(videos: list[VideoSample]) -> None:
    """J&F averages over objects: with no video there is nothing to average."""
    if not videos:
        raise UserInputError("no videos to evaluate")


def evaluate_videos(model, videos: list[VideoSample], memory: str = "fifo", capacity: int | None = None,
                    on_mask: MaskCallback | None = None, track_zoom: float | None = None,
                    memory_pool: int | None = None) -> dict:
    """``{"J", "F", "JF", "objects", "memory_bank_bytes" (peak), "latency_ms" (per stage, mean
    per frame), "per_video": {name: {"J", "F", "JF", "per_object", ...}}}``;
    ``on_mask((video, object_id, frame), mask)`` sees every predicted mask of every frame;
    ``track_zoom``: small objects are tracked on a window that follows them; ``memory_pool``:
    the bank is read pooled (both: :class:`~mixqsam2.memory.tracker.StreamingTracker`)."""
    from mixqsam2.memory.tracker import default_capacity

    _require_videos(videos)
    capacity = default_capacity(model) if capacity is None else capacity
    per_video = {}
    for video in tqdm(videos, desc="eval videos", unit="video"):
        per_video[video.name] = evaluate_video(model, video, memory, capacity, on_mask, track_zoom, memory_pool)
    frames = sum(v["frames"] for v in per_video.values())
    stages = {stage for v in per_video.values() for stage in v["latency_ms"]}
    latency = {s: sum(v["latency_ms"].get(s, 0.0) * v["frames"] for v in per_video.values()) / frames for s in stages}
    return {
        **_over_objects(per_video), "memory": memory, "capacity": capacity,
        "memory_pool": next(iter(per_video.values()))["memory_pool"],  # as the tracker read the bank
        "memory_bank_bytes": max(v["memory_bank_bytes"] for v in per_video.values()),
        "latency_ms": latency, "per_video": per_video,
    }


def score_video(video: VideoSample, answers: Iterator[tuple[str, dict[int, np.ndarray]]],
                on_mask: MaskCallback | None = None) -> dict:
    """:func:`~mixqsam2.eval.metrics.video_jf` of ``answers``: ``(frame name, {object id: mask})``
    for every frame of ``video`` in order, an answer for each prompted object; ``on_mask((video
    name, object id, frame name), mask)`` sees every answer. Frames without ground truth are not
    scored; an object missing from a frame's ground truth is absent there."""
    scores: dict[int, list[tuple[float, float]]] = {}
    for name, masks in answers:
        for obj_id in masks if on_mask else ():
            on_mask((video.name, obj_id, name), masks[obj_id])
        gt = video.annotation(name)
        for obj_id, mask in masks.items() if gt is not None else ():
            truth = gt.get(obj_id, np.zeros_like(mask))
            scores.setdefault(obj_id, []).append((mask_iou(mask, truth), boundary_f(mask, truth)))
    return video_jf(scores)


def first_mask_baseline(videos: list[VideoSample], on_mask: MaskCallback | None = None) -> dict:
    """J&F of answering every frame with the first frame's mask: ``{"J", "F", "JF",
    "per_video": {name: {"per_object": ...}}}``, scored exactly as :func:`evaluate_videos`
    (``on_mask`` as there)."""
    return score_answers(videos, lambda video: zip(video.frame_names, repeat(video.prompt_masks())), on_mask)


def grabcut_track_baseline(videos: list[VideoSample], grow: float = 0.1, iterations: int = 5) -> dict:
    """J&F of a classical tracker without learning: on each frame, OpenCV's GrabCut from the box
    around the object's last mask, grown by ``grow`` of its size (+2 px) on each side; an empty
    answer keeps the last mask. It never answers "absent" (J counts an empty answer as right where
    the object is gone). Scored as :func:`first_mask_baseline` (about 0.1 s per object and frame
    at 320x240 on one core)."""
    return score_answers(videos, lambda video: _grabcut_answers(video, grow, iterations), desc="GrabCut tracks")


def _grabcut_answers(video: VideoSample, grow: float, iterations: int) -> Iterator[tuple[str, dict[int, np.ndarray]]]:
    from mixqsam2.eval.images import grabcut_mask

    last = video.prompt_masks()
    for index, (name, rgb) in enumerate(zip(video.frame_names, video.frames())):
        if index:
            answers = {k: grabcut_mask(rgb, grown_box(mask, grow), iterations) for k, mask in last.items()}
            last = {k: answers[k] if answers[k].any() else last[k] for k in last}
        yield name, last


def grown_box(mask: np.ndarray, grow: float) -> tuple[float, float, float, float]:
    """The ``(x0, y0, x1, y1)`` box of ``mask`` (at least one pixel set) grown by ``grow`` of its
    size + 2 px on each side, clipped to the frame.

    >>> mask = np.zeros((20, 30), bool); mask[5:10, 10:20] = True
    >>> grown_box(mask, 0.1)
    (7.0, 2.5, 23.0, 12.5)
    """
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    dx, dy = grow * (x1 - x0) + 2, grow * (y1 - y0) + 2
    return clip_box((float(x0 - dx), float(y0 - dy), float(x1 + dx), float(y1 + dy)), *mask.shape)


def score_answers(videos: list[VideoSample], answers, on_mask: MaskCallback | None = None,
                  desc: str | None = None) -> dict:
    """:func:`first_mask_baseline`'s scores for any tracker without a model: ``answers(video)``
    yields ``(frame name, {object id: mask})`` for every frame, in order (the prompt frame first);
    ``on_mask((video name, object id, frame name), mask)`` sees every answer."""
    _require_videos(videos)
    per_video = {video.name: score_video(video, answers(video), on_mask)
                 for video in tqdm(videos, desc=desc, unit="video", disable=desc is None)}
    return {**_over_objects(per_video), "per_video": per_video}


def _over_objects(per_video: dict) -> dict:
    """``{"J", "F", "JF", "objects"}`` averaged over every object of every video (as DAVIS does)."""
    objects = [s for v in per_video.values() for s in v["per_object"].values()]
    j, f = float(np.mean([s["J"] for s in objects])), float(np.mean([s["F"] for s in objects]))
    return {"J": j, "F": f, "JF": (j + f) / 2, "objects": len(objects)}
