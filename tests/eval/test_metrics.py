import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mixqsam2.eval.metrics import boundary_f, boundary_map, mask_iou, video_jf


def _square(y, x, size=20, shape=(100, 100)):
    mask = np.zeros(shape, bool)
    mask[y : y + size, x : x + size] = True
    return mask


@pytest.mark.parametrize("seed", range(5))
def test_j_equals_pycocotools_iou(seed):
    rng = np.random.default_rng(seed)
    a = rng.random((60, 80)) < 0.3
    b = rng.random((60, 80)) < 0.4
    rle = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (a, b)]
    expected = mask_utils.iou([rle[0]], [rle[1]], [0])[0, 0]
    assert mask_iou(a, b) == pytest.approx(expected, abs=1e-12)


def test_empty_masks_agree():
    empty = np.zeros((10, 10), bool)
    assert mask_iou(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, _square(2, 2, 5, (10, 10))) == 0.0


def test_boundary_map_of_a_square():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    expected = np.zeros((6, 6), bool)
    expected[0, 0:4] = True  # above the square: its south (or south-east) neighbour is inside
    expected[1:4, 0] = True  # left of it: east neighbour inside
    expected[3, 1:4] = True  # bottom row of the square: south neighbour outside
    expected[1:4, 3] = True  # right column of the square: east neighbour outside
    assert (boundary_map(mask) == expected).all()


def test_f_tolerance_is_0008_of_the_diagonal():
    # 100x100: diagonal 141.4 -> tolerance ceil(1.13) = 2 pixels
    gt = _square(40, 40)
    assert boundary_f(_square(40, 42), gt) == 1.0  # 2 px off: every boundary pixel matches
    assert boundary_f(_square(40, 43), gt) < 1.0  # 3 px off: the vertical edges no longer match


def test_f_of_an_extra_far_object_is_two_thirds():
    # prediction = GT square + an equal square far away: precision 1/2, recall 1 -> F = 2/3
    gt = _square(10, 10)
    pred = gt | _square(60, 60)
    assert boundary_f(pred, gt) == pytest.approx(2 / 3, abs=1e-9)


def test_video_jf_excludes_first_and_last_frames():
    scores = {1: [(0.0, 0.0), (1.0, 0.5), (0.5, 0.5), (0.0, 0.0)], 2: [(0.0, 0.0), (0.5, 1.0), (0.5, 1.0), (0.0, 0.0)]}
    result = video_jf(scores)
    assert result["per_object"][1] == {"J": 0.75, "F": 0.5}
    assert result["J"] == pytest.approx(0.625) and result["F"] == pytest.approx(0.75)
    assert result["JF"] == pytest.approx(0.6875)
