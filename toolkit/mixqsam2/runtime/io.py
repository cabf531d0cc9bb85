"""Frame sources that stream (a 10,000-frame input is never loaded whole) and the overlay.

Every source yields :class:`Frame` items; ``name`` is the input file's stem for a frame
folder and a zero-padded index for video files and cameras. A frame that cannot be decoded
is yielded too, with ``rgb`` None and the reason, so the stream can skip and count it.
Opening a source reads up to its first decodable frame, so an unreadable input fails before
any output is created.

>>> import numpy as np, tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "00007.jpg")
>>> _ = (d / "00008.jpg").write_bytes(b"not a jpeg")
>>> source = open_source(frames=d)
>>> source.frame_size, [(frame.name, frame.rgb is None) for frame in source]
((8, 8), [('00007', False), ('00008', True)])
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mixqsam2.data.formats import davis_palette
from mixqsam2.data.loaders import list_frames, read_rgb
from mixqsam2.errors import UserInputError

# FFmpeg's own log off (AV_LOG_QUIET) unless the user set it: OpenCV reads it at its first
# FFmpeg use in the process, and a source that fails is reported by us, once
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

MAX_READ_FAILURES = 30  # consecutive frames that cannot be read before a stream ends


@dataclass(frozen=True)
class Frame:
    """One frame of a stream: ``rgb`` uint8 (H, W, 3), or None with ``error`` when it could
    not be decoded."""

    name: str
    rgb: np.ndarray | None
    error: str | None = None


class FrameSource:
    """Iterable of :class:`Frame`; ``frame_size`` (height, width) is the first decodable frame's.

    Frames that fail before the first decodable one are kept (the stream counts them); more
    than ``max_read_failures`` of them, or none decodable, is bad input.
    """

    def __init__(self, frames: Iterator[Frame], num_frames: int | None, fps: float, description: str,
                 max_read_failures: int = MAX_READ_FAILURES):
        leading = list(itertools.islice(frames, max_read_failures + 1))
        first = next((frame for frame in leading if frame.rgb is not None), None)
        if first is None:
            reason = f": {leading[-1].error}" if leading else " (no frames)"
            raise UserInputError(f"cannot read {description}{reason}")
        self.frame_size = first.rgb.shape[:2]
        self.num_frames = num_frames
        self.fps = fps
        self._source = frames
        self._frames = itertools.chain(leading, frames)

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def close(self) -> None:
        """Stop reading: a camera or video file is released now, not when garbage-collected."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


def _folder_frames(paths: list[Path]) -> Iterator[Frame]:
    for path in paths:
        try:
            yield Frame(path.stem, read_rgb(path))
        except UserInputError as exc:
            yield Frame(path.stem, None, str(exc))


def _capture_frames(capture, frame_count: int | None, live: bool) -> Iterator[Frame]:
    """Frames of an OpenCV capture. A failed read of a ``live`` source (camera) is a frame
    that could not be read; a video file ends at its first failed read past ``frame_count``
    (or at any failed read when the count is unknown)."""
    try:
        for index in itertools.count():
            ok, bgr = capture.read()
            if ok:
                yield Frame(f"{index:05d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            elif live or (frame_count is not None and index < frame_count):
                yield Frame(f"{index:05d}", None, "no frame could be decoded")
            else:
                return
    finally:
        capture.release()


def _opened_quietly(source: str | int) -> "cv2.VideoCapture":
    """``cv2.VideoCapture(source)`` without OpenCV's WARN lines and FFmpeg's log on stderr
    (see ``OPENCV_FFMPEG_LOGLEVEL`` above): a source that does not open, or a frame that
    does not decode, is reported once, by the caller."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_source(frames=None, video=None, camera: int | None = None,
                max_read_failures: int = MAX_READ_FAILURES) -> FrameSource:
    """Open exactly one of a frame folder, a video file (OpenCV) or a camera index."""
    if frames is not None:
        paths = list_frames(frames)
        return FrameSource(_folder_frames(paths), len(paths), 24.0, f"frames in {frames}", max_read_failures)
    if video is not None:
        if not Path(video).is_file():
            raise UserInputError(f"video not found: {video}")
        capture = _opened_quietly(str(video))
        if not capture.isOpened():
            raise UserInputError(f"cannot read video {video}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        fps = capture.get(cv2.CAP_PROP_FPS) or 24.0
        return FrameSource(_capture_frames(capture, count, live=False), count, fps, f"video {video}",
                           max_read_failures)
    capture = _opened_quietly(int(camera))
    if not capture.isOpened():
        raise UserInputError(f"cannot open camera {camera}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    return FrameSource(_capture_frames(capture, None, live=True), None, fps, f"camera {camera}", max_read_failures)


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
