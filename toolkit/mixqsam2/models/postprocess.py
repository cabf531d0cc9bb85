"""Mask post-processing as sam2 does it, without torch or sam2's CUDA extension.

sam2's video predictor fills small holes in its low-resolution mask logits
(``fill_hole_area``, 8 in the configs ``build_sam2_video_predictor`` loads) with
``sam2.utils.misc.fill_holes_in_mask_scores``, whose connected components come from its
CUDA extension ``sam2._C``; without that extension sam2 warns and skips the step. Here the
same definition runs on NumPy with OpenCV's connected components, so it runs on a Jetson
without torch and gives the masks sam2 gives where ``_C`` is present.
"""

from __future__ import annotations

import cv2
import numpy as np

HOLE_LOGIT = 0.1  # what sam2 writes into a filled hole: a small positive score (foreground)


def fill_holes(mask_logits: np.ndarray, max_area: int) -> np.ndarray:
    """``mask_logits`` [..., H, W] with every small hole filled, as sam2 defines it.

    A hole is a connected component (8-connectivity) of the background, the pixels whose
    logit is <= 0, with at most ``max_area`` pixels; sam2 counts every such component, also
    one that touches the border. Its pixels get the logit 0.1; every other pixel keeps its
    value. Each [H, W] mask of the leading dimensions is filled on its own.

    >>> logits = np.full((5, 5), 3.0, np.float32)
    >>> logits[2, 2] = -4.0  # a one-pixel hole
    >>> fill_holes(logits, max_area=1)[2, 2], fill_holes(logits, max_area=1)[0, 0]
    (np.float32(0.1), np.float32(3.0))
    """
    if max_area <= 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    logits = np.asarray(mask_logits)
    flat = logits.reshape(-1, *logits.shape[-2:])
    holes = np.stack([_small_background_components(mask <= 0, max_area) for mask in flat])
    return np.where(holes, np.asarray(HOLE_LOGIT, logits.dtype), flat).reshape(logits.shape)


def _small_background_components(background: np.ndarray, max_area: int) -> np.ndarray:
    """Pixels of the 8-connected components of ``background`` (bool [H, W]) with <= ``max_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False  # OpenCV's label 0 is the pixels outside ``background``
    return small[labels]
