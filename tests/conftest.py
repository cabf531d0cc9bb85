"""Shared fixtures: one pico model per session and small generated data sets."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def pico():
    """The shipped (trained) pico; test_pico_checkpoint.py fails if it is missing."""
    from mixqsam2.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without the checkpoint: random weights, said loudly
        return build_model("pico")


@pytest.fixture(scope="session")
def pico_checkpoint(pico, tmp_path_factory):
    """The pico weights the session uses, as a sam2-format file."""
    from mixqsam2.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "pico.pt"
    save_checkpoint(pico, path)
    return path


@pytest.fixture(scope="session")
def video_set(tmp_path_factory):
    from mixqsam2.data.synth import write_video_set

    root = tmp_path_factory.mktemp("videos") / "set"
    write_video_set(root, num=2, frames=20, seed=30)  # 3 objects + 1 object
    return root


@pytest.fixture(scope="session")
def image_set(tmp_path_factory):
    from mixqsam2.data.synth import write_image_set

    root = tmp_path_factory.mktemp("images") / "set"
    write_image_set(root, num=4, seed=12)
    return root
