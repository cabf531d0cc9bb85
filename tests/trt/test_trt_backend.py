"""The trt backend on a machine without TensorRT: one line, exit 2, nothing written. (With TensorRT
and a GPU, tests/gpu/test_trt_pico.py runs it.)"""

from __future__ import annotations

import importlib.util

import pytest

from mixqsam2.cli.run_stream import main
from mixqsam2.data.loaders import open_video_set
from mixqsam2.errors import UserInputError
from mixqsam2.runtime.backends import open_graphs

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
MISSING = "--backend trt needs TensorRT, which is not installed here"


def test_opening_an_engine_folder_says_tensorrt_is_missing(tmp_path):
    with pytest.raises(UserInputError, match=MISSING):
        open_graphs("trt", engine_dir=tmp_path)


def test_run_stream_with_an_engine_folder_is_one_line_exit_2_and_no_output(video_set, tmp_path, capsys):
    frames = open_video_set(video_set)[0].frame_paths[0].parent
    out = tmp_path / "out"
    code = main(["--engine-dir", str(tmp_path / "engines"), "--frames", str(frames), "--box", "10,10,50,50",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {MISSING}"), err
    assert not out.exists()
