"""mixqsam2.eval.images: GrabCut from the box, the classical baseline of box prompts."""

import json

import numpy as np
import pytest
from PIL import Image

from mixqsam2.data.formats import encode_rle
from mixqsam2.data.loaders import CocoImages
from mixqsam2.eval.images import box_mask, evaluate_images, grabcut_baseline, grabcut_mask, score_images
from mixqsam2.eval.metrics import mask_iou


def _l_shape(shape, top, left, size):
    """An L filling about half of its ``size`` x ``size`` box."""
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size // 3] = True
    mask[top + 2 * size // 3:top + size, left:left + size] = True
    return mask


def _scene(seed=0):
    """A noisy grey image with two L-shaped objects, one red and one blue."""
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal(120, 12, (72, 96, 3)), 0, 255).astype(np.uint8)
    masks = {1: _l_shape(rgb.shape[:2], 8, 10, 30), 2: _l_shape(rgb.shape[:2], 30, 52, 36)}
    for mask, colour in zip(masks.values(), ((210, 40, 30), (30, 60, 200))):
        rgb[mask] = np.clip(rng.normal(colour, 10, (int(mask.sum()), 3)), 0, 255)
    return rgb, masks


def _box(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_grabcut_keeps_the_object_and_drops_the_rest_of_its_box():
    rgb, masks = _scene()
    for mask in masks.values():
        box = _box(mask)
        assert mask_iou(box_mask(box, mask.shape), mask) < 0.6
        assert mask_iou(grabcut_mask(rgb, box), mask) > 0.9


def test_a_box_too_thin_for_grabcut_is_answered_with_itself():
    rgb, _ = _scene()
    assert np.array_equal(grabcut_mask(rgb, (10, 10, 11, 30)), box_mask((10, 10, 11, 30), rgb.shape[:2]))


@pytest.fixture
def coco_scenes(tmp_path):
    """Two images of :func:`_scene` in the layout ``CocoImages.from_dir`` opens."""
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for image_id in (1, 2):
        rgb, masks = _scene(seed=image_id)
        Image.fromarray(rgb).save(tmp_path / "images" / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 72, "width": 96})
        for object_id, mask in masks.items():
            x0, y0, x1, y1 = (int(v) for v in _box(mask))
            annotations.append({"id": 10 * image_id + object_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "segmentation": encode_rle(mask), "area": int(mask.sum()),
                                "bbox": [x0, y0, x1 - x0, y1 - y0]})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    return CocoImages.from_dir(tmp_path)


def test_the_grabcut_baseline_scores_the_same_instances_as_a_model(coco_scenes):
    from mixqsam2.models import build_model

    model = evaluate_images(build_model("pico"), coco_scenes)
    grabcut = grabcut_baseline(coco_scenes)
    assert set(grabcut["per_instance"]) == set(model["per_instance"]) == {"1/11", "1/12", "2/21", "2/22"}
    assert grabcut["box_fill_miou"] == model["box_fill_miou"] < 0.6
    assert grabcut["miou"] > 0.9 and set(grabcut["per_image"]) == {"1", "2"}


def test_fill_the_box_is_scored_per_image_as_the_mean_over_its_objects(coco_scenes):
    empty = score_images(lambda rgb, prompts: {k: np.zeros(rgb.shape[:2], bool) for k in prompts}, coco_scenes)
    assert empty["per_image"] == {"1": 0.0, "2": 0.0}
    for image in ("1", "2"):
        fills = [v["fill_iou"] for key, v in empty["per_instance"].items() if key.split("/")[0] == image]
        assert len(fills) == 2 and empty["per_image_fill"][image] == pytest.approx(np.mean(fills))
        assert empty["per_image_fill"][image] > 0
    filled = score_images(lambda rgb, prompts: {k: box_mask(p.box, rgb.shape[:2]) for k, p in prompts.items()},
                          coco_scenes)  # a segmenter that fills the box scores fill-the-box's per image
    assert filled["per_image"] == filled["per_image_fill"] == empty["per_image_fill"]


def test_grabcut_answers_the_same_whatever_ran_before():
    """GrabCut starts its colour models with k-means on OpenCV's random generator; on a held-out
    image most answers change with that generator's state unless it is seeded."""
    import cv2

    from mixqsam2.data.heldout import heldout_image

    rgb, labels = heldout_image(seed=1, index=0)
    boxes = [_box(labels == label) for label in np.unique(labels) if label]
    first = [grabcut_mask(rgb, box) for box in boxes]
    cv2.randu(np.zeros((50, 50)), 0, 1)  # moves OpenCV's random generator
    assert all(np.array_equal(grabcut_mask(rgb, box), mask) for box, mask in zip(boxes, first))
