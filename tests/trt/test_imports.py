"""The export manifest reader, mixqsam2.trt and the trt backend import neither TensorRT nor cuda-python
(nor torch, nor onnx) until an engine is built or run."""

import subprocess
import sys

MODULES = ["mixqsam2.export.manifest", "mixqsam2.trt", "mixqsam2.trt.config", "mixqsam2.trt.build",
           "mixqsam2.trt.runtime", "mixqsam2.trt.cuda", "mixqsam2.runtime.trt_backend"]


def test_trt_modules_import_no_heavy_dependency():
    code = (f"import sys\nfor m in {MODULES!r}: __import__(m)\n"
            "print(','.join(sorted(m for m in ('tensorrt', 'cuda', 'pycuda', 'torch', 'onnx') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
