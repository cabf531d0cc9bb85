"""Pico through TensorRT on a GPU, the way a user runs it: pico exported without a plan (fp32 graphs)
and with the mixed int4/int8/fp16 plan (tests/conftest.py), engines built by deploy/build_engine.py
(tests/gpu/conftest.py), then ``run_stream --engine-dir`` against ``run_stream --onnx-dir`` on a
generated clip with three objects: mask IoU >= 0.98 on every frame and object; a second stream
(engines reloaded from disk) gives the same masks. Skipped without TensorRT, a GPU or the SIS
plugin library."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mixqsam2.memory.tracker import STAGES

MIN_IOU = 0.98


@pytest.fixture(scope="module", params=["fp32", "plan"])
def build(request):
    """(export folder, engine folder) of pico, without and with the plan (engines first: they skip first)."""
    engines = request.getfixturevalue(f"pico_engines_{request.param}")
    return request.getfixturevalue(f"pico_onnx_{request.param}"), engines


@pytest.fixture(scope="module")
def clip(video_set):
    """(frames folder, first-frame mask) of the first generated video (three objects)."""
    video = sorted((video_set / "JPEGImages").iterdir())[0]
    return video, video_set / "Annotations" / video.name / "00000.png"


def _stream(clip, out, *model_args) -> dict[str, np.ndarray]:
    """run_stream's masks (path under masks/ -> bool array), SIS memory: the plugin engine updates the bank."""
    frames, mask = clip
    done = subprocess.run([sys.executable, "-m", "mixqsam2.cli.run_stream", *map(str, model_args), "--frames",
                           str(frames), "--prompt-mask", str(mask), "--memory", "sis", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return {str(p.relative_to(out / "masks")): np.asarray(Image.open(p)) > 127
            for p in sorted((out / "masks").rglob("*.png"))}


def test_every_graph_is_an_engine_and_the_folder_carries_what_the_runtime_reads(build):
    export, engines = build
    manifest = json.loads((export / "manifest.json").read_text())
    index = json.loads((engines / "engines.json").read_text())
    assert set(index["engines"]) == set(manifest["graphs"])
    assert index["plan_sha256"] == (manifest["plan"] or {}).get("sha256")
    assert index["plugin"]["sha256"] and index["gpu"]
    assert all(record["typing"] in ("strong", "weak") and (engines / record["file"]).stat().st_size > 0
               for record in index["engines"].values())
    for name in ("manifest.json", "constants.npz"):
        assert (engines / name).read_bytes() == (export / name).read_bytes()


def test_tensorrt_masks_match_onnx_runtime_on_every_frame_and_object(build, clip, tmp_path):
    export, engines = build
    reference = _stream(clip, tmp_path / "ort", "--onnx-dir", export)
    got = _stream(clip, tmp_path / "trt", "--engine-dir", engines)
    assert got.keys() == reference.keys() and len(got) == 3 * len(list(clip[0].glob("*.jpg")))  # 3 objects
    ious = {}
    for name, mask in reference.items():
        union = (mask | got[name]).sum()
        ious[name] = (mask & got[name]).sum() / union if union else 1.0
    worst = min(ious, key=ious.get)
    assert ious[worst] >= MIN_IOU, f"{worst}: IoU {ious[worst]:.4f} (mean {np.mean(list(ious.values())):.4f})"
    stats = json.loads((tmp_path / "trt" / "stats.json").read_text())
    assert set(STAGES) <= set(stats["latency_ms"]) and all(stats["latency_ms"][s] > 0 for s in STAGES)


def test_engines_reloaded_from_disk_give_the_same_masks(build, clip, tmp_path):
    _, engines = build
    first = _stream(clip, tmp_path / "a", "--engine-dir", engines)
    again = _stream(clip, tmp_path / "b", "--engine-dir", engines)
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[name], again[name]) for name in first)


def test_memory_features_stay_on_the_gpu_for_the_whole_stream(build, clip):
    """The trt backend keeps every object's memory features on the device (only the bank's
    per-slot arrays come to the host), and the bank they hold is the one ONNX Runtime keeps."""
    from mixqsam2.memory.prompts import Prompt
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.runtime.ort_backend import OrtGraphs
    from mixqsam2.runtime.trt_backend import TrtGraphs
    from mixqsam2.trt.cuda import DeviceTensor

    export, engines = build
    frames, mask_path = clip
    labels = np.asarray(Image.open(mask_path))
    prompts = {int(i): Prompt(mask=labels == i) for i in np.unique(labels) if i}
    first, *later = sorted(prompts)
    # one object from frame 0, the others join on frame 3 (a frame with prompted and tracked
    # objects: the stacks grow), and the first is prompted again on frame 8
    schedule = {0: {first: prompts[first]}, 3: {k: prompts[k] for k in later}, 8: {first: prompts[first]}}
    trackers = [StreamingTracker(graphs, memory="sis") for graphs in (TrtGraphs(engines), OrtGraphs(export))]
    for index, path in enumerate(sorted(frames.glob("*.jpg"))[:14]):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for tracker in trackers:
            tracker.step(rgb, schedule.get(index))
    on_gpu, on_host = trackers
    stream = on_gpu.graphs.runner.stream
    for obj_id, state in on_gpu.objects.items():
        assert isinstance(state.cond_features, DeviceTensor) and isinstance(state.bank.features, DeviceTensor)
        assert isinstance(state.bank.positions, np.ndarray)
        features = np.empty(state.bank.features.shape, state.bank.features.dtype)
        stream.to_host(features, state.bank.features.pointer)
        stream.synchronize()
        reference = on_host.objects[obj_id].bank
        np.testing.assert_array_equal(state.bank.valid, reference.valid)
        kept = reference.features[reference.valid]
        assert np.abs(features[reference.valid] - kept).max() <= 0.02 * np.abs(kept).max()
    on_gpu.graphs.close()
