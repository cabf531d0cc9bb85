"""The streaming tracker against sam2's own SAM2VideoPredictor, and its memory bound."""

import numpy as np
import pytest
import torch
from sam2.build_sam import build_sam2_video_predictor

from mixqsam2.data.loaders import open_video_set
from mixqsam2.eval.metrics import mask_iou
from mixqsam2.memory.prompts import Prompt
from mixqsam2.memory.tracker import StreamingTracker
from mixqsam2.models import PICO_CONFIG


def _sam2_masks(video, checkpoint):
    """Masks from sam2's predictor: same config and weights, first-frame mask prompts."""
    predictor = build_sam2_video_predictor("/" + str(PICO_CONFIG), str(checkpoint), device="cpu")
    state = predictor.init_state(str(video.frame_paths[0].parent))
    for obj_id, mask in video.prompt_masks().items():
        predictor.add_new_mask(state, 0, obj_id, mask)
    out = {}
    with torch.inference_mode():
        for frame_idx, obj_ids, masks in predictor.propagate_in_video(state):
            out[frame_idx] = {obj_id: (masks[i, 0] > 0).numpy() for i, obj_id in enumerate(obj_ids)}
    return out


def test_masks_match_sam2_video_predictor_on_every_frame(pico, pico_checkpoint, video_set):
    """sam2 here has no CUDA extension, so it skips its hole filling: the tracker does too. IoU >= 0.99 on every frame and object, and at most 1e-4 of the foreground pixels
    differ over the whole set. With the shipped weights the match is exact (IoU 1.0, no
    pixel differs); a tracker that keeps 5 memories instead of 6 drops to IoU 0.85 on some
    frame and differs on 6.6e-3 of the pixels. (With random weights the pixel bound was the
    sharp one: 5 memories still gave IoU 0.998 but 1.2e-3 of the pixels differed.)"""
    differing = union = 0
    for video in open_video_set(video_set):
        expected = _sam2_masks(video, pico_checkpoint)
        tracker = StreamingTracker(pico, memory="fifo", num_frames=len(video.frame_paths), fill_holes=False)
        prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
        for index, rgb in enumerate(video.frames()):
            result = tracker.step(rgb, prompts if index == 0 else None)
            assert set(result.masks) == set(expected[index])
            for obj_id, mask in result.masks.items():
                iou = mask_iou(mask, expected[index][obj_id])
                assert iou >= 0.99, (video.name, index, obj_id, iou)
                differing += int((mask ^ expected[index][obj_id]).sum())
                union += int((mask | expected[index][obj_id]).sum())
    assert union > 0  # the comparison is not between two empty outputs
    assert differing / union <= 1e-4


def test_memory_is_bounded_by_capacity_and_pointer_window(pico, video_set):
    video = open_video_set(video_set)[0]
    frames = list(video.frames())
    tracker = StreamingTracker(pico, capacity=3)
    sizes = []
    for index in range(40):
        tracker.step(frames[index % len(frames)], {1: Prompt(mask=video.prompt_masks()[1])} if index == 0 else None)
        state = tracker.objects[1]
        assert state.bank.valid.sum() == min(index, 3) and state.bank.valid.size == 3
        assert len(state.recent) == min(index, 15) and state.cond_frame == 0
        sizes.append(tracker.memory_bytes())
    assert len(set(sizes[16:])) == 1  # constant once the pointer window is full


def test_attended_memory_follows_bank_positions_not_frame_indices(pico, video_set):
    """An entry kept from long ago is attended with the oldest temporal slot (t_rel clipped)."""
    video = open_video_set(video_set)[0]
    frames = list(video.frames())
    tracker = StreamingTracker(pico, capacity=2)
    tracker.step(frames[0], {1: Prompt(mask=video.prompt_masks()[1])})
    for rgb in frames[1:4]:
        tracker.step(rgb)
    state = tracker.objects[1]
    assert sorted(state.bank.positions[state.bank.valid].tolist()) == [2.0, 3.0]
    tracker.frame_idx += 1  # the inputs the next frame attends to
    inputs = tracker._memory_inputs([state], state.bank.features[None])
    order = np.argsort(state.bank.positions)
    assert inputs["bank_slot"][0, order].tolist() == [1, 0]  # 2 frames back -> slot 1, 1 back -> slot 0
    assert inputs["pointer_valid"].sum() == 1 + 3  # the prompted frame's pointer + 3 recent frames
    tracker.frame_idx = 100  # pretend the entries are old: both clip to the last bank slot
    assert tracker._memory_inputs([state], state.bank.features[None])["bank_slot"].tolist() == [[pico.num_maskmem - 2] * 2]


def test_objects_are_tracked_as_one_batch_with_the_masks_of_one_at_a_time(pico, video_set):
    """Three objects in one graph call per frame give each object's masks tracked alone."""
    video = open_video_set(video_set)[0]
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    assert len(prompts) > 1
    together = StreamingTracker(pico, memory="sis", capacity=3)
    alone = {k: StreamingTracker(pico, memory="sis", capacity=3) for k in prompts}
    for index, rgb in enumerate(list(video.frames())[:8]):
        batch = together.step(rgb, prompts if index == 0 else None)
        for obj_id, tracker in alone.items():
            single = tracker.step(rgb, {obj_id: prompts[obj_id]} if index == 0 else None)
            assert mask_iou(batch.masks[obj_id], single.masks[obj_id]) >= 0.999


def test_box_and_point_prompts_start_objects(pico, video_set):
    video = open_video_set(video_set)[0]
    rgb = next(video.frames())
    mask = video.prompt_masks()[1]
    ys, xs = np.nonzero(mask)
    tracker = StreamingTracker(pico)
    result = tracker.step(rgb, {
        1: Prompt(box=(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)),
        2: Prompt(points=((float(xs.mean()), float(ys.mean())),)),
    })
    assert set(result.masks) == {1, 2} and set(tracker.objects) == {1, 2}
    assert all(m.shape == rgb.shape[:2] for m in result.masks.values())


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_below_one_is_refused(pico, capacity):
    from mixqsam2.errors import UserInputError

    with pytest.raises(UserInputError):
        StreamingTracker(pico, capacity=capacity)


def test_small_holes_are_filled_in_the_output_masks_as_sam2_does_with_its_extension(pico):
    """sam2 (with its extension) fills background components of at most ``fill_hole_area`` (8)
    low-res pixels; larger ones stay. Only with ``fill_holes=False`` do they stay open."""
    logits = np.full((64, 64), 5.0, np.float32)
    logits[10:12, 10:12] = -5.0  # 4 pixels: filled
    logits[30:34, 30:34] = -5.0  # 16 pixels: kept
    filled, plain = StreamingTracker(pico), StreamingTracker(pico, fill_holes=False)
    assert filled.fill_hole_area == 8
    mask = filled._frame_masks({1: logits}, (64, 64))[1]
    assert mask[10:12, 10:12].all() and not mask[31:33, 31:33].any()
    assert not plain._frame_masks({1: logits}, (64, 64))[1][10:12, 10:12].any()
