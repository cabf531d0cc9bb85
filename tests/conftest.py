"""Shared fixtures: one pico model per session, small generated data sets, the benchmark scripts."""

from __future__ import annotations

import signal
import warnings

import pytest


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """run_stream's main ignores SIGINT/SIGTERM once its output is in place (it ends the
    process); called in-process, it must not leave pytest deaf to Ctrl-C."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.fixture(scope="session")
def pico():
    """The shipped (trained) pico; test_pico_checkpoint.py fails if it is missing."""
    from mixqsam2.models import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without the checkpoint: random weights, said loudly
        return build_model("pico")


@pytest.fixture(scope="session")
def pico_checkpoint(pico, tmp_path_factory):
    """The pico weights the session uses, as a sam2-format file."""
    from mixqsam2.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "pico.pt"
    save_checkpoint(pico, path)
    return path


@pytest.fixture(scope="session")
def video_set(tmp_path_factory):
    from mixqsam2.data.synth import write_video_set

    root = tmp_path_factory.mktemp("videos") / "set"
    write_video_set(root, num=2, frames=20, seed=30)  # 3 objects + 1 object
    return root


@pytest.fixture(scope="session")
def image_set(tmp_path_factory):
    from mixqsam2.data.synth import write_image_set

    root = tmp_path_factory.mktemp("images") / "set"
    write_image_set(root, num=4, seed=12)
    return root


@pytest.fixture(scope="session")
def pico_plan(pico, image_set, video_set, tmp_path_factory):
    """A deployable plan for pico that mixes int8, int4 and fp16 (6 effective bits, blocks of 32)."""
    from mixqsam2.data.loaders import CocoImages, open_video_set
    from mixqsam2.quant.calibrate import calibrate, make_forward_loop
    from mixqsam2.quant.config import CalibrationConfig

    loop = make_forward_loop(list(CocoImages.from_dir(image_set)), open_video_set(video_set), max_frames=4)
    plan = calibrate(pico, loop, CalibrationConfig(budget_bits=6.0, block_size=32), model_name="pico")
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    plan.save(path)
    return path


@pytest.fixture(scope="session")
def pico_onnx_fp32(pico, tmp_path_factory):
    """pico exported without a plan (fp32 graphs)."""
    from mixqsam2.export import export_model

    out = tmp_path_factory.mktemp("onnx") / "pico-fp32"
    export_model(pico, "pico", out, progress=False)
    return out


@pytest.fixture(scope="session")
def pico_onnx_plan(pico, pico_plan, tmp_path_factory):
    """pico exported with ``pico_plan`` baked in."""
    from mixqsam2.export import export_model

    out = tmp_path_factory.mktemp("onnx") / "pico-plan"
    export_model(pico, "pico", out, plan_path=pico_plan, progress=False)
    return out


def _benchmark_script(name: str):
    """``benchmarks/<name>.py`` (the scripts are not a package) as a module."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pico_quality():
    return _benchmark_script("pico_quality")


@pytest.fixture(scope="session")
def replay_steps():
    return _benchmark_script("replay_steps")


@pytest.fixture(scope="session")
def memory_bank_combine():
    return _benchmark_script("memory_bank_combine")


@pytest.fixture(scope="session")
def replicates():
    return _benchmark_script("replicates")


@pytest.fixture(scope="session")
def object_scores():
    return _benchmark_script("object_scores")


@pytest.fixture(scope="session")
def bundle_gate():
    return _benchmark_script("bundle_gate")
