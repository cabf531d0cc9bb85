"""Mask files users give as prompts: what is a mask, and what is refused."""

import numpy as np
import pytest
from PIL import Image

from mixqsam2.data.formats import read_label_png, write_label_png, write_mask_png
from mixqsam2.errors import UserInputError

SQUARE = np.zeros((6, 8), bool)
SQUARE[1:4, 2:6] = True


def _save(tmp_path, array, mode=None):
    path = tmp_path / "mask.png"
    Image.fromarray(array, mode).save(path)
    return path


def test_grayscale_binary_palette_and_equal_channel_rgb_masks_are_read(tmp_path):
    gray = SQUARE.astype(np.uint8) * 255
    write_mask_png(tmp_path / "gray.png", SQUARE)
    assert (read_label_png(tmp_path / "gray.png") == SQUARE).all()
    assert (read_label_png(_save(tmp_path, SQUARE.astype(np.uint8))) == SQUARE).all()  # a 0/1 grayscale mask
    Image.fromarray(gray).convert("1").save(tmp_path / "bits.png")
    assert (read_label_png(tmp_path / "bits.png") == SQUARE).all()
    labels = SQUARE.astype(np.uint8) * 2
    write_label_png(tmp_path / "palette.png", labels)
    assert (read_label_png(tmp_path / "palette.png") == labels).all()
    assert (read_label_png(_save(tmp_path, np.dstack([gray] * 3))) == SQUARE).all()  # a mask saved as RGB


@pytest.mark.parametrize("case", ["photo", "gray photo as RGB", "red mask"])
def test_colour_images_are_not_masks(tmp_path, case):
    rng = np.random.default_rng(0)
    gray_photo = rng.integers(0, 256, SQUARE.shape, dtype=np.uint8)
    image = {
        "photo": rng.integers(0, 256, (*SQUARE.shape, 3), dtype=np.uint8),
        "gray photo as RGB": np.dstack([gray_photo] * 3),
        "red mask": np.dstack([SQUARE.astype(np.uint8) * 255, np.zeros_like(gray_photo), np.zeros_like(gray_photo)]),
    }[case]
    with pytest.raises(UserInputError, match="colour image, not a mask"):
        read_label_png(_save(tmp_path, image))
