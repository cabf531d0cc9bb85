"""Agreement with a reference model's masks, and the paired bootstrap used to compare methods."""

import copy

import numpy as np
import pytest
import torch

from mixqsam2.data.loaders import CocoImages, open_video_set
from mixqsam2.eval.agreement import AgreementScore, ReferenceMasks
from mixqsam2.eval.images import evaluate_images
from mixqsam2.eval.paired import paired_difference
from mixqsam2.eval.videos import evaluate_videos


def test_reference_masks_round_trip_bit_packed():
    rng = np.random.default_rng(0)
    masks = {("a", 1): rng.random((37, 53)) > 0.5, ("b", 2, "00003"): rng.random((5, 7)) > 0.2}
    reference = ReferenceMasks()
    for key, mask in masks.items():
        reference.record(key, mask)
    assert len(reference) == 2
    for key, mask in masks.items():
        np.testing.assert_array_equal(reference[key], mask)


def test_agreement_is_iou_with_the_reference_grouped_by_unit():
    reference = ReferenceMasks()
    full, half = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    half[:2] = True
    reference.record(("img1", 1), full)
    reference.record(("img1", 2), full)
    reference.record(("img2", 1), half)
    score = AgreementScore(reference)
    score(("img1", 1), full)  # 1.0
    score(("img1", 2), half)  # 0.5
    score(("img2", 1), np.zeros((4, 4), bool))  # 0.0
    assert score.per_unit() == {"img1": 0.75, "img2": 0.0}
    assert score.mean() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        AgreementScore(reference).mean()


def _perturbed(model):
    """The same model with a slightly moved mask decoder."""
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for p in moved.sam_mask_decoder.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.05 * p.abs().mean())
    return moved


def test_a_model_agrees_with_itself_and_a_perturbed_one_less(pico, image_set, video_set):
    images, videos = CocoImages.from_dir(image_set), open_video_set(video_set)
    image_ref, video_ref = ReferenceMasks(), ReferenceMasks()
    evaluate_images(pico, images, image_ref.record)
    evaluate_videos(pico, videos, on_mask=video_ref.record)
    assert len(video_ref) == sum(len(v.prompt_masks()) * len(v.frame_paths) for v in videos)  # every object, every frame

    same_images, same_videos = AgreementScore(image_ref), AgreementScore(video_ref)
    evaluate_images(pico, images, same_images)
    evaluate_videos(pico, videos, on_mask=same_videos)
    assert same_images.mean() == 1.0 and same_videos.mean() == 1.0
    assert set(same_videos.per_unit()) == {v.name for v in videos}

    moved = _perturbed(pico)
    moved_images, moved_videos = AgreementScore(image_ref), AgreementScore(video_ref)
    evaluate_images(moved, images, moved_images)
    evaluate_videos(moved, videos, on_mask=moved_videos)
    assert 0.3 < moved_images.mean() < 0.999 and 0.3 < moved_videos.mean() < 0.999


def test_paired_difference_interval_covers_the_shift_and_shrinks_with_units():
    rng = np.random.default_rng(1)

    def interval(units):
        base = rng.random(units)
        a = {str(i): v + 0.02 + rng.normal(0, 0.01) for i, v in enumerate(base)}  # per-unit noise, shared base
        return paired_difference(a, {str(i): v for i, v in enumerate(base)})

    small, large = interval(20), interval(2000)
    for d in (small, large):
        assert d["low"] < 0.02 < d["high"] and d["low"] < d["mean"] < d["high"]
    assert large["high"] - large["low"] < 0.3 * (small["high"] - small["low"])
    assert small["units"] == 20
    assert paired_difference({"x": 1.0, "y": 0.0}, {"y": 0.5, "z": 1.0})["mean"] == pytest.approx(-0.5)  # shared only
    with pytest.raises(ValueError):
        paired_difference({"x": 1.0}, {"y": 1.0})
