"""run_stream end to end; its bad-input contract (one line on stderr, exit 2, no output); output folders
that keep the user's files; frames that cannot be read or change size; stopping by signal."""

import json
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from mixqsam2.cli.run_stream import main
from mixqsam2.data.formats import read_label_png, write_mask_png
from mixqsam2.data.loaders import open_video_set
from mixqsam2.fileio import LISTING


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
    assert stats["frames"] == 20 and stats["objects"] == ids and stats["memory"] == {"policy": "fifo", "capacity": 3, "pool": 1}
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
        assert stats[memory]["memory"] == {"policy": memory, "capacity": int(capacity), "pool": 1}
        assert stats[memory]["latency_ms"]["memory_attention"] > 0
    assert stats["sis"]["memory_bank_bytes"] < 0.7 * stats["fifo"]["memory_bank_bytes"]
    assert stats["sis-pair"]["memory_bank_bytes"] < 0.7 * stats["fifo"]["memory_bank_bytes"]


def test_video_file_with_box_prompt(clip_mp4, tmp_path):
    out = tmp_path / "run"
    assert main(["--model", "pico", "--video", str(clip_mp4), "--box", "40,30,200,180", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "masks").glob("*.png"))[:2] == ["00000.png", "00001.png"]
    assert json.loads((out / "stats.json").read_text())["frames"] == 20


def test_box_zoom_segments_a_small_first_box_on_a_zoomed_view(clip, pico, tmp_path):
    from mixqsam2.memory.prompts import Prompt
    from mixqsam2.memory.tracker import StreamingTracker

    folder, video = clip
    out = tmp_path / "run"
    assert main(["--model", "pico", "--frames", str(folder), "--box", "100,80,130,100", "--box-zoom", "0.3",
                 "--max-frames", "3", "--out", str(out)]) == 0
    assert json.loads((out / "stats.json").read_text())["box_zoom"] == 0.3
    expected = StreamingTracker(pico, box_zoom=0.3).segment_image(next(video.frames()), {1: Prompt(box=(100, 80, 130, 100))})
    assert np.array_equal(np.asarray(Image.open(out / "masks" / "00000.png")) > 0, expected[1])


def test_track_zoom_follows_a_small_object_and_is_recorded(clip, pico, tmp_path):
    from mixqsam2.memory.prompts import Prompt
    from mixqsam2.memory.tracker import StreamingTracker

    folder, video = clip
    out = tmp_path / "run"
    assert main(["--model", "pico", "--frames", str(folder), "--box", "100,80,130,100", "--track-zoom", "0.3",
                 "--max-frames", "3", "--out", str(out)]) == 0
    assert json.loads((out / "stats.json").read_text())["track_zoom"] == 0.3
    tracker = StreamingTracker(pico, track_zoom=0.3)
    for index, rgb in enumerate(list(video.frames())[:3]):
        expected = tracker.step(rgb, {1: Prompt(box=(100, 80, 130, 100))} if index == 0 else None).masks[1]
        assert np.array_equal(np.asarray(Image.open(out / "masks" / f"{index:05d}.png")) > 0, expected)
    assert tracker.objects[1].window[2] < rgb.shape[0]  # it was followed, not tracked on the whole frame


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
        "memory pool off the token grid": (["--model", "pico", "--memory-pool", "3", "--frames", f, "--box", box], "must divide"),
        "colour photo as prompt mask": (["--model", "pico", "--frames", f, "--prompt-mask", str(_photo_png(folder, tmp_path))], "colour image, not a mask"),
        "onnx folder that is no export": (["--onnx-dir", str(empty), "--frames", f, "--box", box], "not an export folder"),
        "onnx folder on trt": (["--onnx-dir", str(empty), "--backend", "trt", "--frames", f, "--box", box], "runs on the ort backend"),
        "trt without TensorRT": (["--engine-dir", str(tmp_path), "--backend", "trt", "--frames", f, "--box", box], "TensorRT"),
    }


CASES = [
    "missing checkpoint", "checkpoint/config mismatch", "unknown model", "unreadable video", "missing video",
    "empty frame folder", "mask of wrong size", "empty mask", "box outside the frame", "point outside the frame",
    "sis capacity below 2", "memory pool off the token grid", "colour photo as prompt mask", "onnx folder that is no export", "onnx folder on trt",
    "trt without TensorRT",
]


def _photo_png(folder, tmp_path):
    """A frame of the clip saved as an RGB PNG: a photo, not a mask."""
    path = tmp_path / "photo.png"
    Image.open(sorted(folder.glob("*.jpg"))[0]).convert("RGB").save(path)
    return path


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


