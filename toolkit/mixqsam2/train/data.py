"""Training batches for pico, drawn from the scene generators as sam2's training batches.

Every batch is a pure function of ``(seed, step)``, so a run resumed at step ``s`` sees the
same data as an uninterrupted one. Images are single frames (sam2 then prompts them with
points or boxes); video clips are sampled with a random stride from a moving scene, so
targets move, get occluded by unannotated objects, meet look-alikes and leave. Every clip
is seen through a camera (:class:`Camera`): a pan and zoom that drifts over the clip, a
lighting change, and sensor effects (blur, noise, JPEG artefacts); images get a still one.
With ``recolor`` > 0 that share of images and clips is also seen in other colours
(:class:`Recolor`); with ``small`` > 0 that share has its objects drawn smaller, with
``large`` > 0 a share of the others larger (:func:`object_scale`); with ``absent`` > 0 that
share of clips has a target vanish for a stretch of frames, as if fully occluded
(:func:`hidden_stretch`); with ``clutter`` > 0 that share of images and clips has a background
full of other, unannotated objects (:func:`clutter_count`).

>>> batch = image_batch(seed=0, step=0, num_images=2, image_size=64)
>>> batch.img_batch.shape[:2], batch.masks.shape[0]
(torch.Size([1, 2]), 1)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from mixqsam2.data.loaders import read_rgb
from mixqsam2.data.synth import render, sample_image_scene, sample_video_scene
from mixqsam2.models.preprocess import preprocess_frame

FRAME_HEIGHT, FRAME_WIDTH = 240, 320  # what the generators render; resized to the model's square input
MIN_PROMPT_PIXELS = 64  # an object smaller than this on its prompt frame is not a training target


@dataclass(frozen=True)
class Recolor:
    """A colour change: per-channel gains (a tint, which gives a grey photo colour), saturation
    (0 = grey), a hue rotation and channel order, sometimes an inversion, then a gamma.

    The generator tints its objects and most of its photos are grey, so "coloured on grey"
    would tell an object from the background; a tinted, rotated frame has no grey background,
    and at low saturation no coloured object. One change for the whole frame keeps camouflaged
    objects (textured from the background's photo) camouflaged.

    >>> image = np.random.default_rng(0).uniform(0, 255, (4, 4, 3)).astype(np.float32)
    >>> out = Recolor.sample(np.random.default_rng(1)).apply(image)
    >>> out.shape, out.dtype, bool(out.min() >= 0 and out.max() <= 255)
    ((4, 4, 3), dtype('float32'), True)
    """

    gains: tuple[float, float, float]
    saturation: float
    matrix: tuple  # 3x3 (rows: output channels): a hue rotation about the grey axis, then a channel order
    invert: bool
    gamma: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Recolor":
        angle = float(rng.uniform(0, 2 * np.pi))
        axis = np.ones(3) / np.sqrt(3)
        cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rotation = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
        return cls(gains=tuple(float(g) for g in rng.uniform(0.5, 1.3, 3)), saturation=float(rng.uniform(0.0, 1.5)),
                   matrix=tuple(map(tuple, (np.eye(3)[rng.permutation(3)] @ rotation).tolist())),
                   invert=bool(rng.random() < 0.15), gamma=float(np.exp(rng.uniform(-0.4, 0.4))))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image``: float RGB in 0-255; returns it recoloured (float32, 0-255)."""
        x = image * np.asarray(self.gains, np.float32) / 255.0
        grey = x.mean(axis=-1, keepdims=True)
        x = (grey + self.saturation * (x - grey)) @ np.asarray(self.matrix, np.float32).T
        x = np.clip(1.0 - x if self.invert else x, 0.0, 1.0) ** self.gamma
        return (x * 255.0).astype(np.float32)


@dataclass(frozen=True)
class Camera:
    """How a clip is seen: zoom and pan drifting linearly from ``start`` to ``end`` over the
    clip (zoom >= 1, pan as a fraction of the slack the zoom leaves), a gain drift, and
    blur, noise and JPEG quality (0 = no JPEG round trip)."""

    start: tuple[float, float, float]  # zoom, pan x, pan y in [-1, 1]
    end: tuple[float, float, float]
    gain: tuple[float, float]
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    colors: Recolor | None = None

    @classmethod
    def sample(cls, rng: np.random.Generator, moving: bool, recolor: float = 0.0) -> "Camera":
        """A random camera; with probability ``recolor`` it also recolours (no draw when 0, so
        runs without it see the data they always saw)."""
        def pose():
            return float(rng.uniform(1.0, 1.35)), float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))

        start = pose()
        gain = float(rng.uniform(0.7, 1.3))
        return cls(
            start=start, end=pose() if moving and rng.random() < 0.6 else start,
            gain=(gain, gain * float(rng.uniform(0.75, 1.3)) if moving else gain),
            blur_sigma=float(rng.uniform(0.3, 1.5)) if rng.random() < 0.3 else 0.0,
            noise_sigma=float(rng.uniform(1, 8)) if rng.random() < 0.4 else 0.0,
            jpeg_quality=int(rng.integers(25, 90)) if rng.random() < 0.4 else 0,
        ).recoloured(rng, recolor)

    def recoloured(self, rng: np.random.Generator, probability: float) -> "Camera":
        """This camera recolouring with ``probability`` (no draw when 0)."""
        if not probability or rng.random() >= probability:
            return self
        return replace(self, colors=Recolor.sample(rng))

    def view(self, rgb: np.ndarray, labels: np.ndarray, progress: float, rng: np.random.Generator):
        """Frame at ``progress`` (0 = first, 1 = last frame of the clip): (rgb, labels) seen
        through the camera; labels get the same zoom and pan (nearest neighbour)."""
        height, width = labels.shape
        zoom, pan_x, pan_y = (a + (b - a) * progress for a, b in zip(self.start, self.end))
        matrix = np.array([[zoom, 0, (1 - zoom) * width / 2 * (1 + pan_x)],
                           [0, zoom, (1 - zoom) * height / 2 * (1 + pan_y)]], np.float32)
        rgb = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        labels = cv2.warpAffine(labels, matrix, (width, height), flags=cv2.INTER_NEAREST)
        image = rgb.astype(np.float32)
        if self.colors is not None:
            image = self.colors.apply(image)
        image = image * (self.gain[0] + (self.gain[1] - self.gain[0]) * progress)
        if self.blur_sigma:
            image = cv2.GaussianBlur(image, (0, 0), self.blur_sigma)
        if self.noise_sigma:
            image = image + rng.normal(0, self.noise_sigma, image.shape).astype(np.float32)
        rgb = np.clip(image, 0, 255).astype(np.uint8)
        if self.jpeg_quality:
            _, encoded = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            rgb = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        return rgb, labels


