"""benchmarks/gpu_train.py, the script a lent GPU's minutes go to (issue 13), run on the CPU here
so that it still works the day a GPU is lent."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_train.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_a_candidate_probes_sizes_its_schedule_trains_and_is_reported(tmp_path):
    from mixqsam2.models import build_model, get_spec

    out = tmp_path / "runs"
    done = _run("--out", str(out), "--minutes", "0.5", "--device", "cpu", "--workers", "0",
                "--probe-steps", "3", "--video-batch", "1", "--image-batch", "2", "--set", "video_every=2",
                "--candidate", f"pico-cont=32:{get_spec('pico').checkpoint}")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "pico-cont.json").read_text())
    assert record["probe_seconds_per_step"] > 0
    assert record["config"]["steps"] >= 3 and record["config"]["video_every"] == 2  # sized by the probe, --set kept
    assert 1 <= record["steps_done"] == len(record["history"]) <= record["config"]["steps"]
    assert "| pico-cont | 32 | pico.pt |" in (out / "runs.md").read_text()
    assert (out / "runs.png").stat().st_size > 0
    # what a lent machine's $OUT brings back: the checkpoint, its record, the table and figure; no probe files
    assert not [p.name for p in out.iterdir() if "probe" in p.name]
    model = build_model("pico", checkpoint=out / "pico-cont.pt")
    assert model.image_size == 256


@pytest.mark.parametrize("args, message", [
    (["--candidate", "a=wide"], "give NAME=EMBED[:INIT]"),
    (["--candidate", "a=32", "--probe-steps", "1"], "--probe-steps 1: time at least 2 steps"),
    (["--candidate", "a=32", "--set", "lr=fast"], "--set 'lr=fast'"),
])
def test_unusable_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    done = _run("--out", str(tmp_path / "runs"), "--minutes", "1", "--device", "cpu", *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing made for a run that did not start


def test_report_only_needs_run_records(tmp_path):
    done = _run("--out", str(tmp_path), "--report-only")
    assert done.returncode == 2 and "no run records" in done.stderr and not list(tmp_path.iterdir())
