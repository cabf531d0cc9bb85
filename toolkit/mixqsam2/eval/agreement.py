"""Agreement with a reference model: how far a quantized model's masks moved from the masks
of the model it came from, on the same prompts.

Accuracy against ground truth mixes two things: the model's own errors and what
quantization changed. At budgets where quantization barely matters the second is much
smaller than the first, and a random change is as likely to help a ground-truth score as
to hurt it (retention above 100 %). Agreement isolates the change: the mask IoU between
the quantized model's masks and the reference model's masks, instance by instance (images)
or object-frame by object-frame (videos); 1.0 means nothing moved.

Run the reference with ``on_mask=reference.record``, then the other model with
``on_mask=score``:

>>> import numpy as np
>>> reference = ReferenceMasks()
>>> reference.record(("img1", 1), np.eye(4, dtype=bool))
>>> score = AgreementScore(reference)
>>> score(("img1", 1), np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool))
>>> round(score.mean(), 3), score.per_unit()
(0.571, {'img1': 0.5714285714285714})
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mixqsam2.eval.metrics import mask_iou

MaskCallback = Callable[[tuple, np.ndarray], None]  # (key, mask) of every predicted mask


class ReferenceMasks:
    """The reference model's masks by key (unit, ...), bit-packed (1 bit per pixel)."""

    def __init__(self) -> None:
        self._masks: dict[tuple, tuple[tuple[int, ...], np.ndarray]] = {}

    def record(self, key: tuple, mask: np.ndarray) -> None:
        self._masks[key] = (mask.shape, np.packbits(mask.astype(bool)))

    def __getitem__(self, key: tuple) -> np.ndarray:
        shape, bits = self._masks[key]
        return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)

    def __len__(self) -> int:
        return len(self._masks)


class AgreementScore:
    """Mask IoU against a :class:`ReferenceMasks`, grouped by the first element of the key
    (an image id or a video name) so that paired statistics can resample whole units."""

    def __init__(self, reference: ReferenceMasks) -> None:
        self.reference = reference
        self._ious: dict[str, list[float]] = {}

    def __call__(self, key: tuple, mask: np.ndarray) -> None:
        self._ious.setdefault(str(key[0]), []).append(mask_iou(mask, self.reference[key]))

    def per_unit(self) -> dict[str, float]:
        return {unit: float(np.mean(ious)) for unit, ious in self._ious.items()}

    def mean(self) -> float:
        """Mean IoU over every compared mask."""
        ious = [iou for unit in self._ious.values() for iou in unit]
        if not ious:
            raise ValueError("no mask was compared with the reference")
        return float(np.mean(ious))
