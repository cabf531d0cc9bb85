"""The per-frame streaming pipeline behind ``run_stream``: frames in, masks + overlay out.

Output folder (it appears only once complete; see :func:`mixqsam2.fileio.atomic_output_dir`):
``masks/<frame>.png`` (0/255, the first frame's resolution; ``masks/<obj_id>/<frame>.png``
when several objects are tracked), ``overlay.mp4`` and ``stats.json`` with ``frames``
(tracked), ``fps``, ``latency_ms`` (per stage and total, mean per frame),
``memory_bank_bytes`` (peak), ``skipped_frames`` (names of frames that could not be
decoded), ``resized_frames`` and ``ended``.

A stream ends the same clean way however it ends (``ended`` says which):
``end_of_input``; ``max_frames`` tracked; ``signal``: SIGINT or SIGTERM, after the current
frame (a second signal aborts at once: :class:`~mixqsam2.runtime.stopping.StreamAborted`,
no output); ``read_failures``: ``max_read_failures`` consecutive frames could not be
decoded. A frame that cannot be
decoded is skipped with a warning; a frame whose size differs from the first frame's is
resized to it with a warning (once per size), so masks and overlay keep one size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mixqsam2.data.formats import write_mask_png
from mixqsam2.fileio import atomic_output_dir, write_json_atomic
from mixqsam2.memory.prompts import Prompt
from mixqsam2.runtime.io import MAX_READ_FAILURES, Frame, FrameSource, OverlayVideo, overlay
from mixqsam2.runtime.stopping import StopOnSignal
from mixqsam2.runtime.stopping import warn as _warn


@dataclass
class _Tally:
    """What happened to the frames of a stream."""

    frame_size: tuple[int, int]
    tracked: int = 0
    skipped: list[str] = field(default_factory=list)
    resized: int = 0
    failures_in_a_row: int = 0
    warned_sizes: set = field(default_factory=set)

    def skip(self, frame: Frame) -> None:
        self.skipped.append(frame.name)
        self.failures_in_a_row += 1
        _warn(f"frame {frame.name} skipped: {frame.error}")

    def conform(self, frame: Frame) -> np.ndarray:
        """The frame at the first frame's size (resized, with a warning per new size)."""
        self.failures_in_a_row = 0
        if frame.rgb.shape[:2] == self.frame_size:
            return frame.rgb
        height, width = self.frame_size
        size = frame.rgb.shape[:2]
        if size not in self.warned_sizes:
            self.warned_sizes.add(size)
            _warn(f"frame {frame.name} is {size[1]}x{size[0]}, not {width}x{height} like the first frame: "
                  f"resized (frames of this size are resized from here on)")
        self.resized += 1
        return cv2.resize(frame.rgb, (width, height), interpolation=cv2.INTER_AREA)


class _Outputs:
    """Mask PNGs and the overlay video inside the (temporary) output folder."""

    def __init__(self, folder: Path, prompts: dict[int, Prompt], source: FrameSource):
        self.mask_dirs = {k: folder / "masks" / (str(k) if len(prompts) > 1 else "") for k in prompts}
        for mask_dir in self.mask_dirs.values():
            mask_dir.mkdir(parents=True, exist_ok=True)
        self.video = OverlayVideo(folder / "overlay.mp4", source.fps, source.frame_size)

    def write(self, name: str, rgb: np.ndarray, masks: dict[int, np.ndarray]) -> None:
        for obj_id, mask in masks.items():
            write_mask_png(self.mask_dirs[obj_id] / f"{name}.png", mask)
        self.video.write(overlay(rgb, masks))


def _track(tracker, source: FrameSource, prompts: dict[int, Prompt], outputs: _Outputs, tally: _Tally,
           stop: StopOnSignal, max_frames: int | None, max_read_failures: int) -> str:
    """Track until the stream ends; returns how it ended."""
    total = min(filter(None, (source.num_frames, max_frames)), default=None)
    for frame in tqdm(source, total=total, desc="run_stream", unit="frame"):
        if frame.rgb is None:
            tally.skip(frame)
        else:
            rgb = tally.conform(frame)
            result = tracker.step(rgb, prompts if tally.tracked == 0 else None)
            outputs.write(frame.name, rgb, result.masks)
            tally.tracked += 1
        if stop.received is not None:
            return "signal"
        if tally.failures_in_a_row >= max_read_failures:
            return "read_failures"
        if max_frames is not None and tally.tracked >= max_frames:
            return "max_frames"
    return "end_of_input"


def run_stream(tracker, source: FrameSource, prompts: dict[int, Prompt], out_dir: str | Path,
               max_frames: int | None = None, max_read_failures: int = MAX_READ_FAILURES,
               overwrite: bool = False, ignore_signals_after: bool = False) -> dict:
    """Track ``prompts`` (applied to the first decodable frame) through ``source`` into
    ``out_dir``; returns the stats written to ``stats.json``. The source is closed when the
    stream ends (a camera is released). ``tracker`` is anything with
    ``step(rgb, prompts_or_None) -> result.masks``, ``stage_ms_per_frame()``,
    ``peak_memory_bytes``, ``policy.name``, ``capacity``, ``memory_pool``, ``box_zoom`` and ``track_zoom``.
    A second SIGINT/SIGTERM aborts without output until the output is in place, and is
    ignored from then on (with ``ignore_signals_after``, also after the call: ``run_stream``'s
    command ends the process then).

    >>> from mixqsam2.memory.tracker import StreamingTracker  # doctest: +SKIP
    >>> stats = run_stream(StreamingTracker(model), open_source(frames="clip/"),  # doctest: +SKIP
    ...                    {1: Prompt(box=(40, 30, 120, 90))}, "out/run")
    >>> stats["ended"]  # doctest: +SKIP
    'end_of_input'
    """
    stop = StopOnSignal(ignore_after=ignore_signals_after)
    with stop, atomic_output_dir(out_dir, overwrite, kind="stream", on_commit=stop.output_written) as folder:
        tally = _Tally(source.frame_size)
        outputs = _Outputs(folder, prompts, source)
        start = time.perf_counter()
        try:
            ended = _track(tracker, source, prompts, outputs, tally, stop, max_frames, max_read_failures)
        finally:
            outputs.video.close()
            source.close()
        stats = _stats(tracker, tally, time.perf_counter() - start, ended, prompts)
        write_json_atomic(folder / "stats.json", stats)
    return stats


def _stats(tracker, tally: _Tally, elapsed: float, ended: str, prompts: dict) -> dict:
    frames = tally.tracked
    return {
        "frames": frames,
        "fps": frames / elapsed,
        "latency_ms": {"total": 1000 * elapsed / max(frames, 1), **tracker.stage_ms_per_frame()},
        "memory_bank_bytes": tracker.peak_memory_bytes,
        "memory": {"policy": tracker.policy.name, "capacity": tracker.capacity, "pool": tracker.memory_pool},
        "objects": sorted(prompts),
        "box_zoom": tracker.box_zoom,
        "track_zoom": tracker.track_zoom,
        "ended": ended,
        "skipped_frames": tally.skipped,
        "resized_frames": tally.resized,
    }
