"""Calibration on a CUDA device gives the plan the CPU gives (skipped without a GPU)."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.mark.parametrize("importance", ["wais", "measured"])
def test_cuda_calibration_matches_cpu(importance, image_set, video_set, tmp_path):
    from mixqsam2.cli.main import main
    from mixqsam2.quant.plan import PrecisionPlan

    plans = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.json"
        argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--videos", str(video_set),
                "--max-frames", "4", "--budget-bits", "6", "--block-size", "32", "--importance", importance,
                "--device", device, "--out", str(out)]
        assert main(argv) == 0
        plans[device] = PrecisionPlan.load(out)
    cpu, cuda = plans["cpu"], plans["cuda"]
    assert cuda.effective_bits <= 6.0 + 1e-9 and cuda.model_sha256 == cpu.model_sha256
    same = sum(cpu.layers[n]["format"] == cuda.layers[n]["format"] for n in cpu.layers)
    assert same >= 0.9 * len(cpu.layers)  # float round-off may tip a near tie
    for name, layer in cpu.layers.items():
        assert cuda.layers[name]["score"] == pytest.approx(layer["score"], rel=1e-3, abs=1e-9)
