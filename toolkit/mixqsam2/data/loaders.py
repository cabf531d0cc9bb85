"""Loaders for the layouts users have: COCO (pycocotools), DAVIS-2017 and SA-V.

Frames are read lazily, one at a time: a long video is never loaded whole.

>>> import tempfile, pathlib
>>> from mixqsam2.data.synth import write_video_set
>>> root = pathlib.Path(tempfile.mkdtemp()) / "v"
>>> write_video_set(root, num=1, frames=2, seed=0)
>>> video = open_video_set(root)[0]
>>> video.name, len(video.frame_names), sorted(video.prompt_masks())
('vid0000', 2, [1, 2])
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from mixqsam2.data.formats import decode_rle, read_label_png
from mixqsam2.errors import UserInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 (H, W, 3) from an image file (decoded with PIL, as sam2 does)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read image {path}: {exc}") from None


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of a frame folder in frame order (numeric names sort numerically)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"frame folder not found: {folder}")
    frames = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not frames:
        raise UserInputError(f"no image frames ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return sorted(frames, key=lambda p: (int(p.stem) if p.stem.isdigit() else float("inf"), p.name))


# ---------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageSample:
    image_id: int
    path: Path
    masks: dict[int, np.ndarray]  # annotation id -> bool mask
    boxes: dict[int, tuple[float, float, float, float]]  # annotation id -> x0, y0, x1, y1

    def rgb(self) -> np.ndarray:
        return read_rgb(self.path)


class CocoImages:
    """A COCO instance-segmentation set: ``image_dir`` + an annotation JSON (pycocotools).

    ``CocoImages.from_dir(DIR)`` opens the layout ``mixqsam2 synth images`` writes
    (``DIR/images`` + ``DIR/annotations.json``); crowd annotations are skipped.
    """

    def __init__(self, image_dir: str | Path, annotation_file: str | Path):
        from pycocotools.coco import COCO

        self.image_dir = Path(image_dir)
        if not Path(annotation_file).is_file():
            raise UserInputError(f"COCO annotation file not found: {annotation_file}")
        try:
            self.coco = _quiet(COCO, str(annotation_file))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:  # pycocotools asserts the layout
            raise UserInputError(f"invalid COCO annotation file {annotation_file}: {exc}") from None
        self.image_ids = sorted(self.coco.getImgIds())

    @classmethod
    def from_dir(cls, root: str | Path) -> "CocoImages":
        root = Path(root)
        return cls(root / "images", root / "annotations.json")

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[ImageSample]:
        for image_id in self.image_ids:
            try:
                sample = self._sample(image_id)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise UserInputError(f"invalid COCO annotation for image {image_id} in {self.image_dir.parent}: "
                                     f"{type(exc).__name__}: {exc}") from None
            yield sample

    def _sample(self, image_id: int) -> ImageSample:
        info = self.coco.imgs[image_id]
        anns = [a for a in self.coco.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        masks = {a["id"]: self._mask(a, info) for a in anns}
        boxes = {a["id"]: (a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]) for a in anns}
        return ImageSample(image_id, self.image_dir / info["file_name"], masks, boxes)

    def _mask(self, ann: dict, info: dict) -> np.ndarray:
        segmentation = ann["segmentation"]
        if isinstance(segmentation, dict):
            return decode_rle(segmentation)
        return self.coco.annToMask(ann).astype(bool)  # polygons


def _quiet(fn, *args):
    """Call ``fn`` with its stdout swallowed (pycocotools prints progress)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


# ---------------------------------------------------------------------------- videos
class VideoSample:
    """One video: ordered frame files and per-object ground truth where annotated."""

    def __init__(self, name: str, frame_paths: list[Path], annotation_of, annotation_files):
        self.name = name
        self.frame_paths = frame_paths
        self._annotation_of = annotation_of  # frame stem -> {obj: mask} | None
        self._annotation_files = annotation_files  # frame stem -> the frame's annotation files (not read)

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frame_paths]

    def frames(self) -> Iterator[np.ndarray]:
        for path in self.frame_paths:
            yield read_rgb(path)

    def annotation(self, frame_name: str) -> dict[int, np.ndarray] | None:
        """Ground-truth masks per object id on a frame, or None where it is not annotated."""
        return self._annotation_of(frame_name)

    def is_annotated(self, frame_name: str) -> bool:
        """Whether ``frame_name`` has ground truth (``annotation`` is not None), without decoding it."""
        return bool(self._annotation_files(frame_name))

    def prompt_masks(self) -> dict[int, np.ndarray]:
        """Objects present on the first frame (DAVIS semi-supervised protocol)."""
        first = self.annotation(self.frame_names[0])
        if not first:
            raise UserInputError(f"video {self.name}: the first frame has no annotated object")
        return first


def _labels_to_masks(labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(i): labels == i for i in np.unique(labels) if i != 0}


def open_davis(root: str | Path, resolution: str = "480p") -> list[VideoSample]:
    """DAVIS-2017 layout: ``JPEGImages[/480p]/<vid>/*.jpg`` + ``Annotations[/480p]/<vid>/*.png``."""
    root = Path(root)
    images, annotations = root / "JPEGImages", root / "Annotations"
    if (images / resolution).is_dir():
        images, annotations = images / resolution, annotations / resolution
    videos = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        ann_dir = annotations / folder.name

        def files(stem, ann_dir=ann_dir):
            return [path] if (path := ann_dir / f"{stem}.png").exists() else []

        def annotation_of(stem, files=files):
            return _labels_to_masks(read_label_png(found[0])) if (found := files(stem)) else None

        videos.append(VideoSample(folder.name, list_frames(folder), annotation_of, files))
    return videos


def open_sav(root: str | Path) -> list[VideoSample]:
    """SA-V layout: ``JPEGImages_24fps/<vid>/%05d.jpg`` + ``Annotations_6fps/<vid>/<obj>/%05d.png``."""
    root = Path(root)
    videos = []
    for folder in sorted(p for p in (root / "JPEGImages_24fps").iterdir() if p.is_dir()):
        obj_dirs = sorted(p for p in (root / "Annotations_6fps" / folder.name).iterdir() if p.is_dir())

        def files(stem, obj_dirs=obj_dirs):
            return [path for d in obj_dirs if (path := d / f"{stem}.png").exists()]

        def annotation_of(stem, files=files):
            found = {int(path.parent.name): read_label_png(path) > 0 for path in files(stem)}
            return {k: m for k, m in found.items() if m.any()} or ({} if found else None)

        videos.append(VideoSample(folder.name, list_frames(folder), annotation_of, files))
    return videos


def open_video_set(root: str | Path) -> list[VideoSample]:
    """Open a DAVIS- or SA-V-layout folder (detected from its sub-folders)."""
    root = Path(root)
    if (root / "JPEGImages_24fps").is_dir():
        videos = open_sav(root)
    elif (root / "JPEGImages").is_dir():
        videos = open_davis(root)
    else:
        raise UserInputError(f"{root} is not a DAVIS (JPEGImages/) or SA-V (JPEGImages_24fps/) video set")
    if not videos:
        raise UserInputError(f"no videos in {root}")
    return videos