@pytest.mark.parametrize("source", [["--camera", "99"], ["--video", "garbage.mp4"], ["--frames"]])
def test_a_source_that_does_not_open_or_a_usage_error_is_one_line_on_the_process_stderr(source, tmp_path):
    """In a fresh process, so that neither OpenCV's WARN lines nor FFmpeg's log (written to the
    file descriptor, past capsys) nor argparse's usage lines add to the one line."""
    (tmp_path / "garbage.mp4").write_bytes(b"\x00" * 1000)
    argv = [sys.executable, "-m", "mixqsam2.cli.run_stream", "--model", "pico", "--box", "10,10,50,50",
            "--out", str(tmp_path / "out"), *source]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "run_stream --help" in proc.stderr if source == ["--frames"] else proc.stderr.startswith("error: cannot")


def test_a_negative_camera_index_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # OpenCV would crash on it
        main(["--model", "pico", "--camera", "-1", "--box", "10,10,50,50", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "must be at least 0" in capsys.readouterr().err


@pytest.mark.parametrize("capacity", ["0", "-2"])
def test_capacity_below_one_is_a_usage_error(clip, tmp_path, capacity, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--model", "pico", "--frames", str(clip[0]), "--box", "10,10,50,50", "--capacity", capacity, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ output folders
def _tree(folder):
    """Every path under ``folder`` but our listings of written files."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != LISTING)


def test_an_existing_folder_is_refused_and_kept(clip, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's")
    code = main(["--model", "pico", "--frames", str(clip[0]), "--box", "40,30,200,180", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not empty" in err[0] and "--overwrite" in err[0]
    assert _tree(tmp_path) == ["out", "out/keep.txt"]


def test_overwrite_replaces_our_outputs_and_keeps_the_users_files(clip, tmp_path):
    out = tmp_path / "out"
    argv = ["--model", "pico", "--frames", str(clip[0]), "--box", "40,30,200,180", "--out", str(out)]
    assert main([*argv, "--max-frames", "4"]) == 0  # an earlier run: masks 00000-00003
    (out / "keep.txt").write_text("the user's")
    (out / "masks" / "mine.png").write_text("the user's, in our folder")
    assert main([*argv, "--max-frames", "3", "--overwrite"]) == 0
    assert _tree(tmp_path) == ["out", "out/keep.txt", "out/masks", "out/masks/00000.png", "out/masks/00001.png",
                               "out/masks/00002.png", "out/masks/mine.png", "out/overlay.mp4", "out/stats.json"]
    assert (out / "keep.txt").read_text() == "the user's"
    assert json.loads((out / "stats.json").read_text())["ended"] == "max_frames"


# ------------------------------------------------------------------ frames that go wrong
@pytest.fixture
def frames_copy(clip, tmp_path):
    """A writable copy of the 20-frame clip."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in clip[0].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _overlay_frames(path):
    capture = cv2.VideoCapture(str(path))
    sizes = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            return sizes
        sizes.append(bgr.shape[:2])


def test_a_truncated_frame_is_skipped_and_tracking_goes_on(frames_copy, tmp_path, capsys):
    _truncate(frames_copy / "00007.jpg")
    out = tmp_path / "out"
    assert main(["--model", "pico", "--frames", str(frames_copy), "--box", "40,30,200,180", "--out", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "00007" in warnings[0]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == 19 and stats["skipped_frames"] == ["00007"] and stats["ended"] == "end_of_input"
    masks = sorted(p.stem for p in (out / "masks").glob("*.png"))
    assert len(masks) == 19 and "00007" not in masks and masks[-1] == "00019"
    assert len(_overlay_frames(out / "overlay.mp4")) == 19


def test_consecutive_failures_end_the_stream_with_exit_1_and_keep_the_output(frames_copy, tmp_path, capsys):
    for index in range(6, 10):
        _truncate(frames_copy / f"{index:05d}.jpg")
    out = tmp_path / "out"
    argv = ["--model", "pico", "--frames", str(frames_copy), "--box", "40,30,200,180", "--max-read-failures", "3"]
    assert main([*argv, "--out", str(out)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3 frames in a row could not be read" in errors[0]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["ended"] == "read_failures" and stats["frames"] == 6
    assert stats["skipped_frames"] == ["00006", "00007", "00008"]
    assert len(list((out / "masks").glob("*.png"))) == 6 and len(_overlay_frames(out / "overlay.mp4")) == 6
    assert not list(tmp_path.glob(".out.*"))


def test_a_frame_of_another_size_is_resized_and_the_overlay_keeps_one_size(frames_copy, tmp_path, capsys):
    small = frames_copy / "00005.jpg"
    Image.open(small).resize((160, 120)).save(small)
    out = tmp_path / "out"
    assert main(["--model", "pico", "--frames", str(frames_copy), "--box", "40,30,200,180", "--out", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "00005 is 160x120" in warnings[0] and "resized" in warnings[0]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == 20 and stats["resized_frames"] == 1 and stats["skipped_frames"] == []
    assert _overlay_frames(out / "overlay.mp4") == [(240, 320)] * 20
    assert np.asarray(Image.open(out / "masks" / "00005.png")).shape == (240, 320)


# ------------------------------------------------------------------ stopping
@pytest.fixture(scope="module")
def long_clip(clip, tmp_path_factory):
    """400 frames (the clip's 20, looped, as links): long enough to stop mid-stream."""
    folder = tmp_path_factory.mktemp("long") / "frames"
    folder.mkdir()
    paths = sorted(clip[0].glob("*.jpg"))
    for index in range(400):
        (folder / f"{index:05d}.jpg").symlink_to(paths[index % len(paths)])
    return folder


def _start_stream(long_clip, out):
    argv = [sys.executable, "-m", "mixqsam2.cli.run_stream", "--model", "pico", "--frames", str(long_clip),
            "--box", "40,30,200,180", "--out", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_masks(proc, out, count=5, timeout=120.0):
    """Wait until the stream has written ``count`` masks into its temporary folder."""
    import time

    deadline = time.monotonic() + timeout
    while len(list(out.parent.glob(f".{out.name}.*.tmp/masks/*.png"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stream did not start"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_stream_after_the_current_frame_and_keeps_the_output(long_clip, tmp_path, signum):
    out = tmp_path / "out"
    proc = _start_stream(long_clip, out)
    _wait_for_masks(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and f"{signum.name}: stopping after this frame" in err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["ended"] == "signal" and 5 <= stats["frames"] < 400
    assert len(list((out / "masks").glob("*.png"))) == stats["frames"]
    assert len(_overlay_frames(out / "overlay.mp4")) == stats["frames"]  # a playable overlay of every frame
    assert _tree(tmp_path) == ["out", *(f"out/{p}" for p in _tree(out))]  # no temp folder


def test_once_the_output_is_in_place_a_late_signal_cannot_end_the_process_with_130_or_143(clip, tmp_path):
    """A second Ctrl-C/SIGTERM after the first stop finished the output (while the process
    prints and tears down) would otherwise kill it with 143 or a KeyboardInterrupt."""
    assert main(["--model", "pico", "--frames", str(clip[0]), "--box", "40,30,200,180", "--max-frames", "2",
                 "--out", str(tmp_path / "out")]) == 0  # (conftest restores the handlers after each test)
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == [signal.SIG_IGN, signal.SIG_IGN]


def test_a_signal_that_waited_for_the_output_to_be_moved_into_place_aborts_nothing(tmp_path, monkeypatch):
    """A second Ctrl-C during the move is held back and delivered once the output is in
    place: it must find the stop already knowing that, not raise "aborted: no output"."""
    import os

    from mixqsam2 import fileio
    from mixqsam2.runtime.stopping import StopOnSignal, StreamAborted

    move = fileio._rename_into_place

    def move_while_the_user_presses_ctrl_c(*args):
        os.kill(os.getpid(), signal.SIGINT)  # held back while the results move
        move(*args)

    monkeypatch.setattr(fileio, "_rename_into_place", move_while_the_user_presses_ctrl_c)
    stop = StopOnSignal(ignore_after=True)
    with stop, fileio.atomic_output_dir(tmp_path / "out", on_commit=stop.output_written) as folder:
        os.kill(os.getpid(), signal.SIGINT)  # the first: stop after this frame
        (folder / "stats.json").write_text("{}")
        with pytest.raises(StreamAborted):  # a second one before the move still aborts
            os.kill(os.getpid(), signal.SIGTERM)
    assert (tmp_path / "out" / "stats.json").is_file()  # the one during the move raised nothing
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # (conftest restores the handlers)


def test_without_ignore_after_the_previous_handlers_come_back():
    from mixqsam2.runtime.stopping import StopOnSignal

    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        stop.output_written()
    assert signal.getsignal(signal.SIGINT) == before


def test_a_second_signal_aborts_at_once_without_output(long_clip, tmp_path):
    out = tmp_path / "out"
    proc = _start_stream(long_clip, out)
    _wait_for_masks(proc, out)
    proc.send_signal(signal.SIGINT)  # stop after this frame ...
    proc.send_signal(signal.SIGTERM)  # ... no: abort (a different signal, so the two never merge into one)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "aborted by a second SIGTERM: no output written"
    assert _tree(tmp_path) == []  # neither output nor temp folder
