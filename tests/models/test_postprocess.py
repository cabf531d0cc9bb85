"""Hole filling checked against sam2's definition (``fill_holes_in_mask_scores``, whose CUDA
extension is absent here): background = logit <= 0; a hole = an 8-connected background
component of at most ``max_area`` pixels, wherever it lies; holes get the logit 0.1, every
other pixel keeps its value."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from mixqsam2.models.postprocess import fill_holes


def _disc_with_holes(sizes):
    """A foreground square (logit 5) with square holes (logit -3) of the given side lengths."""
    logits = np.full((32, 32), -8.0, np.float32)
    logits[2:30, 2:30] = 5.0
    for index, side in enumerate(sizes):
        y = 4 + 8 * index
        logits[y:y + side, 6:6 + side] = -3.0
    return logits


def test_holes_up_to_max_area_are_filled_with_a_small_positive_logit():
    logits = _disc_with_holes([2, 3])  # holes of 4 and 9 pixels
    filled = fill_holes(logits, max_area=8)
    assert (filled[4:6, 6:8] == np.float32(0.1)).all()  # 4 <= 8: filled
    assert (filled[12:15, 6:9] == -3.0).all()  # 9 > 8: kept
    changed = filled != logits
    assert changed.sum() == 4 and filled.dtype == logits.dtype
    assert (fill_holes(logits, max_area=9)[12:15, 6:9] == np.float32(0.1)).all()  # area == max_area: filled


def test_components_are_8_connected():
    logits = np.full((12, 12), 2.0, np.float32)
    logits[3:5, 3:5] = -1.0
    logits[5:7, 5:7] = -1.0  # touches the first hole at a corner only: one 8-connected hole of 8 pixels
    assert (fill_holes(logits, max_area=7) == logits).all()
    assert (fill_holes(logits, max_area=8)[logits < 0] == np.float32(0.1)).all()


def test_zero_is_background_and_small_border_regions_count_as_holes():
    logits = np.full((10, 10), 1.0, np.float32)
    logits[0, 0:3] = 0.0  # a 3-pixel background region on the border (sam2 does not exclude those)
    logits[9, :] = -2.0  # 10 pixels: too big
    filled = fill_holes(logits, max_area=3)
    assert (filled[0, 0:3] == np.float32(0.1)).all() and (filled[9] == -2.0).all()


def test_an_empty_mask_stays_empty():
    logits = np.full((8, 8), -5.0, np.float32)
    assert (fill_holes(logits, max_area=8) == logits).all()


def _reference(logits, max_area):
    """sam2's definition written with SciPy's labelling (8-connectivity), one mask at a time."""
    out = logits.copy()
    for index in np.ndindex(logits.shape[:-2]):
        labels, _ = ndimage.label(logits[index] <= 0, structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel())
        is_hole = (labels > 0) & (areas[labels] <= max_area)
        out[index][is_hole] = np.float32(0.1)
    return out


@pytest.mark.parametrize("max_area", [1, 8, 40])
def test_random_batches_match_the_definition(max_area):
    rng = np.random.default_rng(max_area)
    logits = rng.normal(0.8, 1.0, (3, 2, 64, 64)).astype(np.float32)  # [N, 1-or-more, H, W], many small holes
    expected = _reference(logits, max_area)
    filled = fill_holes(logits, max_area)
    assert filled.shape == logits.shape and (filled == expected).all()
    assert (filled != logits).any()


def test_max_area_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        fill_holes(np.zeros((4, 4), np.float32), 0)


def test_imports_neither_torch_nor_sam2():
    code = "import sys, mixqsam2.models.postprocess; print('torch' in sys.modules or 'sam2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
