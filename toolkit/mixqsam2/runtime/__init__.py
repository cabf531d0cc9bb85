"""Runtime: frame sources (folder, video file, camera), the per-frame streaming pipeline,
mask/overlay outputs. Backends: ``torch`` (sam2 modules) now; ``ort``/``trt`` follow the
export and TensorRT stages."""
