"""Mask file formats: COCO RLE, DAVIS palette PNGs, and single-channel 0/255 mask PNGs.

>>> import numpy as np
>>> mask = np.zeros((4, 5), bool); mask[1:3, 2:4] = True
>>> bool((decode_rle(encode_rle(mask)) == mask).all())
True
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import write_bytes_atomic


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE (JSON-ready: ``counts`` as str) of a boolean mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE, as some COCO files use
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return mask_utils.decode(rle).astype(bool)


def davis_palette() -> list[int]:
    """The 256-colour palette DAVIS annotations use (PASCAL VOC's colour map)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write an object-id map (uint8, 0 = background) as a DAVIS palette PNG."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette())
    write_bytes_atomic(path, _png_bytes(image))


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as a single-channel PNG (0 background, 255 object)."""
    write_bytes_atomic(path, _png_bytes(Image.fromarray(mask.astype(np.uint8) * 255, mode="L")))


def read_label_png(path: str | Path) -> np.ndarray:
    """Object-id map (uint8, 0 = background) from a mask image.

    Accepted: a palette PNG (DAVIS: palette indices are object ids), a grayscale or 1-bit
    mask (object id 1 where > 127, or where 1 for a 0/1 mask), and an RGB(A) image only when
    its colour channels are equal and binary (a grayscale mask saved as RGB). Anything else,
    e.g. a photo, is refused: it is not a mask.

    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "photo.png"
    >>> Image.fromarray(np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 200, 90)])).save(path)
    >>> read_label_png(path)
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: ... is a colour image, not a mask (give a grayscale, binary or palette PNG)
    """
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read mask {path}: {exc}") from None
    if image.mode == "P":
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("1", "L", "LA"):
        return _binary_labels(np.asarray(image.convert("L")))
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"))
        values = set(np.unique(rgb).tolist())
        if (rgb == rgb[..., :1]).all() and (values <= {0, 255} or values <= {0, 1}):
            return _binary_labels(rgb[..., 0])
        raise UserInputError(f"mask {path} is a colour image, not a mask (give a grayscale, binary or palette PNG)")
    raise UserInputError(f"mask {path} has pixel mode {image.mode}; give a grayscale, binary or palette PNG")


def _binary_labels(gray: np.ndarray) -> np.ndarray:
    """Object id 1 where a 0/1 mask is 1, or where a 0..255 mask is above 127."""
    return (gray > (0 if gray.max() <= 1 else 127)).astype(np.uint8)
