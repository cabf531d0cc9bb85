"""mixqsam2 finetune: the memory path learns on the user's videos with the bank in the loop,
the rest stays as it was; clips come from annotated frames only."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mixqsam2.cli.main import main
from mixqsam2.data.synth import write_video_set
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
])
def test_bad_finetune_input_is_one_line_and_exit_2(videos, tmp_path, capsys, args, message):
    base = {"--videos": str(videos), "--memory": "sis", "--capacity": "3"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["finetune", "--model", "pico", "--out", str(tmp_path / "x.pt"), "--steps", "1"]
    assert main(argv + [x for kv in base.items() for x in kv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_clips_use_annotated_frames_and_are_a_function_of_seed_and_step(videos, tmp_path):
    sparse = tmp_path / "sparse"
    write_video_set(sparse, num=1, frames=12, seed=5)
    for path in sorted((sparse / "Annotations" / "vid0000").iterdir())[1::2]:
        path.unlink()  # annotate every other frame, as SA-V annotates every 4th
    clips = VideoFolderClips(sparse)
    assert clips.annotated == [[0, 2, 4, 6, 8, 10]]
    cfg = replace(TrainConfig(), videos=str(sparse), video_batch=2, video_frames=(3, 3))
    first, again = clips(cfg, 7, 64), clips(cfg, 7, 64)
    assert first.img_batch.shape[:2] == (3, 2)
    assert torch.equal(first.img_batch, again.img_batch) and torch.equal(first.masks, again.masks)
    assert not torch.equal(first.img_batch, clips(cfg, 8, 64).img_batch) or not torch.equal(
        first.masks, clips(cfg, 8, 64).masks)
    with pytest.raises(Exception, match="annotated frames"):
        clips(replace(cfg, video_frames=(7, 7)), 0, 64)
    assert np.all(first.masks[0].flatten(1).any(1).numpy())  # every target is on the clip's first frame
