"""The ort backend: exported graphs on ONNX Runtime give the torch tracker's masks, fp32 and with a
plan; the Jetson path runs without torch and sam2; its bad input."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mixqsam2.data.loaders import CocoImages, open_video_set
from mixqsam2.eval.metrics import mask_iou
from mixqsam2.memory.prompts import Prompt, clip_box
from mixqsam2.memory.tracker import StreamingTracker
from mixqsam2.runtime.ort_backend import OrtGraphs


def _paired_video_ious(video, first, second, memory, capacity=None, track_zoom=None):
    """Per frame and object, the IoU between two trackers' masks on the same video."""
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    trackers = [StreamingTracker(g, memory=memory, capacity=capacity, num_frames=len(video.frame_paths),
                                 track_zoom=track_zoom) for g in (first, second)]
    ious = []
    for index, rgb in enumerate(video.frames()):
        a, b = (t.step(rgb, prompts if index == 0 else None) for t in trackers)
        ious += [mask_iou(a.masks[k], b.masks[k]) for k in prompts]
    return ious


def _paired_image_ious(images, first, second):
    ious = []
    trackers = [StreamingTracker(g) for g in (first, second)]
    for sample in images:
        rgb = sample.rgb()
        prompts = {k: Prompt(box=clip_box(b, *rgb.shape[:2])) for k, b in sample.boxes.items()}
        a, b = (t.segment_image(rgb, prompts) for t in trackers)
        ious += [mask_iou(a[k], b[k]) for k in prompts]
    return ious


@pytest.mark.parametrize("memory", ["fifo", "sis"])
def test_fp32_graphs_give_the_torch_masks_on_every_frame_and_object(pico, pico_onnx_fp32, video_set, memory):
    ort = OrtGraphs(pico_onnx_fp32)
    for video in open_video_set(video_set):
        ious = _paired_video_ious(video, pico, ort, memory, capacity=6)
        assert min(ious) >= 0.99, (video.name, min(ious))


def test_fp32_graphs_follow_small_objects_as_torch_does(pico, pico_onnx_fp32, video_set):
    """With track zoom each object runs the graphs on its own view (a batch of one per window)."""
    video = open_video_set(video_set)[0]
    ious = _paired_video_ious(video, pico, OrtGraphs(pico_onnx_fp32), "fifo", capacity=6, track_zoom=0.5)
    assert min(ious) >= 0.99, min(ious)


def test_fp32_graphs_give_the_torch_masks_on_every_image_instance(pico, pico_onnx_fp32, image_set):
    ious = _paired_image_ious(CocoImages.from_dir(image_set), pico, OrtGraphs(pico_onnx_fp32))
    assert len(ious) > 4 and min(ious) >= 0.99


def test_decoder_logits_differ_by_float_round_off_only(pico, pico_onnx_fp32):
    """The raw mask logits of both backends on the same inputs (the tracing shapes, 3 objects)."""
    from mixqsam2.export.onnx_graphs import example_inputs
    from mixqsam2.models.graphs import TorchGraphs

    ort, torch_graphs = OrtGraphs(pico_onnx_fp32), TorchGraphs(pico, 6)
    inputs = example_inputs("mask_decoder", ort.config, 6, objects=3)
    got, expected = ort.run("mask_decoder", inputs), torch_graphs.run("mask_decoder", inputs)
    assert np.abs(got["masks"] - expected["masks"]).max() < 1e-3
    assert np.abs(got["pointers"] - expected["pointers"]).max() < 1e-4


@pytest.fixture(scope="module")
def fake_quantized(pico, pico_plan):
    """The plan simulated in torch with the ort backend's CPU arithmetic (fp16-computing layers
    on fp16 weights but fp32 activations: ONNX Runtime's CPU provider drops the cast pairs)."""
    import copy

    from mixqsam2.quant.plan import PrecisionPlan, apply_plan

    return apply_plan(copy.deepcopy(pico), PrecisionPlan.load(pico_plan), fp16_activations=False)


@pytest.fixture(scope="module")
def parity_images(tmp_path_factory):
    """16 generated images (about 40 instances): a mean IoU over 8 instances moves by 2 % when
    one borderline object flips."""
    from mixqsam2.data.synth import write_image_set

    root = tmp_path_factory.mktemp("parity") / "images"
    write_image_set(root, num=16, seed=41)
    return root


def test_plan_graphs_agree_with_torch_fake_quantization(fake_quantized, pico_onnx_plan, parity_images, video_set):
    """The plan baked into ONNX vs the same plan simulated in torch: mean IoU >= 0.98 on an
    image set; on every video a median >= 0.99 and a mean >= 0.96 (a tracked object can flip
    on a few borderline frames and come back: pico v2 had two frames at 0.72 and 0.82 in a
    20-frame, one-object video, mean 0.972; v2.1's lowest is 0.91, means 0.992 and 0.996).
    (TensorRT's fp16 rounding of activations, which the default simulation adds, moves pico's
    masks further: BENCHMARKS.md, issue 10.)"""
    ort = OrtGraphs(pico_onnx_plan)
    assert np.mean(_paired_image_ious(CocoImages.from_dir(parity_images), fake_quantized, ort)) >= 0.98
    for video in open_video_set(video_set):
        ious = _paired_video_ious(video, fake_quantized, ort, "fifo")
        assert np.median(ious) >= 0.99 and np.mean(ious) >= 0.96, (video.name, np.median(ious), np.mean(ious))


