"""Frame sources: what a failed read means for a camera, a video file and a frame folder."""

import numpy as np
import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.runtime.io import FrameSource, _capture_frames

BGR = np.zeros((4, 6, 3), np.uint8)


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: ``read()`` follows ``script`` (True: a frame, False: a
    failed read), then fails forever."""

    def __init__(self, script):
        self.script = list(script)
        self.released = False

    def read(self):
        ok = self.script.pop(0) if self.script else False
        return ok, (BGR if ok else None)

    def release(self):
        self.released = True


def _read(frames, limit=20):
    return [(f.name, f.rgb is not None) for f, _ in zip(frames, range(limit))]


def test_a_camera_that_fails_yields_unreadable_frames_and_goes_on():
    frames = _capture_frames(ScriptedCapture([True, False, False, True]), None, live=True)
    assert _read(frames, limit=6) == [("00000", True), ("00001", False), ("00002", False), ("00003", True),
                                      ("00004", False), ("00005", False)]


def test_a_video_file_skips_failed_reads_before_its_frame_count_and_ends_after():
    capture = ScriptedCapture([True, False, True, False, False])
    assert _read(_capture_frames(capture, 3, live=False)) == [("00000", True), ("00001", False), ("00002", True)]
    assert capture.released


def test_a_video_of_unknown_length_ends_at_its_first_failed_read():
    assert _read(_capture_frames(ScriptedCapture([True, True, False, True]), None, live=False)) == [
        ("00000", True), ("00001", True)]


def test_opening_skips_leading_failures_up_to_the_limit():
    source = FrameSource(_capture_frames(ScriptedCapture([False, False, True]), None, live=True), None, 30.0,
                         "camera 0", max_read_failures=2)
    assert source.frame_size == (4, 6)
    assert _read(source, limit=3) == [("00000", False), ("00001", False), ("00002", True)]  # the stream counts them
    with pytest.raises(UserInputError, match="cannot read camera 0: no frame could be decoded"):
        FrameSource(_capture_frames(ScriptedCapture([False] * 3 + [True]), None, live=True), None, 30.0,
                    "camera 0", max_read_failures=2)


def test_a_camera_that_stops_delivering_ends_the_stream_with_its_output(pico, tmp_path):
    import json

    from mixqsam2.memory.prompts import Prompt
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.runtime.stream import run_stream

    camera = ScriptedCapture([True] * 3)  # then nothing but failed reads
    source = FrameSource(_capture_frames(camera, None, live=True), None, 30.0, "camera 0")
    stats = run_stream(StreamingTracker(pico), source, {1: Prompt(box=(1, 1, 5, 3))}, tmp_path / "out",
                       max_read_failures=4)
    assert stats["ended"] == "read_failures" and stats["frames"] == 3
    assert stats["skipped_frames"] == ["00003", "00004", "00005", "00006"]
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats
    assert camera.released