SMALLEST_SCALE = 0.3  # the generator's objects are 0.15-0.45 of the short side; small ones down to 0.3x that
LARGEST_SCALE = 2.2  # large ones up to 2.2x: ~the frame's short side across


def object_scale(rng: np.random.Generator, small: float, large: float = 0.0) -> float:
    """The scale of a scene's objects: with probability ``small``, log-uniform in
    [SMALLEST_SCALE, 1] (objects down to ~11 px across in a 240x320 frame); else, with
    probability ``large``, log-uniform in [1, LARGEST_SCALE] (up to about the frame's height); else 1.
    No draw for a share of 0, so runs without it see the data they always saw.

    >>> object_scale(np.random.default_rng(0), 0.0)
    1.0
    >>> SMALLEST_SCALE <= object_scale(np.random.default_rng(0), 1.0) <= 1.0
    True
    >>> 1.0 <= object_scale(np.random.default_rng(0), 0.0, large=1.0) <= LARGEST_SCALE
    True
    """
    if small and rng.random() < small:
        return float(np.exp(rng.uniform(np.log(SMALLEST_SCALE), 0.0)))
    if large and rng.random() < large:
        return float(np.exp(rng.uniform(0.0, np.log(LARGEST_SCALE))))
    return 1.0


CLUTTER_COUNTS = (4, 16)  # unannotated objects painted on a cluttered scene's background


def clutter_count(rng: np.random.Generator, share: float) -> int:
    """How many unannotated objects clutter a scene's background
    (:func:`~mixqsam2.data.synth.cluttered`): with probability ``share`` 4-16, else 0. No draw
    for a share of 0, so runs without it see the data they always saw.

    >>> clutter_count(np.random.default_rng(0), 0.0)
    0
    >>> CLUTTER_COUNTS[0] <= clutter_count(np.random.default_rng(0), 1.0) <= CLUTTER_COUNTS[1]
    True
    """
    if not share or rng.random() >= share:
        return 0
    return int(rng.integers(CLUTTER_COUNTS[0], CLUTTER_COUNTS[1] + 1))


