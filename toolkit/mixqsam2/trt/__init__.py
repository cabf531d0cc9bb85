"""TensorRT: builder configurations from an export + plan, engine builds, and the engine runtime.

``config`` turns an export folder (:class:`~mixqsam2.export.manifest.ExportManifest`) into
one build configuration per engine for a TensorRT version (typing mode, flags, profiles,
per-layer precision) without TensorRT; ``build`` builds the engines; ``runtime`` runs them.
Nothing here imports tensorrt or cuda-python at package import: ``build`` and ``runtime``
import them when they are first used.
"""
