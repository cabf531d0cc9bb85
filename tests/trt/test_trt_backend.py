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


def test_an_engine_folder_without_every_engine_is_refused_in_one_line(pico_onnx_fp32, tmp_path, monkeypatch):
    """A folder built with ``build_engine.py --graphs memory_attention`` can be timed, not tracked
    with: the backend names the engines it lacks before loading any (TensorRT stubbed out)."""
    import json
    import shutil

    from mixqsam2.export.manifest import file_sha256
    from mixqsam2.runtime import trt_backend
    from mixqsam2.trt.build import ENGINES_SCHEMA, INDEX

    monkeypatch.setattr(trt_backend, "require_tensorrt", lambda: None)
    folder = tmp_path / "engines"
    folder.mkdir()
    shutil.copyfile(pico_onnx_fp32 / "manifest.json", folder / "manifest.json")
    (folder / "memory_attention.engine").write_bytes(b"an engine")
    record = {"file": "memory_attention.engine", "sha256": file_sha256(folder / "memory_attention.engine")}
    (folder / INDEX).write_text(json.dumps({"schema": ENGINES_SCHEMA, "engines": {"memory_attention": record}}))
    missing = "image_encoder, mask_decoder, memory_encoder, sis_update_plugin.fifo"
    with pytest.raises(UserInputError, match=f"has no engine for {missing}, ") as raised:
        trt_backend.TrtGraphs(folder)
    assert "\n" not in str(raised.value) and "sis_update.fifo" not in str(raised.value)
