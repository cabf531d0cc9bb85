"""`import mixqsam2` and the Jetson-side modules must not pull torch, sam2 or TensorRT."""

import subprocess
import sys

LIGHT_MODULES = [
    "mixqsam2",
    "mixqsam2.models",
    "mixqsam2.models.preprocess",
    "mixqsam2.memory",
    "mixqsam2.data.formats",
    "mixqsam2.data.loaders",
    "mixqsam2.runtime.io",
    "mixqsam2.eval.metrics",
    "mixqsam2.cli.main",
    "mixqsam2.cli.run_stream",
]


def test_light_imports_pull_no_heavy_dependency():
    code = (
        f"import sys\nfor m in {LIGHT_MODULES!r}: __import__(m)\n"
        "heavy = sorted(m for m in ('torch', 'sam2', 'tensorrt', 'pycuda') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
