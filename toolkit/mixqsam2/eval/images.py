"""Image evaluation: mIoU of masks predicted from ground-truth box prompts.

Every non-crowd instance is prompted with its GT box (SAM's protocol); ``miou`` is the
mean IoU over instances, ``per_image`` the mean per image. ``box_fill_miou`` (per image:
``per_image_fill``) scores the trivial "fill the box" answer, the floor a model has to beat; :func:`grabcut_baseline`
scores a classical, training-free answer to the same prompts (OpenCV's GrabCut), the level
a learned model should clear on images unlike its training data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm import tqdm

from mixqsam2.data.loaders import CocoImages
from mixqsam2.errors import UserInputError
from mixqsam2.eval.agreement import MaskCallback
from mixqsam2.eval.metrics import mask_iou
from mixqsam2.memory.prompts import Prompt, clip_box

# (rgb, {object id: prompt}) -> {object id: bool mask}
Segmenter = Callable[[np.ndarray, dict[int, Prompt]], dict[int, np.ndarray]]


def box_mask(box, shape) -> np.ndarray:
    """The pixels of an ``(x0, y0, x1, y1)`` box (corners rounded): what fill-the-box predicts.

    >>> int(box_mask((1, 1, 3, 2), (4, 4)).sum())
    2
    """
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def grabcut_mask(rgb: np.ndarray, box, iterations: int = 5) -> np.ndarray:
    """OpenCV's GrabCut started from an ``(x0, y0, x1, y1)`` box: the box's pixels it keeps as
    foreground after fitting colour models inside and outside the box. A box too small to fit
    them (or a GrabCut failure) answers with the box itself. OpenCV's random generator (GrabCut's
    k-means start) is seeded first, so an answer does not depend on what ran before it.

    >>> rgb = np.zeros((40, 40, 3), np.uint8); rgb[10:30, 12:28] = (200, 40, 40)
    >>> rgb[5:35, 5:10] = (200, 40, 40)   # the same colour outside the box stays background
    >>> mask = grabcut_mask(rgb, (8, 6, 32, 34))
    >>> bool(mask[20, 20]), bool(mask[8, 9]), bool(mask[2, 2])
    (True, False, False)
    """
    import cv2

    box = clip_box(box, *rgb.shape[:2])
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return box_mask(box, rgb.shape[:2])
    labels = np.zeros(rgb.shape[:2], np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), labels, (x0, y0, x1 - x0, y1 - y0), *models, iterations,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # e.g. no background pixel left to fit a colour model on
        return box_mask(box, rgb.shape[:2])
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def evaluate_images(model, images: CocoImages, on_mask: MaskCallback | None = None,
                    box_zoom: float | None = None) -> dict:
    """``{"miou", "box_fill_miou", "instances", "per_image": {image_id: miou}, "per_image_fill":
    {image_id: fill-the-box miou}, "per_instance": {"image_id/object_id": {"iou", "fill_iou",
    "area"}}}`` (area: the object's pixels);
    ``on_mask((image_id, object_id), mask)`` sees every predicted mask (see
    :mod:`mixqsam2.eval.agreement`); ``box_zoom``: small boxes are segmented on a zoomed view
    (:class:`~mixqsam2.memory.tracker.StreamingTracker`'s option)."""
    from mixqsam2.memory.tracker import StreamingTracker

    return score_images(StreamingTracker(model, box_zoom=box_zoom).segment_image, images, on_mask)


def grabcut_baseline(images: CocoImages, iterations: int = 5) -> dict:
    """:func:`evaluate_images`'s scores for :func:`grabcut_mask` on every GT box (about 0.1 s
    per instance at 320x240 on one core)."""

    def segment(rgb, prompts):
        return {k: grabcut_mask(rgb, prompt.box, iterations) for k, prompt in prompts.items()}

    return score_images(segment, images, desc="GrabCut")


def score_images(segment: Segmenter, images: CocoImages, on_mask: MaskCallback | None = None,
                 desc: str = "eval images") -> dict:
    """:func:`evaluate_images`'s scores for any ``segment(rgb, prompts)``."""
    ious, fill_ious, per_image, per_image_fill, per_instance = [], [], {}, {}, {}
    for sample in tqdm(images, desc=desc, unit="img"):
        if not sample.masks:
            continue
        rgb = sample.rgb()
        prompts = {k: Prompt(box=clip_box(b, *rgb.shape[:2])) for k, b in sample.boxes.items()}
        pred = segment(rgb, prompts)
        scores = [mask_iou(pred[k], sample.masks[k]) for k in prompts]
        for k in prompts if on_mask else ():
            on_mask((str(sample.image_id), k), pred[k])
        fills = [mask_iou(box_mask(prompts[k].box, rgb.shape[:2]), sample.masks[k]) for k in prompts]
        for k, score, fill in zip(prompts, scores, fills):
            per_instance[f"{sample.image_id}/{k}"] = {"iou": score, "fill_iou": fill, "area": int(sample.masks[k].sum())}
        fill_ious += fills
        ious += scores
        per_image[str(sample.image_id)] = float(np.mean(scores))
        per_image_fill[str(sample.image_id)] = float(np.mean(fills))
    if not ious:
        raise UserInputError(f"the image set {images.image_dir.parent} has no annotated instance")
    return {"miou": float(np.mean(ious)), "box_fill_miou": float(np.mean(fill_ious)), "instances": len(ious),
            "per_image": per_image, "per_image_fill": per_image_fill, "per_instance": per_instance}
