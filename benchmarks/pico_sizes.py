"""The cost side of choosing pico's size (issue 13): parameters and CPU ms per frame of pico
variants, wider trunks and larger inputs, measured side by side in one process.

Each variant is pico's config with hydra overrides (trunk width ``embed`` with its channel
list, input size ``size`` with the RoPE feature sizes that follow from it), random seeded
weights (the cost does not depend on them). Each tracks the same generated clip (one object,
FIFO at 6) through the ``StreamingTracker``; the variants take turns frame block by frame
block, so machine noise hits them alike, and the per-frame time is the median over blocks.
The quality side needs a trained model per variant.

    OMP_NUM_THREADS=1 python benchmarks/pico_sizes.py --out out/bench/pico_sizes.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

VARIANTS = ((32, 256), (48, 256), (64, 256), (32, 384), (48, 384), (32, 512))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="frames per variant and block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--out", default="out/bench/pico_sizes.json")
    return parser.parse_args(argv)


def clip(frames: int):
    """A generated 240x320 clip and its first frame's prompt (one object)."""
    from mixqsam2.data.synth import render, sample_video_scene, scene_rng
    from mixqsam2.memory.prompts import Prompt

    background, objects = sample_video_scene(scene_rng("videos", 4242, 0), 240, 320)
    rendered = [render(background, objects, float(t)) for t in range(frames)]
    label = next(o.label for o in objects if o.label and (rendered[0][1] == o.label).any())
    return [rgb for rgb, _ in rendered], {1: Prompt(mask=rendered[0][1] == label)}


def main(argv=None) -> int:
    import torch

    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.models import build_pico_variant

    args = parse_args(argv)
    frames, prompts = clip(args.frames)
    models = {(e, s): build_pico_variant(e, s) for e, s in VARIANTS}
    per_block = {key: [] for key in models}
    for _ in range(args.blocks):
        for key, model in models.items():
            tracker = StreamingTracker(model, fill_holes=False)
            tracker.step(frames[0], prompts)
            start = time.perf_counter()
            for rgb in frames[1:]:
                tracker.step(rgb)
            per_block[key].append(1000 * (time.perf_counter() - start) / (len(frames) - 1))
    base = statistics.median(per_block[VARIANTS[0]])
    rows = []
    for (embed, size), model in models.items():
        ms = statistics.median(per_block[(embed, size)])
        params = sum(p.numel() for p in model.parameters())
        rows.append({"embed": embed, "size": size, "params_m": params / 1e6, "fp16_mb": params * 2 / 2**20,
                     "ms_per_frame": ms, "vs_pico": ms / base, "blocks_ms": per_block[(embed, size)]})
    write_json_atomic(args.out, {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                                 "frames": args.frames, "blocks": args.blocks, "variants": rows})
    print("| trunk embed | input px | params (M) | fp16 MB | ms/frame (1 object) | vs pico |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['embed']} | {r['size']} | {r['params_m']:.2f} | {r['fp16_mb']:.1f} | {r['ms_per_frame']:.1f} | "
              f"{r['vs_pico']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
