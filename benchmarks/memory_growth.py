"""Resident memory of a long stream: our StreamingTracker vs sam2's SAM2VideoPredictor.

Both track the same generated video (first-frame mask prompt, pico model, FIFO with SAM2's
capacity). RSS is sampled every frame; "growth" is the RSS at the last frame minus the RSS
after warm-up (frame 100). The predictor also loads every frame before it starts, which is
reported separately ("rss_before_tracking_mb").

    python benchmarks/memory_growth.py --frames 2000 --out out/bench/memory_growth.json
    python benchmarks/memory_growth.py --frames 5000 --memory sis --capacity 3 --only-ours \
        --out out/bench/memory_growth_sis.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

WARMUP = 100


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run_ours(model, video, frames: int, memory: str, capacity: int | None) -> dict:
    from mixqsam2.memory.prompts import Prompt, prompt_then_track
    from mixqsam2.memory.tracker import StreamingTracker

    tracker = StreamingTracker(model, memory=memory, capacity=capacity)
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    before = rss_mb()
    trace = []
    start = time.perf_counter()
    for _ in prompt_then_track(tracker, tqdm(video.frames(), total=frames, desc="ours"), prompts):
        trace.append(rss_mb())
    return {
        "rss_before_tracking_mb": before,
        "trace_mb": trace,
        "memory_bank_bytes": tracker.memory_bytes(),
        "load_seconds": 0.0,  # frames are read inside the loop
        "tracking_seconds": time.perf_counter() - start,
    }


def run_sam2(model, video, frames: int) -> dict:
    import torch

    start_mb, start = rss_mb(), time.perf_counter()
    state = model.init_state(str(video.frame_paths[0].parent))
    before, loaded = rss_mb(), time.perf_counter()
    trace = []
    with torch.inference_mode():
        for obj_id, mask in video.prompt_masks().items():
            model.add_new_mask(state, 0, obj_id, mask)
        for _ in tqdm(model.propagate_in_video(state), total=frames, desc="sam2"):
            trace.append(rss_mb())
    return {
        "rss_at_start_mb": start_mb,
        "rss_before_tracking_mb": before,
        "trace_mb": trace,
        "load_seconds": loaded - start,
        "tracking_seconds": time.perf_counter() - loaded,
    }


def summarize(run: dict) -> dict:
    trace = run.pop("trace_mb")
    run["rss_after_warmup_mb"] = trace[WARMUP]
    run["rss_last_frame_mb"] = trace[-1]
    run["growth_after_warmup_mb"] = trace[-1] - trace[WARMUP]
    run["rss_every_250_frames_mb"] = [round(x, 1) for x in trace[::250]]
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7001)
    parser.add_argument("--memory", default="fifo", help="our tracker's bank policy (fifo, sis, sis-pair)")
    parser.add_argument("--capacity", type=int, default=None, help="our tracker's bank capacity (default 6)")
    parser.add_argument("--only-ours", action="store_true", help="skip sam2's predictor (it loads every frame)")
    parser.add_argument("--out", default="out/bench/memory_growth.json")
    args = parser.parse_args()

    import torch

    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.data.synth import write_video_set
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        write_video_set(Path(tmp) / "v", num=1, frames=args.frames, seed=args.seed)
        video = open_video_set(Path(tmp) / "v")[0]
        model = build_model("pico")
        result = {
            "frames": args.frames,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {platform.python_version()}",
            "memory": {"policy": args.memory, "capacity": args.capacity},
            "ours": summarize(run_ours(model, video, args.frames, args.memory, args.capacity)),
        }
        if not args.only_ours:
            gc.collect()
            result["sam2_video_predictor"] = summarize(run_sam2(model, video, args.frames))
    write_json_atomic(args.out, result)
    print(f"{'tracker':<22}{'RSS@warm-up MB':>16}{'RSS@last MB':>14}{'growth MB':>12}{'load+track s':>14}")
    for name in ("ours", "sam2_video_predictor"):
        if name not in result:
            continue
        r = result[name]
        seconds = r["load_seconds"] + r["tracking_seconds"]
        print(
            f"{name:<22}{r['rss_after_warmup_mb']:>16.1f}{r['rss_last_frame_mb']:>14.1f}"
            f"{r['growth_after_warmup_mb']:>12.1f}{seconds:>14.1f}"
        )
    print(json.dumps({k: result[k] for k in ("frames", "machine", "memory")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
