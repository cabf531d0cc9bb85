"""The shipped pico checkpoint is the trained v2.1: it segments, a random init does not, and v2 fails the bars.
A missing, broken or swapped checkpoint fails here."""

import pytest
import torch
from sam2.build_sam import build_sam2_video_predictor

from mixqsam2.data.heldout import write_heldout_image_set
from mixqsam2.data.loaders import CocoImages
from mixqsam2.data.synth import write_image_set
from mixqsam2.eval.images import evaluate_images
from mixqsam2.models import PICO_CHECKPOINT, PICO_CONFIG, build_model, keep_single_mask


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out") / "images"
    write_image_set(root, num=20, seed=4242)  # a seed no training stream uses
    return CocoImages.from_dir(root)


@pytest.fixture(scope="module")
def trained_miou(images):
    assert PICO_CHECKPOINT.is_file(), f"the pico checkpoint is not shipped at {PICO_CHECKPOINT}"
    return evaluate_images(build_model("pico"), images)["miou"]


def test_shipped_checkpoint_has_box_miou_of_at_least_0_68(trained_miou):
    # pico v2.1 on generator 3: 0.699 (v2: 0.649, so shipping v2 again fails here)
    assert trained_miou >= 0.68


def test_shipped_checkpoint_scores_above_v2_out_of_distribution(tmp_path):
    # the independent generator, same seed: v2.1 0.446, v2 0.413 (both with the single-mask
    # token). Filling the box scores 0.385 on these 20 images, GrabCut more on the benchmark's
    # 200 (issue 13), so this bar tells v2.1 from v2, not segmentation.
    write_heldout_image_set(tmp_path / "images", num=20, seed=4242)
    assert evaluate_images(build_model("pico"), CocoImages.from_dir(tmp_path / "images"))["miou"] >= 0.43


def test_random_init_is_far_below_the_shipped_checkpoint(images, trained_miou):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        random_model = keep_single_mask(build_sam2_video_predictor("/" + str(PICO_CONFIG), None, device="cpu"))
    assert evaluate_images(random_model, images)["miou"] < 0.5 * trained_miou
