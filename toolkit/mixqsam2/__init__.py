"""mixqsam2: SAM2 on the edge (mixed-precision calibration + SIS memory synthesis).

Importing the package is cheap: it imports none of torch, sam2, tensorrt or pycuda, so
the Jetson runtime path (ONNX Runtime / TensorRT backends, NumPy memory bank) works on a
device that has neither torch nor sam2 installed. Each stage is a subpackage:
``models, data, memory, runtime, eval, cli``.
"""

__version__ = "0.1.0"
