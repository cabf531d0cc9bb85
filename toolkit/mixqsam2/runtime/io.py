"""Frame sources that stream (a 10,000-frame input is never loaded whole) and the overlay.

Every source yields ``(name, rgb)`` pairs; ``name`` is the input file's stem for a frame
folder and a zero-padded index for video files and cameras. Opening a source reads its
first frame, so an unreadable input fails before any output is created.

>>> import numpy as np, tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "00007.jpg")
>>> source = open_source(frames=d)
>>> source.frame_size, [name for name, _ in source]
((8, 8), ['00007'])
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mixqsam2.data.formats import davis_palette
from mixqsam2.data.loaders import list_frames, read_rgb
from mixqsam2.errors import UserInputError


class FrameSource:
    """Iterable of ``(name, rgb uint8 HxWx3)``; ``frame_size`` is (height, width)."""

    def __init__(self, frames: Iterator[tuple[str, np.ndarray]], num_frames: int | None, fps: float):
        first = next(frames, None)
        if first is None:
            raise UserInputError("the input has no frames")
        self.frame_size = first[1].shape[:2]
        self.num_frames = num_frames
        self.fps = fps
        self._frames = itertools.chain([first], frames)

    def __iter__(self):
        return self._frames


def _folder_frames(paths: list[Path]):
    for path in paths:
        yield path.stem, read_rgb(path)


def _capture_frames(capture: cv2.VideoCapture, limit: int | None):
    try:
        for index in itertools.count():
            if limit is not None and index >= limit:
                return
            ok, bgr = capture.read()
            if not ok:
                return
            yield f"{index:05d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def open_source(frames=None, video=None, camera: int | None = None, max_frames: int | None = None) -> FrameSource:
    """Open exactly one of a frame folder, a video file (OpenCV) or a camera index."""
    if frames is not None:
        paths = list_frames(frames)[:max_frames]
        return FrameSource(_folder_frames(paths), len(paths), fps=24.0)
    if video is not None:
        if not Path(video).is_file():
            raise UserInputError(f"video not found: {video}")
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise UserInputError(f"cannot read video {video}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        if count is not None and max_frames is not None:
            count = min(count, max_frames)
        fps = capture.get(cv2.CAP_PROP_FPS) or 24.0
        try:
            return FrameSource(_capture_frames(capture, max_frames), count, fps)
        except UserInputError:
            raise UserInputError(f"cannot read video {video}: no decodable frame") from None
    capture = cv2.VideoCapture(int(camera))
    if not capture.isOpened():
        raise UserInputError(f"cannot open camera {camera}")
    return FrameSource(_capture_frames(capture, max_frames), max_frames, capture.get(cv2.CAP_PROP_FPS) or 30.0)


def overlay(rgb: np.ndarray, masks: dict[int, np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """Blend each object's mask in its DAVIS palette colour and outline it."""
    palette = np.array(davis_palette(), np.uint8).reshape(-1, 3)
    out = rgb.copy()
    for obj_id, mask in masks.items():
        color = palette[obj_id % 255 or 1]
        out[mask] = (out[mask] * (1 - alpha) + color * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


class OverlayVideo:
    """Writes overlay frames to an MP4 (OpenCV ``mp4v``)."""

    def __init__(self, path: Path, fps: float, frame_size: tuple[int, int]):
        height, width = frame_size
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self._writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {path}")

    def write(self, rgb: np.ndarray) -> None:
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()
