"""mixqsam2 finetune: the memory path learns on the user's videos with the bank in the loop,
the rest stays as it was; clips come from annotated frames only."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mixqsam2.cli.main import main
from mixqsam2.data.synth import write_video_set
from mixqsam2.errors import UserInputError
from mixqsam2.models import build_model, read_checkpoint
from mixqsam2.train.config import MEMORY_MODULES, TrainConfig
from mixqsam2.train.data import VideoFolderClips


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft") / "videos"
    write_video_set(root, num=2, frames=10, seed=21)
    return root


def test_finetune_trains_the_memory_path_only_and_writes_a_sam2_checkpoint(videos, tmp_path):
    out = tmp_path / "pico_ft.pt"
    assert main(["finetune", "--model", "pico", "--videos", str(videos), "--memory", "sis", "--capacity", "3",
                 "--steps", "2", "--frames", "5", "6", "--batch", "1", "--out", str(out)]) == 0
    before, after = build_model("pico").state_dict(), read_checkpoint(out)
    assert after["memory_attention.layers.0.linear1.weight"].dtype == torch.float32  # a fine-tune keeps fp32
    changed = {name for name, value in after.items() if not torch.equal(value.float(), before[name].float())}
    assert changed and all(name.startswith(MEMORY_MODULES) for name in changed)
    assert any(name.startswith("memory_encoder.") for name in changed)
    build_model("pico", checkpoint=out)  # loads into sam2's predictor


@pytest.mark.parametrize("args, message", [
    (["--memory", "sis", "--capacity", "1"], "at least 2"),
    (["--memory", "merge-all"], "unknown memory policy"),
    (["--videos", "/nonexistent/videos"], "not a DAVIS"),
    (["--memory-pool", "3"], "must divide the memory grid's side (16 tokens)"),
])
def test_bad_finetune_input_is_one_line_and_exit_2(videos, tmp_path, capsys, args, message):
    base = {"--videos": str(videos), "--memory": "sis", "--capacity": "3"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["finetune", "--model", "pico", "--out", str(tmp_path / "x.pt"), "--steps", "1"]
    assert main(argv + [x for kv in base.items() for x in kv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "must be a positive number"),
    (["--lr", "-1"], "must be a positive number"),
    (["--seed", "-1"], "must be at least 0"),
])
def test_bad_finetune_numbers_are_usage_errors(videos, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as usage_error:
        main(["finetune", "--model", "pico", "--videos", str(videos), "--out", str(tmp_path / "x.pt"), *args])
    assert usage_error.value.code == 2 and message in capsys.readouterr().err


def test_clips_use_annotated_frames_and_are_a_function_of_seed_and_step(videos, tmp_path):
    sparse = tmp_path / "sparse"
    write_video_set(sparse, num=1, frames=12, seed=5)
    for path in sorted((sparse / "Annotations" / "vid0000").iterdir())[1::2]:
        path.unlink()  # annotate every other frame, as SA-V annotates every 4th
    clips = VideoFolderClips(sparse, (3, 3))
    assert clips.annotated == [[0, 2, 4, 6, 8, 10]]
    cfg = replace(TrainConfig(), videos=str(sparse), video_batch=2, video_frames=(3, 3))
    first, again = clips(cfg, 7, 64), clips(cfg, 7, 64)
    assert first.img_batch.shape[:2] == (3, 2)
    assert torch.equal(first.img_batch, again.img_batch) and torch.equal(first.masks, again.masks)
    assert not torch.equal(first.img_batch, clips(cfg, 8, 64).img_batch) or not torch.equal(
        first.masks, clips(cfg, 8, 64).masks)
    with pytest.raises(UserInputError, match="has 7 annotated frames"):
        VideoFolderClips(sparse, (7, 7))  # 6 annotated frames: refused when opened, not mid-run
    assert np.all(first.masks[0].flatten(1).any(1).numpy())  # every target is on the clip's first frame


@pytest.mark.parametrize("frames, message", [(("5", "3"), "MIN <= MAX"), (("1", "1"), "MIN <= MAX"),
                                             (("8", "40"), "has 40 annotated frames")])
def test_clip_lengths_the_videos_cannot_serve_are_refused_before_training(videos, tmp_path, capsys, frames, message):
    out = tmp_path / "sub" / "x.pt"
    assert main(["finetune", "--model", "pico", "--videos", str(videos), "--frames", *frames,
                 "--out", str(out), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.parent.exists()  # nothing written, not even the folder


def test_videos_without_a_promptable_object_end_with_one_line_not_a_hang(tmp_path):
    from mixqsam2.data.formats import write_label_png

    root = tmp_path / "tiny"
    write_video_set(root, num=1, frames=4, seed=2)
    for path in (root / "Annotations" / "vid0000").iterdir():
        labels = np.zeros((240, 320), np.uint8)
        labels[:3, :3] = 1  # 9 pixels: far below a prompt at any model size
        write_label_png(path, labels)
    clips = VideoFolderClips(root, (2, 3))
    with pytest.raises(UserInputError, match="no object"):
        clips(replace(TrainConfig(), videos=str(root), video_frames=(2, 3)), 0, 64)
