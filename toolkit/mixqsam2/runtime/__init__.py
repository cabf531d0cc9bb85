"""Runtime: frame sources (folder, video file, camera), the per-frame streaming pipeline,
mask/overlay outputs, and the backends that run the five graphs: ``torch`` (sam2's modules),
``ort`` (an export on ONNX Runtime) and ``trt`` (TensorRT engines)."""
