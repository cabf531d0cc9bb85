"""Deterministic synthetic segmentation data in the formats users have (COCO, DAVIS).

Objects come in several shape families (star polygons, smooth blobs, random polygons,
ellipses, thin elongated strokes, shapes with holes, a real silhouette) and are textured with
crops of real photographs shipped by scikit-image, composited over a photo background; a
quarter of them are camouflaged (textured from the background's own photo). Videos add what
makes tracking hard:
objects that move, scale and rotate, unannotated occluders passing in front, look-alike
distractors (the same shape and texture as a target, not annotated), and targets that
leave the frame and come back. On request (:func:`cluttered`), unannotated objects of any
family and size are painted on the background behind a scene's own. Everything is a pure
function of the seed, and the seeds of generated sets live in their own seed space, apart
from training's (:func:`scene_rng`): no generated set reproduces a training scene, whatever
its seed.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "videos"
>>> write_video_set(out, num=1, frames=3, seed=0)
>>> sorted(p.name for p in (out / "Annotations" / "vid0000").iterdir())
['00000.png', '00001.png', '00002.png']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from mixqsam2.data.formats import encode_rle, write_label_png
from mixqsam2.errors import UserInputError
from mixqsam2.fileio import atomic_output_dir

_COLOR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
_GRAY_PHOTOS = ("camera", "brick", "grass", "gravel", "moon", "clock", "coins", "cell", "page", "text")
PATCH = 96  # canonical object patch size (pixels) before scaling
CAMOUFLAGE = 0.25  # the share of objects textured from the background's own photo
CLUTTER_SCALES = (0.33, 1.5)  # sizes of clutter objects, times the usual 0.15-0.45 of the short side
# The seed spaces of generated sets. Training (mixqsam2.train.data) seeds NumPy with plain
# lists [seed, step, ...]; NumPy pads a list to 4 words, so [0, k] and [0, k, 0, 0] are one
# seed and a set seeded with [seed, index] repeated training batches. A spawn key puts each
# kind of set in a space of its own (SeedSequence mixes it in after the padded seed).
SEED_SPACES = {"images": 0x5EED_0001, "videos": 0x5EED_0002}
GENERATOR_VERSION = 3  # changes when the same seed gives other data (cached sets are named by it)


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    try:
        import skimage.data
    except ImportError:
        raise UserInputError("generated data needs scikit-image (its sample photos): "
                             "pip install 'mixqsam2[calib]'") from None

    photos = [getattr(skimage.data, name)() for name in _COLOR_PHOTOS]
    photos += [np.repeat(getattr(skimage.data, name)()[..., None], 3, axis=2) for name in _GRAY_PHOTOS]
    return tuple(p[..., :3].astype(np.uint8) for p in photos)


def _photo_crop(rng: np.random.Generator, height: int, width: int, tint: bool, photo: int | None = None) -> np.ndarray:
    """A crop of photo ``photo`` (drawn when None), resized to ``height`` x ``width``."""
    photo = _photos()[rng.integers(len(_photos())) if photo is None else photo]
    ph, pw = photo.shape[:2]
    ch = int(rng.integers(min(ph, 96), ph + 1))
    cw = int(min(pw, max(32, ch * width / height)))
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = cv2.resize(photo[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA)
    if tint:
        crop = np.clip(crop * rng.uniform(0.5, 1.3, size=3), 0, 255).astype(np.uint8)
    return crop


def _star_shape(rng: np.random.Generator) -> np.ndarray:
    """A random star-convex polygon filling a PATCH x PATCH canvas (bool)."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radius = np.ones_like(angles)
    for k in range(1, 5):
        radius += rng.uniform(0, 0.35 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    radius = radius / radius.max() * (PATCH / 2 - 2)
    aspect = rng.uniform(0.6, 1.0)
    pts = np.stack([PATCH / 2 + radius * np.cos(angles), PATCH / 2 + aspect * radius * np.sin(angles)], 1)
    canvas = np.zeros((PATCH, PATCH), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool)


def _blob_shape(rng: np.random.Generator) -> np.ndarray:
    """A smooth random blob: low-frequency noise under a round window, thresholded."""
    noise = cv2.resize(rng.normal(size=(6, 6)).astype(np.float32), (PATCH, PATCH), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:PATCH, :PATCH] / (PATCH / 2) - 1
    field = noise + 2.5 * (1 - np.hypot(xx, yy))
    return _largest_component(field > np.quantile(field, rng.uniform(0.45, 0.7)))


def _polygon_shape(rng: np.random.Generator) -> np.ndarray:
    """A random (often concave) polygon of 3-9 vertices."""
    count = int(rng.integers(3, 10))
    angles = (np.arange(count) + rng.uniform(-0.35, 0.35, count)) * 2 * np.pi / count  # spread, not a sliver
    radius = rng.uniform(0.35, 1.0, count) * (PATCH / 2 - 2)
    pts = np.stack([PATCH / 2 + radius * np.cos(angles), PATCH / 2 + radius * np.sin(angles)], 1)
    canvas = np.zeros((PATCH, PATCH), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool)


def _ellipse_shape(rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((PATCH, PATCH), np.uint8)
    axes = (PATCH // 2 - 2, int(rng.uniform(0.3, 1.0) * (PATCH // 2 - 2)))
    cv2.ellipse(canvas, (PATCH // 2, PATCH // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return canvas.astype(bool)


def _thin_shape(rng: np.random.Generator) -> np.ndarray:
    """A thick stroke (a rod, a bent limb) through 2-4 points across the patch."""
    count = int(rng.integers(2, 5))
    xs = np.linspace(6, PATCH - 6, count)
    ys = PATCH / 2 + rng.uniform(-PATCH / 4, PATCH / 4, count)
    canvas = np.zeros((PATCH, PATCH), np.uint8)
    cv2.polylines(canvas, [np.stack([xs, ys], 1).round().astype(np.int32)], False, 1, int(rng.integers(8, 20)))
    return canvas.astype(bool)


def _holed_shape(rng: np.random.Generator) -> np.ndarray:
    """A blob, star or ellipse with an elliptic hole (a ring, a handle)."""
    outer = [_blob_shape, _star_shape, _ellipse_shape][int(rng.integers(3))](rng)
    hole = np.zeros((PATCH, PATCH), np.uint8)
    axes = (int(rng.uniform(0.1, 0.22) * PATCH), int(rng.uniform(0.08, 0.2) * PATCH))
    center = tuple(int(PATCH / 2 + rng.uniform(-6, 6)) for _ in range(2))
    cv2.ellipse(hole, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return outer & ~hole.astype(bool)


@lru_cache(maxsize=1)
def _horse() -> np.ndarray:
    import skimage.data

    horse = ~skimage.data.horse()  # black horse on white
    ys, xs = np.nonzero(horse)
    return horse[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _silhouette_shape(rng: np.random.Generator) -> np.ndarray:
    """scikit-image's horse silhouette (a real outline: legs, ears, tail), maybe mirrored."""
    horse = _horse()[:, ::-1] if rng.random() < 0.5 else _horse()
    scale = (PATCH - 4) / max(horse.shape)
    size = (max(1, round(horse.shape[1] * scale)), max(1, round(horse.shape[0] * scale)))
    small = cv2.resize(horse.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    canvas = np.zeros((PATCH, PATCH), np.uint8)
    y, x = (PATCH - small.shape[0]) // 2, (PATCH - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas.astype(bool)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


SHAPE_FAMILIES = {
    "star": _star_shape, "blob": _blob_shape, "polygon": _polygon_shape, "ellipse": _ellipse_shape,
    "thin": _thin_shape, "holed": _holed_shape, "silhouette": _silhouette_shape,
}


def random_shape(rng: np.random.Generator) -> np.ndarray:
    """A PATCH x PATCH bool mask from a family drawn uniformly from :data:`SHAPE_FAMILIES`.

    >>> random_shape(np.random.default_rng(0)).shape
    (96, 96)
    """
    families = list(SHAPE_FAMILIES.values())
    return families[int(rng.integers(len(families)))](rng)


def _bounce(start: float, velocity: float, t: float, lo: float, hi: float) -> float:
    """Position at time ``t`` moving at ``velocity`` and reflecting off ``lo`` and ``hi``."""
    span = hi - lo
    x = (start - lo + velocity * t) % (2 * span)
    return lo + (x if x <= span else 2 * span - x)


@dataclass(frozen=True)
class SceneObject:
    """An object of a scene: appearance, motion, and its annotation id (0 = not annotated)."""

    shape: np.ndarray  # bool [PATCH, PATCH]
    texture: np.ndarray  # uint8 [PATCH, PATCH, 3]
    label: int
    center: tuple[float, float]
    velocity: tuple[float, float]
    bounds: tuple[float, float, float, float]  # x_lo, x_hi, y_lo, y_hi for the center
    size: float  # pixels across at scale 1
    scale_wobble: float
    spin: float  # degrees per frame
    angle: float

    def placement(self, t: float) -> np.ndarray:
        """2x3 affine matrix from patch coordinates to frame coordinates at time ``t``."""
        x_lo, x_hi, y_lo, y_hi = self.bounds
        cx = _bounce(self.center[0], self.velocity[0], t, x_lo, x_hi)
        cy = _bounce(self.center[1], self.velocity[1], t, y_lo, y_hi)
        scale = self.size / PATCH * (1 + self.scale_wobble * np.sin(0.15 * t))
        matrix = cv2.getRotationMatrix2D((PATCH / 2, PATCH / 2), self.angle + self.spin * t, scale)
        matrix[:, 2] += (cx - PATCH / 2, cy - PATCH / 2)
        return matrix


def _make_object(rng, height, width, label, moving: bool, leaves: bool = False,
                 background_photo: int | None = None, scale: float = 1.0) -> SceneObject:
    """An object of a random shape family, 0.15-0.45 of the frame's short side across times
    ``scale``; camouflaged (textured from ``background_photo``) with probability
    :data:`CAMOUFLAGE`. Movers go 1-3 (sometimes up to 6) size units per 60 frames."""
    size = float(rng.uniform(0.15, 0.45) * min(height, width) * scale)
    margin = size * (0.8 if leaves else -0.3)  # a leaver's centre may go far enough out to vanish
    bounds = (-margin, width + margin, -margin, height + margin)
    speed = rng.uniform(1.0, 3.0) * (2.0 if rng.random() < 0.2 else 1.0) * (size / 60) if moving else 0.0
    camouflaged = background_photo is not None and rng.random() < CAMOUFLAGE
    heading = rng.uniform(0, 2 * np.pi)
    return SceneObject(
        shape=random_shape(rng),
        texture=_photo_crop(rng, PATCH, PATCH, tint=not camouflaged, photo=background_photo if camouflaged else None),
        label=label,
        center=(float(rng.uniform(size / 2, width - size / 2)), float(rng.uniform(size / 2, height - size / 2))),
        velocity=(speed * np.cos(heading), speed * np.sin(heading)),
        bounds=bounds,
        size=size,
        scale_wobble=float(rng.uniform(0, 0.3)) if moving else 0.0,
        spin=float(rng.uniform(-2, 2)) if moving else 0.0,
        angle=float(rng.uniform(0, 360)),
    )


def _look_alike(rng, target: SceneObject, height, width, scale: float = 1.0) -> SceneObject:
    """Same shape and texture as ``target`` (slightly retinted), other motion (for objects of
    ``scale``), no label."""
    other = _make_object(rng, height, width, label=0, moving=True, scale=scale)
    texture = np.clip(target.texture * rng.uniform(0.85, 1.15, size=3), 0, 255).astype(np.uint8)
    return replace(other, shape=target.shape, texture=texture, size=target.size)


def render(background: np.ndarray, objects: list[SceneObject], t: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``objects`` (back to front) at time ``t``: (rgb uint8, label map uint8)."""
    height, width = background.shape[:2]
    rgb, labels = background.copy(), np.zeros((height, width), np.uint8)
    for obj in objects:
        matrix = obj.placement(t)
        mask = cv2.warpAffine(obj.shape.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
        tex = cv2.warpAffine(obj.texture, matrix, (width, height), flags=cv2.INTER_LINEAR)
        rgb[mask] = tex[mask]
        labels[mask] = obj.label
    return rgb, labels


def _visible_fraction(labels: np.ndarray, label: int) -> float:
    return float((labels == label).mean())


def cluttered(rng, background: np.ndarray, count: int, photo: int) -> np.ndarray:
    """``background`` with ``count`` unannotated, still objects of any shape family painted on
    it, each of the usual size times a factor drawn log-uniform in ``CLUTTER_SCALES`` (0.05-0.68
    of the frame's short side across), a quarter of them camouflaged in ``photo``: a background
    full of other things' edges and textures, as a real one is. No draw for a count of 0.

    >>> background = np.zeros((60, 80, 3), np.uint8)
    >>> bool(cluttered(np.random.default_rng(0), background, 3, photo=0).any()), bool(background.any())
    (True, False)
    """
    low, high = np.log(CLUTTER_SCALES)
    height, width = background.shape[:2]
    objects = [_make_object(rng, height, width, label=0, moving=False, background_photo=photo,
                            scale=float(np.exp(rng.uniform(low, high)))) for _ in range(count)]
    return render(background, objects, 0.0)[0] if objects else background


def sample_image_scene(rng, height: int, width: int, object_scale: float = 1.0,
                       num_clutter: int = 0) -> tuple[np.ndarray, list[SceneObject]]:
    """A background and 1-4 objects (sizes times ``object_scale``); ``num_clutter`` other,
    unannotated objects are painted on the background (:func:`cluttered`; drawn last, so 0
    gives the scenes from before it)."""
    photo = int(rng.integers(len(_photos())))
    objects = [_make_object(rng, height, width, label=i + 1, moving=False, background_photo=photo, scale=object_scale)
               for i in range(int(rng.integers(1, 5)))]
    return cluttered(rng, _photo_crop(rng, height, width, tint=False, photo=photo), num_clutter, photo), objects


def sample_video_scene(rng, height: int, width: int, min_visible: float = 0.01, object_scale: float = 1.0,
                       num_clutter: int = 0):
    """A background and objects (targets, a look-alike, an occluder; sizes times
    ``object_scale``) whose targets all cover ``min_visible`` of frame 0 (times
    ``object_scale`` squared); scenes are redrawn until they do. ``num_clutter`` other,
    unannotated objects are then painted on the background (:func:`cluttered`)."""
    min_visible = min_visible * object_scale**2
    while True:
        num_targets = int(rng.integers(1, 4))
        photo = int(rng.integers(len(_photos())))
        leaver = int(rng.integers(num_targets)) if rng.random() < 0.6 else -1
        targets = [
            _make_object(rng, height, width, label=i + 1, moving=True, leaves=(i == leaver), background_photo=photo,
                         scale=object_scale)
            for i in range(num_targets)
        ]
        extras = []
        if rng.random() < 0.7:
            extras.append(_look_alike(rng, targets[int(rng.integers(num_targets))], height, width, object_scale))
        if rng.random() < 0.7:
            extras.append(_make_object(rng, height, width, label=0, moving=True, background_photo=photo,
                                       scale=object_scale))  # occluder
        order = rng.permutation(len(targets) + len(extras))
        objects = [(targets + extras)[i] for i in order]
        background = _photo_crop(rng, height, width, tint=False, photo=photo)
        _, labels = render(background, objects, 0.0)
        if all(_visible_fraction(labels, o.label) >= min_visible for o in targets):
            return cluttered(rng, background, num_clutter, photo), objects


def scene_rng(kind: str, seed: int, index: int) -> np.random.Generator:
    """The random stream of scene ``index`` of a generated ``kind`` set ("images" or "videos").

    >>> float(scene_rng("images", 0, 3).random()) == float(scene_rng("images", 0, 3).random())
    True
    >>> float(scene_rng("images", 0, 3).random()) == float(np.random.default_rng([0, 3, 0, 0]).random())
    False
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SEED_SPACES[kind], index)))


def write_image_set(out: str | Path, num: int, seed: int, height: int = 240, width: int = 320,
                    overwrite: bool = False) -> None:
    """COCO-format set: ``out/images/*.jpg`` + ``out/annotations.json`` (RLE masks, boxes).
    A non-empty ``out`` is refused unless ``overwrite`` (then only our files in it are replaced:
    :func:`~mixqsam2.fileio.atomic_output_dir`)."""
    images, annotations = [], []
    with atomic_output_dir(out, overwrite, kind="image set") as tmp:
        (tmp / "images").mkdir()
        for index in tqdm(range(num), desc="synth images", unit="img"):
            rng = scene_rng("images", seed, index)
            background, objects = sample_image_scene(rng, height, width)
            rgb, labels = render(background, objects, 0.0)
            name = f"{index:06d}.jpg"
            Image.fromarray(rgb).save(tmp / "images" / name, quality=95)
            images.append({"id": index, "file_name": name, "height": height, "width": width})
            for obj in objects:
                mask = labels == obj.label
                if mask.sum() < 64:  # fully or almost fully hidden: not an instance
                    continue
                ys, xs = np.nonzero(mask)
                bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
                annotations.append({
                    "id": len(annotations) + 1, "image_id": index, "category_id": 1, "iscrowd": 0,
                    "segmentation": encode_rle(mask), "area": int(mask.sum()), "bbox": bbox,
                })
        coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        (tmp / "annotations.json").write_text(json.dumps(coco))


def write_video_set(out: str | Path, num: int, frames: int, seed: int, height: int = 240, width: int = 320,
                    overwrite: bool = False) -> None:
    """DAVIS layout: ``out/JPEGImages/<vid>/00000.jpg`` + ``out/Annotations/<vid>/00000.png``
    (palette PNGs, object ids 1..n). A non-empty ``out`` is refused unless ``overwrite`` (then
    only our files in it are replaced: :func:`~mixqsam2.fileio.atomic_output_dir`)."""
    with atomic_output_dir(out, overwrite, kind="video set") as tmp:
        for index in tqdm(range(num), desc="synth videos", unit="video"):
            rng = scene_rng("videos", seed, index)
            background, objects = sample_video_scene(rng, height, width)
            name = f"vid{index:04d}"
            (tmp / "JPEGImages" / name).mkdir(parents=True)
            (tmp / "Annotations" / name).mkdir(parents=True)
            for t in range(frames):
                rgb, labels = render(background, objects, float(t))
                Image.fromarray(rgb).save(tmp / "JPEGImages" / name / f"{t:05d}.jpg", quality=95)
                write_label_png(tmp / "Annotations" / name / f"{t:05d}.png", labels)


def cached_set(cache: str | Path, kind: str, **spec) -> Path:
    """A generated ``kind`` set ("images": ``num, seed``; "videos": ``num, frames, seed``) in
    ``cache``, made once and reused; its folder name holds the spec and the generator version.

    >>> import tempfile
    >>> cached_set(tempfile.mkdtemp(), "videos", num=1, frames=2, seed=5).name
    'videos-num1-frames2-seed5-gen3'
    """
    path = Path(cache) / "-".join([kind, *(f"{k}{v}" for k, v in spec.items()), f"gen{GENERATOR_VERSION}"])
    if not path.is_dir():
        try:
            (write_image_set if kind == "images" else write_video_set)(path, **spec)
        except UserInputError:
            if not path.is_dir():  # not another process that made the same set meanwhile
                raise
    return path
