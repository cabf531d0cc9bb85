"""Image evaluation: mIoU of masks predicted from ground-truth box prompts.

Every non-crowd instance is prompted with its GT box (SAM's protocol); ``miou`` is the
mean IoU over instances, ``per_image`` the mean per image. ``box_fill_miou`` scores the
trivial "fill the box" answer, the floor a model has to beat.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from mixqsam2.data.loaders import CocoImages
from mixqsam2.errors import UserInputError
from mixqsam2.eval.agreement import MaskCallback
from mixqsam2.eval.metrics import mask_iou
from mixqsam2.memory.prompts import Prompt, clip_box


def box_mask(box, shape) -> np.ndarray:
    """The pixels of an ``(x0, y0, x1, y1)`` box (corners rounded): what fill-the-box predicts.

    >>> int(box_mask((1, 1, 3, 2), (4, 4)).sum())
    2
    """
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def evaluate_images(model, images: CocoImages, on_mask: MaskCallback | None = None,
                    box_zoom: float | None = None) -> dict:
    """``{"miou", "box_fill_miou", "instances", "per_image": {image_id: miou}, "per_instance":
    {"image_id/object_id": {"iou", "fill_iou", "area"}}}`` (area: the object's pixels);
    ``on_mask((image_id, object_id), mask)`` sees every predicted mask (see
    :mod:`mixqsam2.eval.agreement`); ``box_zoom``: small boxes are segmented on a zoomed view
    (:class:`~mixqsam2.memory.tracker.StreamingTracker`'s option)."""
    from mixqsam2.memory.tracker import StreamingTracker

    tracker = StreamingTracker(model, box_zoom=box_zoom)
    ious, fill_ious, per_image, per_instance = [], [], {}, {}
    for sample in tqdm(images, desc="eval images", unit="img"):
        if not sample.masks:
            continue
        rgb = sample.rgb()
        prompts = {k: Prompt(box=clip_box(b, *rgb.shape[:2])) for k, b in sample.boxes.items()}
        pred = tracker.segment_image(rgb, prompts)
        scores = [mask_iou(pred[k], sample.masks[k]) for k in prompts]
        for k in prompts if on_mask else ():
            on_mask((str(sample.image_id), k), pred[k])
        fills = [mask_iou(box_mask(prompts[k].box, rgb.shape[:2]), sample.masks[k]) for k in prompts]
        for k, score, fill in zip(prompts, scores, fills):
            per_instance[f"{sample.image_id}/{k}"] = {"iou": score, "fill_iou": fill, "area": int(sample.masks[k].sum())}
        fill_ious += fills
        ious += scores
        per_image[str(sample.image_id)] = float(np.mean(scores))
    if not ious:
        raise UserInputError(f"the image set {images.image_dir.parent} has no annotated instance")
    return {"miou": float(np.mean(ious)), "box_fill_miou": float(np.mean(fill_ious)), "instances": len(ious),
            "per_image": per_image, "per_instance": per_instance}