def _square_masks(labels: np.ndarray, ids: list[int], image_size: int) -> np.ndarray:
    resized = cv2.resize(labels, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
    return np.stack([resized == i for i in ids]) if ids else np.zeros((0, image_size, image_size), bool)


def _prompt_targets(labels: np.ndarray) -> list[int]:
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return [int(i) for i, c in zip(ids, counts) if c >= MIN_PROMPT_PIXELS]


def _collate(videos: list[tuple[np.ndarray, np.ndarray]]):
    """``videos``: list of (frames float32 [T,3,S,S], masks bool [T,O,S,S]) -> BatchedVideoDatapoint."""
    from training.utils.data_utils import BatchedVideoDatapoint, BatchedVideoMetaData

    num_frames = videos[0][0].shape[0]
    img_batch = torch.from_numpy(np.stack([frames for frames, _ in videos], axis=1))  # [T,B,3,S,S]
    masks = torch.from_numpy(np.concatenate([m for _, m in videos], axis=1))  # [T,O,S,S]
    video_of_obj = np.concatenate([np.full(m.shape[1], b) for b, (_, m) in enumerate(videos)])
    obj_to_frame_idx = torch.tensor(
        [[[t, int(b)] for b in video_of_obj] for t in range(num_frames)], dtype=torch.int32
    )
    num_objects = masks.shape[1]
    ident = torch.tensor(
        [[[int(video_of_obj[o]), o, t] for o in range(num_objects)] for t in range(num_frames)], dtype=torch.long
    )
    size = torch.tensor([[FRAME_HEIGHT, FRAME_WIDTH]] * num_objects).expand(num_frames, -1, -1)
    metadata = BatchedVideoMetaData(unique_objects_identifier=ident, frame_orig_size=size, batch_size=[num_frames])
    return BatchedVideoDatapoint(
        img_batch=img_batch, obj_to_frame_idx=obj_to_frame_idx, masks=masks, metadata=metadata,
        dict_key="pico", batch_size=[num_frames],
    )


def training_image(seed: int, step: int, index: int, recolor: float = 0.0, small: float = 0.0,
                   large: float = 0.0, clutter: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Image ``index`` of training step ``step``: (rgb, label map, target ids), at the
    generators' frame size. Scenes without a big enough object are redrawn."""
    rng = np.random.default_rng([seed, step, 0, index])
    while True:
        scale = object_scale(rng, small, large)
        background, objects = sample_image_scene(rng, FRAME_HEIGHT, FRAME_WIDTH, scale, clutter_count(rng, clutter))
        camera = Camera.sample(rng, moving=False, recolor=recolor)
        rgb, labels = camera.view(*render(background, objects, 0.0), 0.0, rng)
        ids = _prompt_targets(labels)
        if ids:
            return rgb, labels, ids


def image_batch(seed: int, step: int, num_images: int, image_size: int, recolor: float = 0.0, small: float = 0.0,
                large: float = 0.0, clutter: float = 0.0):
    """A batch of ``num_images`` single-frame scenes with every visible annotated object as a target."""
    videos = []
    for index in range(num_images):
        rgb, labels, ids = training_image(seed, step, index, recolor, small, large, clutter)
        frames = preprocess_frame(rgb, image_size)[None]
        videos.append((frames, _square_masks(labels, ids, image_size)[None]))
    return _collate(videos)


def hidden_stretch(rng: np.random.Generator, targets: list[int], num_frames: int,
                   probability: float) -> tuple[int, int, int] | None:
    """With ``probability``, (label, first, stop): one of the clip's ``targets`` is not drawn on
    frames first..stop-1 (2 frames to half the clip, never the first frame: the prompt sees
    it), as if a full occlusion hid it, so that the model sees frames where a target is absent
    and comes back; else None (no draw when 0).

    >>> hidden_stretch(np.random.default_rng(0), [1, 2], 16, 0.0) is None
    True
    >>> label, first, stop = hidden_stretch(np.random.default_rng(0), [1, 2], 16, 1.0)
    >>> label in (1, 2) and 1 <= first and 2 <= stop - first <= 8 and stop <= 16
    True
    """
    if not probability or rng.random() >= probability or num_frames < 3 or not targets:
        return None
    length = int(rng.integers(2, max(2, num_frames // 2) + 1))
    first = int(rng.integers(1, num_frames - length + 1))
    return int(rng.choice(targets)), first, first + length


def video_batch(seed: int, step: int, num_videos: int, image_size: int, min_frames: int = 4, max_frames: int = 8,
                recolor: float = 0.0, small: float = 0.0, large: float = 0.0, absent: float = 0.0,
                clutter: float = 0.0):
    """A batch of ``num_videos`` clips (one length per batch) from moving scenes.

    The clip starts at a random time of the scene and advances 1-4 time units per frame
    (sometimes up to 8: fast motion); targets are the annotated objects visible on its first
    frame, as the camera sees it. With ``absent``, that share of clips has a target hidden for
    a stretch (:func:`hidden_stretch`; those frames are drawn again without it); with
    ``clutter``, that share has a cluttered background (:func:`clutter_count`).
    """
    rng = np.random.default_rng([seed, step, 1])
    num_frames = int(rng.integers(min_frames, max_frames + 1))
    videos = []
    for index in range(num_videos):
        rng = np.random.default_rng([seed, step, 1, index])
        while True:
            scale = object_scale(rng, small, large)
            background, objects = sample_video_scene(rng, FRAME_HEIGHT, FRAME_WIDTH, object_scale=scale,
                                                     num_clutter=clutter_count(rng, clutter))
            start, stride = float(rng.uniform(0, 200)), float(rng.uniform(1, 4) * (2 if rng.random() < 0.15 else 1))
            camera = Camera.sample(rng, moving=True, recolor=recolor)

            def frame(t, shown):
                return camera.view(*render(background, shown, start + stride * t), t / max(1, num_frames - 1), rng)

            rendered = [frame(t, objects) for t in range(num_frames)]
            ids = _prompt_targets(rendered[0][1])
            if ids:
                break
        hidden = hidden_stretch(rng, ids, num_frames, absent)
        if hidden is not None:
            label, first, stop = hidden
            rendered[first:stop] = [frame(t, [o for o in objects if o.label != label]) for t in range(first, stop)]
        frames = np.stack([preprocess_frame(rgb, image_size) for rgb, _ in rendered])
        masks = np.stack([_square_masks(labels, ids, image_size) for _, labels in rendered])
        videos.append((frames, masks))
    return _collate(videos)


class VideoFolderClips:
    """Training clips from a DAVIS- or SA-V-layout folder (``mixqsam2 finetune``).

    A clip is ``video_frames`` annotated frames of one video at a random start and stride
    (1-3 annotated frames apart: SA-V annotates every 4th frame); its targets are the objects
    on its first frame that cover at least ``MIN_PROMPT_PIXELS`` at the model's input size.
    Videos with too few annotated frames for a batch's length are not drawn for it. Like the
    generated batches, ``self(cfg, step, image_size)`` is a pure function of ``(cfg.seed, step)``.
    Clip lengths the folder cannot serve are refused up front (``UserInputError``).
    """

    MAX_DRAWS = 1000  # clips drawn for one batch before giving up on finding targets

    def __init__(self, root, video_frames: tuple[int, int]):
        from mixqsam2.data.loaders import open_video_set
        from mixqsam2.errors import UserInputError

        low, high = video_frames
        if not 2 <= low <= high:
            raise UserInputError(f"clip length must be 2 <= MIN <= MAX annotated frames, got {low}-{high}")
        self.videos = open_video_set(root)
        self.annotated = [[i for i, name in enumerate(v.frame_names) if v.is_annotated(name)] for v in self.videos]
        if max(len(frames) for frames in self.annotated) < high:
            longest = max(len(frames) for frames in self.annotated)
            raise UserInputError(f"no video in {root} has {high} annotated frames (the longest has {longest}); "
                                 f"give shorter clips")

    def __call__(self, cfg, step: int, image_size: int):
        from mixqsam2.errors import UserInputError

        rng = np.random.default_rng([cfg.seed, step, 4])
        num_frames = int(rng.integers(cfg.video_frames[0], cfg.video_frames[1] + 1))
        usable = [i for i, frames in enumerate(self.annotated) if len(frames) >= num_frames]
        clips = []
        for _ in range(self.MAX_DRAWS):
            clip = self._clip(rng, usable[int(rng.integers(len(usable)))], num_frames, image_size)
            clips += [clip] if clip is not None else []
            if len(clips) == cfg.video_batch:
                return _collate(clips)
        raise UserInputError(f"no object of {MIN_PROMPT_PIXELS}+ pixels (at {image_size} px) on the first frame "
                             f"of {self.MAX_DRAWS} clips drawn from the videos")

    def _clip(self, rng, index: int, num_frames: int, image_size: int):
        video, annotated = self.videos[index], self.annotated[index]
        stride = int(rng.integers(1, min(3, (len(annotated) - 1) // (num_frames - 1)) + 1))
        start = int(rng.integers(0, len(annotated) - stride * (num_frames - 1)))
        picked = [annotated[start + stride * t] for t in range(num_frames)]
        truth = [video.annotation(video.frame_names[i]) for i in picked]
        ids = [k for k, m in truth[0].items() if m.sum() * image_size**2 / m.size >= MIN_PROMPT_PIXELS]
        if not ids:
            return None
        shape = truth[0][ids[0]].shape
        labels = [_label_map(masks, ids, shape) for masks in truth]
        frames = np.stack([preprocess_frame(read_rgb(video.frame_paths[i]), image_size) for i in picked])
        return frames, np.stack([_square_masks(lab, list(range(1, len(ids) + 1)), image_size) for lab in labels])


def _label_map(masks: dict, ids: list[int], shape) -> np.ndarray:
    """Objects ``ids`` as labels 1..n of one uint8 map (absent objects stay 0)."""
    labels = np.zeros(shape, np.uint8)
    for label, obj in enumerate(ids, start=1):
        if obj in masks:
            labels[masks[obj]] = label
    return labels
