"""Training batches for pico, drawn from the scene generators as sam2's training batches.

Every batch is a pure function of ``(seed, step)``, so a run resumed at step ``s`` sees the
same data as an uninterrupted one. Images are single frames (sam2 then prompts them with
points or boxes); video clips are 4-8 frames sampled with a random stride from a moving
scene, so targets move, get occluded by unannotated objects, meet look-alikes and leave.

>>> batch = image_batch(seed=0, step=0, num_images=2, image_size=64)
>>> batch.img_batch.shape[:2], batch.masks.shape[0]
(torch.Size([1, 2]), 1)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from mixqsam2.data.synth import render, sample_image_scene, sample_video_scene
from mixqsam2.models.preprocess import preprocess_frame

FRAME_HEIGHT, FRAME_WIDTH = 240, 320  # what the generators render; resized to the model's square input
MIN_PROMPT_PIXELS = 64  # an object smaller than this on its prompt frame is not a training target


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


def training_image(seed: int, step: int, index: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Image ``index`` of training step ``step``: (rgb, label map, target ids), at the
    generators' frame size. Scenes without a big enough object are redrawn."""
    rng = np.random.default_rng([seed, step, 0, index])
    while True:
        background, objects = sample_image_scene(rng, FRAME_HEIGHT, FRAME_WIDTH)
        rgb, labels = render(background, objects, 0.0)
        ids = _prompt_targets(labels)
        if ids:
            return rgb, labels, ids


def image_batch(seed: int, step: int, num_images: int, image_size: int):
    """A batch of ``num_images`` single-frame scenes with every visible object as a target."""
    videos = []
    for index in range(num_images):
        rgb, labels, ids = training_image(seed, step, index)
        frames = preprocess_frame(rgb, image_size)[None]
        videos.append((frames, _square_masks(labels, ids, image_size)[None]))
    return _collate(videos)


def video_batch(seed: int, step: int, num_videos: int, image_size: int, min_frames: int = 4, max_frames: int = 8):
    """A batch of ``num_videos`` clips (one length per batch) from moving scenes.

    The clip starts at a random time of the scene and advances 1-4 time units per frame;
    targets are the annotated objects visible on its first frame.
    """
    rng = np.random.default_rng([seed, step, 1])
    num_frames = int(rng.integers(min_frames, max_frames + 1))
    videos = []
    for index in range(num_videos):
        rng = np.random.default_rng([seed, step, 1, index])
        while True:
            background, objects = sample_video_scene(rng, FRAME_HEIGHT, FRAME_WIDTH)
            start, stride = float(rng.uniform(0, 200)), float(rng.uniform(1, 4))
            rendered = [render(background, objects, start + stride * t) for t in range(num_frames)]
            ids = _prompt_targets(rendered[0][1])
            if ids:
                break
        frames = np.stack([preprocess_frame(rgb, image_size) for rgb, _ in rendered])
        masks = np.stack([_square_masks(labels, ids, image_size) for _, labels in rendered])
        videos.append((frames, masks))
    return _collate(videos)
