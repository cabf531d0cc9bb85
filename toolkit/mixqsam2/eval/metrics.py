"""Segmentation metrics exactly as the benchmarks define them.

- :func:`mask_iou` / J (region similarity): intersection over union; two empty masks
  agree perfectly (1.0), as in DAVIS.
- :func:`boundary_f` / F (contour accuracy): the DAVIS boundary F-measure. Boundaries are
  the pixels whose right, bottom or bottom-right neighbour differs; a boundary pixel
  matches if the other mask's boundary lies within ``ceil(0.008 * image diagonal)`` pixels
  (a disk). F is the harmonic mean of boundary precision and recall.
- :func:`video_jf`: per object, J and F averaged over the annotated frames other than the
  first (the prompt) and the last, as DAVIS-2017 does; the video scores average objects.

>>> import numpy as np
>>> a = np.zeros((10, 10), bool); a[2:6, 2:6] = True
>>> b = np.zeros((10, 10), bool); b[2:6, 2:8] = True
>>> round(mask_iou(a, b), 4)
0.6667
>>> boundary_f(a, a)
1.0
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008  # fraction of the image diagonal


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Pixels whose right, bottom or bottom-right neighbour differs (outside counts as the
    same value on the last row/column, as in DAVIS' ``seg2bmap``)."""
    mask = mask.astype(bool)
    east = np.zeros_like(mask)
    south = np.zeros_like(mask)
    south_east = np.zeros_like(mask)
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    height, width = gt.shape
    radius = math.ceil(tolerance * math.hypot(height, width))
    pred_b, gt_b = boundary_map(pred), boundary_map(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    kernel = _disk(radius)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), kernel) > 0
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel) > 0
    precision = (pred_b & gt_dil).sum() / n_pred
    recall = (gt_b & pred_dil).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def video_jf(per_frame: dict[int, list[tuple[float, float]]]) -> dict:
    """``per_frame``: object id -> [(J, F)] over the annotated frames, in order, including
    the first and last. Returns ``{"J", "F", "JF", "per_object": {id: {"J", "F"}}}``."""
    per_object = {}
    for obj_id, scores in per_frame.items():
        kept = scores[1:-1]
        if not kept:
            continue
        per_object[obj_id] = {"J": float(np.mean([j for j, _ in kept])), "F": float(np.mean([f for _, f in kept]))}
    if not per_object:
        raise ValueError("a video needs at least 3 annotated frames to score J&F")
    j = float(np.mean([s["J"] for s in per_object.values()]))
    f = float(np.mean([s["F"] for s in per_object.values()]))
    return {"J": j, "F": f, "JF": (j + f) / 2, "per_object": per_object}
