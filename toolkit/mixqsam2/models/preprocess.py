"""Frame pre-processing exactly as sam2's video predictor does it, in NumPy (no torch).

sam2 resizes with PIL's default filter to ``image_size`` x ``image_size`` (aspect ratio is
not kept), scales to [0, 1] and normalizes with the ImageNet mean/std.

>>> import numpy as np
>>> frame = np.zeros((48, 64, 3), np.uint8)
>>> preprocess_frame(frame, 32).shape
(3, 32, 32)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def preprocess_frame(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """``rgb``: uint8 (H, W, 3) -> float32 (3, image_size, image_size), normalized."""
    resized = np.asarray(Image.fromarray(rgb).resize((image_size, image_size)))
    chw = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)
    return (chw - IMAGENET_MEAN) / IMAGENET_STD
