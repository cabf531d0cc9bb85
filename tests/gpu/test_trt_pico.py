"""Pico through TensorRT on a GPU: engines of the fp16 export and of a 6-bit plan build; their masks
match ONNX Runtime's (IoU >= 0.98 on every frame of a generated clip); engines reloaded from disk
give the same masks. Everything goes through the user-facing commands (mixqsam2 calibrate/export,
deploy/build_engine.py, run_stream). Skipped without TensorRT, a GPU or the SIS plugin library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MIN_IOU = 0.98


def _run(*argv):
    done = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, f"{argv[:2]}: {done.stderr[-2000:]}"
    return done


def _mixqsam2(*argv):
    return _run("-m", "mixqsam2.cli.main", *argv)


@pytest.fixture(scope="module")
def clip(video_set):
    """(frames folder, first-frame mask) of the first generated video."""
    video = sorted((video_set / "JPEGImages").iterdir())[0]
    return video, video_set / "Annotations" / video.name / "00000.png"


@pytest.fixture(scope="module", params=["fp16", "plan-6bit"])
def export(request, tensorrt, sis_plugin, image_set, video_set, tmp_path_factory):
    """(export folder, engine folder) of pico, without a plan (fp16) or with a 6-bit WAIS plan."""
    root = tmp_path_factory.mktemp(request.param)
    plan_args = []
    if request.param == "plan-6bit":
        _mixqsam2("calibrate", "--model", "pico", "--images", image_set, "--videos", video_set, "--max-frames", "3",
                  "--budget-bits", "6", "--importance", "wais", "--block-size", "32", "--out", root / "plan.json")
        plan_args = ["--plan", root / "plan.json"]
    _mixqsam2("export", "--model", "pico", *plan_args, "--out", root / "export")
    _run("deploy/build_engine.py", "--onnx-dir", root / "export", *plan_args, "--out", root / "engines",
         "--plugin-lib", sis_plugin, "--timing-cache", root / "timing.cache")
    return root / "export", root / "engines"


def _stream(clip, out, *model_args):
    frames, mask = clip
    _run("-m", "mixqsam2.cli.run_stream", *model_args, "--frames", frames, "--prompt-mask", mask, "--memory", "sis",
         "--out", out)
    return {p.name: np.asarray(Image.open(p)) > 127 for p in sorted((out / "masks").rglob("*.png"))}


def test_engines_and_their_index_are_written(export):
    _, engines = export
    index = json.loads((engines / "engines.json").read_text())
    assert {"image_encoder", "memory_attention", "mask_decoder", "memory_encoder"} <= set(index["engines"])
    assert any(g.startswith("sis_update_plugin.") for g in index["engines"]) and index["plugin"]["sha256"]
    assert all((engines / record["file"]).stat().st_size > 0 for record in index["engines"].values())


def test_tensorrt_masks_match_onnx_runtime_on_every_frame(export, clip, tmp_path):
    onnx_dir, engines = export
    reference = _stream(clip, tmp_path / "ort", "--onnx-dir", onnx_dir, "--backend", "ort")
    got = _stream(clip, tmp_path / "trt", "--engine-dir", engines, "--backend", "trt")
    assert got.keys() == reference.keys() and len(got) > 1
    for name, mask in reference.items():
        union = (mask | got[name]).sum()
        iou = (mask & got[name]).sum() / union if union else 1.0
        assert iou >= MIN_IOU, f"{name}: IoU {iou:.4f}"


def test_engines_reloaded_from_disk_give_the_same_masks(export, clip, tmp_path):
    _, engines = export
    first = _stream(clip, tmp_path / "a", "--engine-dir", engines, "--backend", "trt")
    again = _stream(clip, tmp_path / "b", "--engine-dir", engines, "--backend", "trt")
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[name], again[name]) for name in first)
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["frames"] == len(again)