def test_agreement_with_the_unquantized_model_is_the_same_in_torch_and_onnx_runtime(
        pico, fake_quantized, pico_onnx_fp32, pico_onnx_plan, parity_images):
    """How far the whole plan (int8, int4 and fp16 layers) moves the masks from the unquantized
    model's, simulated in torch and run in ONNX Runtime: within 0.01 on these 16 images, where
    one borderline instance moves a mean by ~0.01. (Issue 10 asks 0.005: on 503 instances of
    200 images they differ by -0.0011 [-0.0056, +0.0031], benchmarks/plan_agreement.py.)"""
    images = CocoImages.from_dir(parity_images)
    torch_agreement = np.mean(_paired_image_ious(images, pico, fake_quantized))
    ort_agreement = np.mean(_paired_image_ious(images, OrtGraphs(pico_onnx_fp32), OrtGraphs(pico_onnx_plan)))
    assert torch_agreement < 0.999  # the plan changes masks: the comparison is not trivial
    assert abs(torch_agreement - ort_agreement) <= 0.01


def _run_without(modules, argv, tmp_path):
    """run_stream in a fresh interpreter where importing any of ``modules`` fails."""
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {tuple(modules)!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from mixqsam2.cli.run_stream import main
        sys.exit(main({argv!r}))
    """))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True)


@pytest.mark.parametrize("kernels", ["exact", "fast"])
def test_a_whole_ort_stream_runs_without_torch_and_sam2(pico_onnx_fp32, video_set, tmp_path, kernels):
    video = open_video_set(video_set)[1]
    prompt = video.frame_paths[0].parents[2] / "Annotations" / video.name / "00000.png"
    out = tmp_path / "run"
    argv = ["--onnx-dir", str(pico_onnx_fp32), "--frames", str(video.frame_paths[0].parent), "--prompt-mask",
            str(prompt), "--memory", "sis", "--ort-kernels", kernels, "--out", str(out)]
    proc = _run_without(["torch", "sam2"], argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == len(video.frame_paths) and stats["memory"] == {"policy": "sis", "capacity": 6, "pool": 1}
    assert {"image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "sis_update"} <= set(stats["latency_ms"])
    assert len(list((out / "masks").glob("*.png"))) == len(video.frame_paths) and (out / "overlay.mp4").stat().st_size > 0


def test_ort_backend_without_onnxruntime_is_one_line_and_exit_2(pico_onnx_fp32, video_set, tmp_path):
    video = open_video_set(video_set)[1]
    out = tmp_path / "run"
    argv = ["--onnx-dir", str(pico_onnx_fp32), "--frames", str(video.frame_paths[0].parent), "--box", "10,10,60,60",
            "--out", str(out)]
    proc = _run_without(["onnxruntime"], argv, tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "needs onnxruntime" in err[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def pico_onnx_pooled(pico, tmp_path_factory):
    from mixqsam2.export import export_model

    out = tmp_path_factory.mktemp("onnx") / "pico-pool2"
    export_model(pico, "pico", out, memory_pool=2, progress=False)
    return out


def test_a_pooled_export_gives_the_pooled_torch_masks_and_keeps_its_pooling(pico, pico_onnx_pooled, video_set):
    from mixqsam2.errors import UserInputError
    from mixqsam2.memory.tracker import make_torch_graphs

    ort = OrtGraphs(pico_onnx_pooled)
    assert ort.memory_pool == 2 and ort.manifest["memory_pool"] == 2
    video = open_video_set(video_set)[1]
    assert min(_paired_video_ious(video, make_torch_graphs(pico, 6, memory_pool=2), ort, "fifo")) >= 0.99
    assert min(_paired_video_ious(video, pico, ort, "fifo")) < 0.99  # pooling changes masks: the graphs have it
    with pytest.raises(UserInputError, match="--memory-pool 2, not 1"):
        StreamingTracker(ort, memory_pool=1)


def test_eval_on_ort_exports_the_asked_bank_and_records_the_graphs_pooling(pico_onnx_pooled, video_set, tmp_path,
                                                                          monkeypatch):
    """--backend ort with a model name exports it into the cache with the asked capacity and
    pooling; with --onnx-dir the export's pooling is what the result records."""
    from mixqsam2.cli.main import main

    monkeypatch.setenv("MIXQSAM2_CACHE", str(tmp_path / "cache"))
    cached = ["--backend", "ort", "--model", "pico", "--capacity", "3", "--memory-pool", "2"]
    for name, source in (("cached", cached), ("folder", ["--onnx-dir", str(pico_onnx_pooled)])):
        out = tmp_path / f"{name}.json"
        assert main(["eval", "videos", *source, "--data", str(video_set), "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["memory_pool"] == 2 and result["capacity"] == (3 if name == "cached" else 6), name
    assert [p.name.split("-", 2)[2] for p in (tmp_path / "cache" / "onnx").iterdir()] == ["k3-pool2"]


def test_a_cached_export_with_other_host_side_settings_is_made_again(tmp_path, monkeypatch):
    """The cache is keyed by the weights; an export of the same weights made with other
    host-side settings (here: sam2's multimask fallback, as pico was exported before it kept
    its single mask) is exported again, a current one is reused."""
    from mixqsam2.runtime.backends import cached_export

    monkeypatch.setenv("MIXQSAM2_CACHE", str(tmp_path / "cache"))
    folder = cached_export("pico", capacity=2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"]["dynamic_multimask_via_stability"] is False
    manifest["model"]["dynamic_multimask_via_stability"] = True
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert cached_export("pico", capacity=2) == folder
    made = (folder / "manifest.json").stat().st_mtime_ns
    assert json.loads((folder / "manifest.json").read_text())["model"]["dynamic_multimask_via_stability"] is False
    assert cached_export("pico", capacity=2) == folder and (folder / "manifest.json").stat().st_mtime_ns == made


def test_an_export_for_another_capacity_is_refused(pico_onnx_fp32):
    from mixqsam2.errors import UserInputError

    with pytest.raises(UserInputError, match="built for a memory capacity of 6, not 3"):
        StreamingTracker(OrtGraphs(pico_onnx_fp32), memory="sis", capacity=3)


def test_eval_on_an_export_gives_the_torch_scores(pico_onnx_fp32, video_set, image_set, tmp_path):
    from mixqsam2.cli.main import main

    for kind, data, key in (("videos", video_set, "JF"), ("images", image_set, "miou")):
        results = {}
        for backend, source in (("torch", ["--model", "pico"]), ("ort", ["--onnx-dir", str(pico_onnx_fp32)])):
            out = tmp_path / f"{kind}-{backend}.json"
            assert main(["eval", kind, *source, "--data", str(data), "--out", str(out)]) == 0
            results[backend] = json.loads(out.read_text())
        assert results["ort"]["backend"] == "ort" and results["torch"]["backend"] == "torch"
        assert abs(results["ort"][key] - results["torch"][key]) < 0.01, kind


@pytest.mark.parametrize("extra", [["--model", "pico"], ["--checkpoint", "mine.pt"]])
def test_weights_named_beside_an_export_are_refused_not_ignored(pico_onnx_fp32, image_set, tmp_path, capsys, extra):
    from mixqsam2.cli.main import main

    out = tmp_path / "r.json"
    assert main(["eval", "images", "--onnx-dir", str(pico_onnx_fp32), *extra, "--data", str(image_set),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not go with an export or engine folder" in err[0] and not out.exists()


def test_fast_kernels_compute_memory_attentions_products_in_int8_and_keep_the_masks(pico_onnx_fp32, video_set):
    """``fast`` rewrites memory attention's attention products (QK^T into the Softmax, and
    Softmax x V) as per-call uint8 products: the graph's output stays within 1 % and the
    tracked masks within 0.95 mean IoU of ``exact`` (measured: BENCHMARKS.md, issue 10)."""
    import onnx

    from mixqsam2.export.ort_session import int8_attention_products, ort_session
    from mixqsam2.export.onnx_graphs import example_inputs

    graphs = OrtGraphs(pico_onnx_fp32)
    model = onnx.load(pico_onnx_fp32 / "memory_attention.onnx")
    assert int8_attention_products(model) == 8  # 2 layers x (self, cross) x (QK^T, PV)
    inputs = example_inputs("memory_attention", graphs.config, graphs.capacity, objects=2)
    exact = ort_session(pico_onnx_fp32 / "memory_attention.onnx").run(None, inputs)[0]
    fast = ort_session(model.SerializeToString()).run(None, inputs)[0]
    assert 0 < np.linalg.norm(fast - exact) / np.linalg.norm(exact) < 0.01
    video = open_video_set(video_set)[0]
    assert np.mean(_paired_video_ious(video, graphs, OrtGraphs(pico_onnx_fp32, kernels="fast"), "fifo")) >= 0.95


def test_fast_kernels_on_another_backend_are_one_line_and_exit_2(video_set, tmp_path, capsys):
    from mixqsam2.cli.run_stream import main

    video = open_video_set(video_set)[1]
    argv = ["--model", "pico", "--ort-kernels", "fast", "--frames", str(video.frame_paths[0].parent),
            "--box", "10,10,60,60", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ort-kernels fast is for the ort backend" in err[0]
    assert not (tmp_path / "run").exists()


def test_fast_kernels_for_the_torch_backend_in_eval_are_refused(image_set, tmp_path, capsys):
    from mixqsam2.cli.main import main

    argv = ["eval", "images", "--model", "pico", "--ort-kernels", "fast", "--data", str(image_set),
            "--out", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "--ort-kernels fast is for the ort backend" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
