"""run_stream end to end, and its bad-input contract: one line on stderr, exit 2, no output."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from mixqsam2.cli.run_stream import main
from mixqsam2.data.formats import read_label_png, write_mask_png
from mixqsam2.data.loaders import open_video_set


@pytest.fixture(scope="module")
def clip(video_set):
    video = open_video_set(video_set)[0]
    return video.frame_paths[0].parent, video


@pytest.fixture(scope="module")
def clip_mp4(clip, tmp_path_factory):
    folder, video = clip
    path = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for rgb in video.frames():
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_demo_runs_as_a_console_script(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "mixqsam2.cli.run_stream", "--demo", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == 48 and stats["objects"] == [1, 2, 3]  # the demo clip has three objects
    for obj_id in stats["objects"]:
        assert len(list((out / "masks" / str(obj_id)).glob("*.png"))) == 48
    assert (out / "overlay.mp4").stat().st_size > 0


def test_frames_folder_with_palette_prompt_tracks_every_object(clip, tmp_path):
    folder, video = clip
    out = tmp_path / "run"
    prompt = folder.parent.parent / "Annotations" / video.name / "00000.png"
    assert main(["--model", "pico", "--frames", str(folder), "--prompt-mask", str(prompt), "--capacity", "3", "--out", str(out)]) == 0
    ids = sorted(int(i) for i in np.unique(read_label_png(prompt)) if i)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == 20 and stats["objects"] == ids and stats["memory"] == {"policy": "fifo", "capacity": 3}
    assert set(stats["latency_ms"]) >= {"total", "image_encoder", "memory_attention", "mask_decoder", "memory_encoder"}
    assert stats["memory_bank_bytes"] > 0
    for obj_id in ids:
        names = sorted(p.stem for p in (out / "masks" / str(obj_id)).glob("*.png"))
        assert names == video.frame_names
        mask = np.asarray(Image.open(out / "masks" / str(obj_id) / "00000.png"))
        assert mask.shape == (240, 320) and set(np.unique(mask)) <= {0, 255}


def test_sis_at_half_the_capacity_holds_less_memory_than_fifo(clip, tmp_path):
    folder, video = clip
    prompt = folder.parent.parent / "Annotations" / video.name / "00000.png"
    stats = {}
    for memory, capacity in (("fifo", "6"), ("sis", "3"), ("sis-pair", "3")):
        out = tmp_path / memory
        argv = ["--model", "pico", "--frames", str(folder), "--prompt-mask", str(prompt), "--out", str(out)]
        assert main([*argv, "--memory", memory, "--capacity", capacity]) == 0
        stats[memory] = json.loads((out / "stats.json").read_text())
        assert stats[memory]["memory"] == {"policy": memory, "capacity": int(capacity)}
        assert stats[memory]["latency_ms"]["memory_attention"] > 0
    assert stats["sis"]["memory_bank_bytes"] < 0.7 * stats["fifo"]["memory_bank_bytes"]
    assert stats["sis-pair"]["memory_bank_bytes"] < 0.7 * stats["fifo"]["memory_bank_bytes"]


def test_video_file_with_box_prompt(clip_mp4, tmp_path):
    out = tmp_path / "run"
    assert main(["--model", "pico", "--video", str(clip_mp4), "--box", "40,30,200,180", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "masks").glob("*.png"))[:2] == ["00000.png", "00001.png"]
    assert json.loads((out / "stats.json").read_text())["frames"] == 20


def _bad_inputs(clip, tmp_path, pico_checkpoint):
    folder, video = clip
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    wrong_size = tmp_path / "small.png"
    write_mask_png(wrong_size, np.ones((10, 10), bool))
    blank = tmp_path / "blank.png"
    write_mask_png(blank, np.zeros((240, 320), bool))
    mismatch = tmp_path / "mismatch.pt"
    import torch

    state = torch.load(pico_checkpoint)["model"]
    state.pop("no_mem_embed")
    torch.save({"model": state}, mismatch)
    f, box = str(folder), "10,10,50,50"
    return {
        "missing checkpoint": (["--model", "pico", "--checkpoint", str(tmp_path / "x.pt"), "--frames", f, "--box", box], "checkpoint not found"),
        "checkpoint/config mismatch": (["--model", "pico", "--checkpoint", str(mismatch), "--frames", f, "--box", box], "does not match"),
        "unknown model": (["--model", "sam9", "--frames", f, "--box", box], "unknown model"),
        "unreadable video": (["--model", "pico", "--video", str(garbage), "--box", box], "cannot read video"),
        "missing video": (["--model", "pico", "--video", str(tmp_path / "nope.mp4"), "--box", box], "video not found"),
        "empty frame folder": (["--model", "pico", "--frames", str(empty), "--box", box], "no image frames"),
        "mask of wrong size": (["--model", "pico", "--frames", f, "--prompt-mask", str(wrong_size)], "10x10 but the frame is 320x240"),
        "empty mask": (["--model", "pico", "--frames", f, "--prompt-mask", str(blank)], "empty"),
        "box outside the frame": (["--model", "pico", "--frames", f, "--box", "10,10,400,50"], "outside"),
        "point outside the frame": (["--model", "pico", "--frames", f, "--point=-3,10"], "outside"),
        "sis capacity below 2": (["--model", "pico", "--memory", "sis", "--capacity", "1", "--frames", f, "--box", box], "at least 2"),
        "ort backend not built yet": (["--model", "pico", "--backend", "ort", "--frames", f, "--box", box], "not available"),
        "trt without TensorRT": (["--engine-dir", str(tmp_path), "--backend", "trt", "--frames", f, "--box", box], "TensorRT"),
    }


CASES = [
    "missing checkpoint", "checkpoint/config mismatch", "unknown model", "unreadable video", "missing video",
    "empty frame folder", "mask of wrong size", "empty mask", "box outside the frame", "point outside the frame",
    "sis capacity below 2", "ort backend not built yet", "trt without TensorRT",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_no_output(case, clip, tmp_path, pico_checkpoint, capsys):
    argv, expected = _bad_inputs(clip, tmp_path, pico_checkpoint)[case]
    if case == "trt without TensorRT" and _has_tensorrt():
        pytest.skip("TensorRT is installed here")
    out = tmp_path / "out"
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def _has_tensorrt():
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_unwritable_out_is_refused(clip, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["--model", "pico", "--frames", str(clip[0]), "--box", "10,10,50,50", "--out", str(blocker / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot create output location" in err[0]


@pytest.mark.parametrize("capacity", ["0", "-2"])
def test_capacity_below_one_is_a_usage_error(clip, tmp_path, capacity, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--model", "pico", "--frames", str(clip[0]), "--box", "10,10,50,50", "--capacity", capacity, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
