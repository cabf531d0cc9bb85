"""Soak: a long generated stream through ``run_stream``'s pipeline, FIFO and SIS, with the
process's resident memory (RSS) every 500 frames.

The frames are rendered on the fly from one generated scene (objects move, scale, get
occluded, leave and come back) and never stored; each frame goes through the same pipeline
as ``run_stream`` (tracker, mask PNGs, overlay video, stats) into a temporary folder that is
removed afterwards. RSS (VmRSS) is sampled before frame 0 and then every ``--every`` frames,
and once more after the stream has ended; "growth" is the last sample minus the first
sample at or after ``--warmup`` frames. A bounded tracker shows a flat trace after warm-up.

    python benchmarks/stream_soak.py --frames 10000 --out out/bench/stream_soak.json
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from memory_growth import rss_mb  # noqa: E402

FRAME_HEIGHT, FRAME_WIDTH = 240, 320


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="frames between RSS samples")
    parser.add_argument("--warmup", type=int, default=500, help="frames before growth is counted")
    parser.add_argument("--policies", default="fifo,sis", help="memory bank policies, one stream each")
    parser.add_argument("--capacity", type=int, default=None, help="bank capacity (default: the tracker's, 6)")
    parser.add_argument("--model", default="pico")
    parser.add_argument("--seed", type=int, default=7101, help="the generated scene")
    parser.add_argument("--out", default="out/bench/stream_soak.json")
    return parser.parse_args(argv)


def generated_scene(seed: int):
    """A moving scene (background, objects) and its first frame's prompts, one per object."""
    from mixqsam2.data.synth import render, sample_video_scene, scene_rng
    from mixqsam2.memory.prompts import Prompt

    background, objects = sample_video_scene(scene_rng("videos", seed, 0), FRAME_HEIGHT, FRAME_WIDTH)
    _, labels = render(background, objects, 0.0)
    prompts = {o.label: Prompt(mask=labels == o.label) for o in objects if o.label and (labels == o.label).any()}
    return background, objects, prompts


def rendered_frames(background, objects, frames: int, every: int, samples: list):
    """Frames 0..frames-1 rendered one at a time; RSS is appended to ``samples`` as
    (frames done, MB) before every ``every``-th frame."""
    from mixqsam2.data.synth import render
    from mixqsam2.runtime.io import Frame

    for t in range(frames):
        if t % every == 0:
            samples.append((t, rss_mb()))
        yield Frame(f"{t:05d}", render(background, objects, float(t))[0])


def soak(model, policy: str, args) -> dict:
    """One stream of ``args.frames`` frames with ``policy``: RSS samples, growth and the stream's stats."""
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.runtime.io import FrameSource
    from mixqsam2.runtime.stream import run_stream

    gc.collect()
    background, objects, prompts = generated_scene(args.seed)
    samples: list[tuple[int, float]] = []
    frames = rendered_frames(background, objects, args.frames, args.every, samples)
    source = FrameSource(frames, args.frames, fps=24.0, description="generated stream")
    tracker = StreamingTracker(model, memory=policy, capacity=args.capacity)
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_stream(tracker, source, prompts, Path(tmp) / "out")
        samples.append((stats["frames"], rss_mb()))
    after_warmup = next(mb for done, mb in samples if done >= min(args.warmup, samples[-1][0]))
    return {
        "policy": policy, "capacity": stats["memory"]["capacity"], "objects": len(prompts),
        "frames": stats["frames"], "ended": stats["ended"], "fps": stats["fps"],
        "memory_bank_bytes": stats["memory_bank_bytes"],
        "rss_after_warmup_mb": after_warmup, "rss_last_mb": samples[-1][1],
        "growth_after_warmup_mb": samples[-1][1] - after_warmup,
        "rss_mb": [{"frames": done, "mb": round(mb, 1)} for done, mb in samples],
    }


def table(runs: list[dict]) -> str:
    """The summary per policy, then RSS (MB) per sample, one column per policy."""
    lines = ["| policy | capacity | frames | ended | fps | bank KiB | RSS after warm-up MB | RSS last MB | growth MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['policy']} | {r['capacity']} | {r['frames']} | {r['ended']} | {r['fps']:.1f} | "
                     f"{r['memory_bank_bytes'] / 1024:.0f} | {r['rss_after_warmup_mb']:.1f} | {r['rss_last_mb']:.1f} | "
                     f"{r['growth_after_warmup_mb']:+.1f} |")
    samples = [{s["frames"]: s["mb"] for s in r["rss_mb"]} for r in runs]
    lines += ["", "| frames done | " + " | ".join(f"{r['policy']} RSS MB" for r in runs) + " |",
              "|---" * (len(runs) + 1) + "|"]
    for done in sorted(set().union(*samples)):
        lines.append(f"| {done} | " + " | ".join(f"{s[done]:.1f}" if done in s else "" for s in samples) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import torch

    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model

    args = parse_args(argv)
    model = build_model(args.model)
    runs = []
    for policy in args.policies.split(","):
        runs.append(soak(model, policy, args))
        if runs[-1]["ended"] == "signal":  # stopped (Ctrl-C, SIGTERM): report what ran, start nothing more
            break
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.python_version()}",
              "model": args.model, "frames": args.frames, "every": args.every, "warmup": args.warmup,
              "seed": args.seed, "runs": runs}
    write_json_atomic(args.out, result)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
