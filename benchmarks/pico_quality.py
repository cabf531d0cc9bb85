"""Quality of the shipped pico checkpoint on freshly generated held-out data.

Images: box mIoU with GT-box prompts (seed 9001, never used in training; training draws
its scenes from ``(seed, step)`` streams) and the fill-the-box floor. Videos: J&F with a
first-frame mask prompt on 12 videos x 64 frames (seed 9003) with occluders, look-alikes and
targets that leave and come back; frames per second of the torch tracker on this CPU.

    python benchmarks/pico_quality.py --out out/bench/pico_quality.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped pico checkpoint")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--out", default="out/bench/pico_quality.json")
    args = parser.parse_args(argv)

    import torch

    from mixqsam2.data.loaders import CocoImages, open_video_set
    from mixqsam2.data.synth import cached_set
    from mixqsam2.eval.images import evaluate_images
    from mixqsam2.eval.videos import evaluate_videos
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model

    root = Path(args.out).parent / "data"
    images_dir = cached_set(root, "images", num=args.images, seed=9001)
    videos_dir = cached_set(root, "videos", num=args.videos, frames=args.frames, seed=9003)
    model = build_model("pico", args.checkpoint)
    images = evaluate_images(model, CocoImages.from_dir(images_dir))
    start = time.perf_counter()
    videos = evaluate_videos(model, open_video_set(videos_dir))
    seconds = time.perf_counter() - start
    frames = args.videos * args.frames
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, python {platform.python_version()}",
        "images": {k: images[k] for k in ("miou", "box_fill_miou", "instances")},
        "videos": {k: videos[k] for k in ("J", "F", "JF", "objects", "latency_ms")},
        "tracker_fps": frames / seconds,
        "objects_per_frame": videos["objects"] / args.videos,
    }
    write_json_atomic(args.out, result)
    print(f"box mIoU {images['miou']:.4f} (fill-the-box {images['box_fill_miou']:.4f}, {images['instances']} instances)")
    print(f"video J&F {videos['JF']:.4f} (J {videos['J']:.4f}, F {videos['F']:.4f}, {videos['objects']} objects)")
    print(f"tracker {result['tracker_fps']:.1f} frames/s ({result['objects_per_frame']:.2f} objects per frame)")
    print(json.dumps({"machine": result["machine"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
