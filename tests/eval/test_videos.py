"""Video evaluation: degenerate input; the classical tracker baseline (GrabCut from the last box)."""

import numpy as np
import pytest
from PIL import Image

from mixqsam2.data.loaders import VideoSample
from mixqsam2.eval.videos import evaluate_videos, first_mask_baseline, grabcut_track_baseline


@pytest.mark.parametrize("score", [lambda videos: evaluate_videos(None, videos), first_mask_baseline,
                                   grabcut_track_baseline])
def test_no_videos_is_a_value_error_not_a_nan(score):
    with pytest.raises(ValueError, match="no videos"):
        score([])


def _moving_l_video(folder, frames=8, step=4):
    """A red L (object 1) moving ``step`` px right per frame over noisy grey, annotated on every frame."""
    rng = np.random.default_rng(0)
    masks = []
    for index in range(frames):
        mask = np.zeros((60, 96), bool)
        left = 6 + step * index
        mask[10:40, left:left + 10] = True
        mask[30:40, left:left + 30] = True
        rgb = np.clip(rng.normal(120, 12, (60, 96, 3)), 0, 255).astype(np.uint8)
        rgb[mask] = np.clip(rng.normal((210, 40, 30), 10, (int(mask.sum()), 3)), 0, 255)
        Image.fromarray(rgb).save(folder / f"{index:05d}.png")
        masks.append(mask)
    paths = [folder / f"{index:05d}.png" for index in range(frames)]
    return VideoSample("moving", paths, lambda stem: {1: masks[int(stem)]}, lambda stem: [stem])


def test_grabcut_tracks_an_object_that_the_first_mask_loses(tmp_path):
    video = _moving_l_video(tmp_path)
    tracked, repeated = grabcut_track_baseline([video]), first_mask_baseline([video])
    assert tracked["objects"] == repeated["objects"] == 1
    assert tracked["J"] > 0.85 and repeated["J"] < 0.3


def test_the_repeated_first_mask_is_shown_on_every_frame(tmp_path):
    video = _moving_l_video(tmp_path, frames=4)
    seen = {}
    first_mask_baseline([video], on_mask=lambda key, mask: seen.__setitem__(key, mask))
    assert sorted(seen) == [("moving", 1, f"{i:05d}") for i in range(4)]
    assert all(np.array_equal(mask, video.annotation("00000")[1]) for mask in seen.values())


def test_an_empty_grabcut_answer_keeps_the_last_mask(tmp_path, monkeypatch):
    """GrabCut finding nothing on every frame: the tracker repeats the prompt mask."""
    import mixqsam2.eval.images as images

    monkeypatch.setattr(images, "grabcut_mask", lambda rgb, box, iterations: np.zeros(rgb.shape[:2], bool))
    video = _moving_l_video(tmp_path, frames=4)
    assert grabcut_track_baseline([video]) == first_mask_baseline([video])
