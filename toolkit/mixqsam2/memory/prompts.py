"""Prompts in video-pixel coordinates, validated against the frame they apply to.

>>> import numpy as np
>>> Prompt(box=(10, 10, 50, 40)).validate(height=64, width=64)
>>> Prompt(box=(10, 10, 90, 40)).validate(height=64, width=64)
Traceback (most recent call last):
...
mixqsam2.errors.UserInputError: box (10, 10, 90, 40) lies outside the 64x64 frame
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from mixqsam2.errors import UserInputError


@dataclass(frozen=True)
class Prompt:
    """Exactly one of: a binary ``mask`` (H, W), a ``box`` (x0, y0, x1, y1), or ``points``
    [(x, y), ...] with ``labels`` (1 foreground, 0 background; default all 1)."""

    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] | None = None
    labels: tuple[int, ...] | None = None

    def __post_init__(self):
        given = sum(x is not None for x in (self.mask, self.box, self.points))
        if given != 1:
            raise UserInputError("a prompt needs exactly one of: mask, box, points")

    def validate(self, height: int, width: int) -> None:
        """Raise :class:`UserInputError` if the prompt does not fit a ``height`` x ``width`` frame."""
        if self.mask is not None:
            if self.mask.shape != (height, width):
                raise UserInputError(
                    f"prompt mask is {self.mask.shape[1]}x{self.mask.shape[0]} but the frame is {width}x{height}"
                )
            if not self.mask.any():
                raise UserInputError("prompt mask is empty (no foreground pixel)")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise UserInputError(f"box {self.box} lies outside the {width}x{height} frame")
        if self.points is not None:
            for x, y in self.points:
                if not (0 <= x < width and 0 <= y < height):
                    raise UserInputError(f"point ({x}, {y}) lies outside the {width}x{height} frame")
            if self.labels is not None and len(self.labels) != len(self.points):
                raise UserInputError("points and labels differ in length")


def clip_box(box: tuple[float, float, float, float], height: int, width: int) -> tuple[float, float, float, float]:
    """``box`` (x0, y0, x1, y1) clipped to a ``height`` x ``width`` frame (GT boxes may overhang by rounding).

    >>> clip_box((-2.0, 5.0, 330.0, 20.0), 240, 320)
    (0.0, 5.0, 320.0, 20.0)
    """
    x0, y0, x1, y1 = box
    return (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))


Window = tuple[int, int, int, int]  # (top, left, rows, cols) of a frame


def zoom_window(box: tuple[float, float, float, float], height: int, width: int, span: float,
                previous: Window | None = None, max_change: float | None = None) -> Window | None:
    """Where to look at a small ``box``: the region (top, left, rows, cols) of a ``height`` x
    ``width`` frame, of the frame's aspect, in which the box spans ``span`` of the region's
    height or width (whichever it fills more), centred on the box and shifted inside the frame.
    None when the box already spans ``span`` of the frame (nothing to zoom). With a
    ``previous`` window, the region's size is kept within a factor ``max_change`` of it
    (how a window follows a tracked object without collapsing onto a shrinking mask or
    blowing up with a leaking one).

    >>> zoom_window((100, 100, 120, 110), 240, 320, span=0.25)  # a 20x10 box, 60x80 around it
    (75, 70, 60, 80)
    >>> zoom_window((0, 0, 160, 120), 240, 320, span=0.25) is None
    True
    >>> zoom_window((100, 100, 104, 102), 240, 320, span=0.25, previous=(75, 70, 60, 80), max_change=1.1)
    (74, 66, 55, 73)
    """
    x0, y0, x1, y1 = box
    rows = max(y1 - y0, (x1 - x0) * height / width) / span
    if previous is not None and max_change is not None:
        rows = min(max(rows, previous[2] / max_change), previous[2] * max_change)
    rows = max(1, int(round(rows)))
    if rows >= height:
        return None
    cols = min(width, max(1, int(round(rows * width / height))))
    top = int(round(min(max((y0 + y1 - rows) / 2, 0), height - rows)))
    left = int(round(min(max((x0 + x1 - cols) / 2, 0), width - cols)))
    return top, left, rows, cols


def extent(prompt: Prompt) -> tuple[float, float, float, float] | None:
    """The box (x0, y0, x1, y1) a box or mask prompt covers; None for points (no extent).

    >>> mask = np.zeros((8, 8), bool); mask[2:4, 3:7] = True
    >>> extent(Prompt(mask=mask)), extent(Prompt(points=((1, 1),)))
    ((3, 2, 7, 4), None)
    """
    if prompt.box is not None:
        return prompt.box
    return None if prompt.mask is None else mask_box(prompt.mask)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) around a non-empty mask's pixels (x1, y1 exclusive).

    >>> mask = np.zeros((8, 8), bool); mask[2:4, 3:7] = True
    >>> mask_box(mask)
    (3, 2, 7, 4)
    """
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop(array: np.ndarray, window: Window) -> np.ndarray:
    """The ``window`` of an image or mask (H, W, ...), contiguous.

    >>> crop(np.arange(12).reshape(3, 4), (1, 2, 2, 2)).tolist()
    [[6, 7], [10, 11]]
    """
    top, left, rows, cols = window
    return np.ascontiguousarray(array[top : top + rows, left : left + cols])


def paste(mask: np.ndarray, window: Window, height: int, width: int) -> np.ndarray:
    """A ``window``'s boolean mask put back at its place in an empty ``height`` x ``width`` frame.

    >>> paste(np.ones((2, 2), bool), (1, 2, 2, 2), 3, 4).astype(int).tolist()
    [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    if mask.shape == (height, width):
        return mask
    top, left, rows, cols = window
    out = np.zeros((height, width), bool)
    out[top : top + rows, left : left + cols] = mask
    return out


def in_window(prompt: Prompt, window: Window) -> Prompt:
    """``prompt`` in the coordinates of a ``window`` of its frame: a mask cut to the window, a
    box clipped to it, points shifted.

    >>> in_window(Prompt(box=(10.0, 20.0, 30.0, 40.0)), (15, 5, 20, 20)).box
    (5.0, 5.0, 20.0, 20.0)
    """
    top, left, rows, cols = window
    if prompt.mask is not None:
        return Prompt(mask=crop(prompt.mask, window))
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        return Prompt(box=clip_box((x0 - left, y0 - top, x1 - left, y1 - top), rows, cols))
    return Prompt(points=tuple((x - left, y - top) for x, y in prompt.points), labels=prompt.labels)


def prompt_then_track(tracker, frames: Iterable[np.ndarray], prompts: dict[int, Prompt]) -> Iterator:
    """Give ``prompts`` with the first of ``frames`` and track them through the rest: yields
    ``tracker.step(rgb, prompts_or_None)``'s result for each frame, one frame at a time.

    >>> class Recorder:  # any object with step(rgb, prompts) works, e.g. a StreamingTracker
    ...     def step(self, rgb, prompts):
    ...         return rgb, prompts is not None
    >>> list(prompt_then_track(Recorder(), ["f0", "f1", "f2"], {1: Prompt(box=(0, 0, 4, 4))}))
    [('f0', True), ('f1', False), ('f2', False)]
    """
    for index, rgb in enumerate(frames):
        yield tracker.step(rgb, prompts if index == 0 else None)
