"""The per-frame streaming pipeline behind ``run_stream``: frames in, masks + overlay out.

Output folder (written atomically: it appears only when the stream completes):
``masks/<frame>.png`` (0/255, input resolution; ``masks/<obj_id>/<frame>.png`` when several
objects are tracked), ``overlay.mp4`` and ``stats.json`` with ``frames``, ``fps``,
``latency_ms`` (per stage and total, mean per frame) and ``memory_bank_bytes`` (peak).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from mixqsam2.data.formats import write_mask_png
from mixqsam2.fileio import atomic_output_dir, write_json_atomic
from mixqsam2.memory.prompts import Prompt
from mixqsam2.runtime.io import FrameSource, OverlayVideo, overlay


def run_stream(tracker, source: FrameSource, prompts: dict[int, Prompt], out_dir: str | Path) -> dict:
    """Track ``prompts`` (applied to the first frame) through ``source`` into ``out_dir``."""
    with atomic_output_dir(out_dir) as tmp:
        mask_dirs = {k: tmp / "masks" / (str(k) if len(prompts) > 1 else "") for k in prompts}
        for folder in mask_dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        video = OverlayVideo(tmp / "overlay.mp4", source.fps, source.frame_size)
        frames, start = 0, time.perf_counter()
        try:
            for name, rgb in tqdm(source, total=source.num_frames, desc="run_stream", unit="frame"):
                result = tracker.step(rgb, prompts if frames == 0 else None)
                for obj_id, mask in result.masks.items():
                    write_mask_png(mask_dirs[obj_id] / f"{name}.png", mask)
                video.write(overlay(rgb, result.masks))
                frames += 1
        finally:
            video.close()
        elapsed = time.perf_counter() - start
        stats = {
            "frames": frames,
            "fps": frames / elapsed,
            "latency_ms": {
                "total": 1000 * elapsed / frames,
                **tracker.stage_ms_per_frame(),
            },
            "memory_bank_bytes": tracker.peak_memory_bytes,
            "memory": {"policy": tracker.policy.name, "capacity": tracker.capacity},
            "objects": sorted(prompts),
        }
        write_json_atomic(tmp / "stats.json", stats)
    return stats
