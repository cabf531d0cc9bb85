"""Widening pico's trunk 2x keeps what the model computes, and leaves the copies free to learn apart."""

import numpy as np
import pytest
import torch

from mixqsam2.data.loaders import CocoImages
from mixqsam2.data.synth import write_image_set
from mixqsam2.errors import UserInputError
from mixqsam2.eval.images import evaluate_images
from mixqsam2.models import (PICO_CHECKPOINT, build_model, build_pico_variant, load_state_dict_checked,
                             read_checkpoint)
from mixqsam2.models.widen import channel_copies, widen_pico, widened_state_dict


@pytest.fixture(scope="module")
def narrow():
    return read_checkpoint(PICO_CHECKPOINT)


@pytest.fixture(scope="module")
def wide_state(narrow):
    return widen_pico(narrow, seed=1)


def _model(state, width):
    model = build_pico_variant(width)
    load_state_dict_checked(model, state, f"pico {width}")
    return model.eval()


def test_the_widened_trunk_gives_the_narrow_features_and_masks(narrow, wide_state, tmp_path):
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    small, wide = _model(narrow, 32), _model(wide_state, 64)
    with torch.no_grad():
        small_trunk, wide_trunk = small.image_encoder.trunk(image), wide.image_encoder.trunk(image)
        small_fpn, wide_fpn = small.forward_image(image)["backbone_fpn"], wide.forward_image(image)["backbone_fpn"]
    for a, b in zip(small_trunk, wide_trunk):  # every stage: the narrow channels, then again
        torch.testing.assert_close(b, torch.cat([a, a], dim=1), atol=1e-5, rtol=1e-5)
    for a, b in zip(small_fpn, wide_fpn):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    write_image_set(tmp_path / "images", num=4, seed=4343)
    images = CocoImages.from_dir(tmp_path / "images")
    small_result, wide_result = evaluate_images(small, images), evaluate_images(wide, images)
    assert small_result["miou"] > 0.3  # a trained model, so equal masks are not two blank answers
    np.testing.assert_allclose(wide_result["miou"], small_result["miou"], atol=1e-4)


def test_split_weights_sum_to_the_narrow_one_but_differ(narrow, wide_state):
    name = "image_encoder.trunk.blocks.0.mlp.layers.0.weight"  # reads the 32-channel stream
    first, second = wide_state[name][:, :32], wide_state[name][:, 32:]
    torch.testing.assert_close(first[:128] + second[:128], narrow[name], atol=1e-6, rtol=1e-6)
    assert (first - second).abs().mean() > 0.05 * narrow[name].abs().mean()


def test_heads_keep_their_count_and_double_their_width():
    assert channel_copies(6, heads=3).tolist() == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5]
    assert channel_copies(3).tolist() == [0, 1, 2, 0, 1, 2]


def test_widening_to_another_width_is_refused(narrow):
    with pytest.raises(UserInputError, match="cannot widen a trunk 32 wide to 48"):
        widened_state_dict(build_pico_variant(48), narrow)


def test_a_widened_checkpoint_loads_as_pico(wide_state, tmp_path):
    torch.save({"model": wide_state}, tmp_path / "wide.pt")
    assert build_model("pico", tmp_path / "wide.pt").image_encoder.trunk.patch_embed.proj.weight.shape[0] == 64
