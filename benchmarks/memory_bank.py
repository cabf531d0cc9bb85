"""J&F against memory-bank capacity: SAM2's FIFO, the paper's SIS and ours (sis-pair).

Held-out generated long videos (default 12 x 200 frames, seed 9002: never used in training;
moving targets, occluders, look-alikes, targets that leave and come back), first-frame mask
prompts, pico. For every policy and capacity K: J, F, J&F, peak memory-bank bytes and the
memory-attention time per frame relative to FIFO at K=6 measured in the same run.
Results are written after every configuration; a rerun skips the finished ones.

    python benchmarks/memory_bank.py --out out/bench/memory_bank.json --plot out/bench/memory_bank.png
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

BASELINE = ("fifo", 6)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pico")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=9002)
    parser.add_argument("--data", default=None, help="existing DAVIS-layout set (default: generate one)")
    parser.add_argument("--policies", default="fifo,sis,sis-pair")
    parser.add_argument("--capacities", default="2,3,4,6")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="out/bench/memory_bank.json")
    parser.add_argument("--plot", default="out/bench/memory_bank.png")
    return parser.parse_args(argv)


def video_set(args) -> Path:
    from mixqsam2.data.synth import write_video_set

    if args.data:
        return Path(args.data)
    path = Path(args.out).parent / f"videos-{args.videos}x{args.frames}-seed{args.seed}"
    if not path.is_dir():
        write_video_set(path, num=args.videos, frames=args.frames, seed=args.seed)
    return path


def table(runs: dict) -> str:
    base = runs.get(f"{BASELINE[0]}@{BASELINE[1]}")
    lines = [f"{'policy':<10}{'K':>3}{'J&F':>8}{'J':>8}{'F':>8}{'bank KB':>10}{'mem-attn ms':>13}{'vs fifo@6':>11}"]
    for key, r in runs.items():
        attn = r["latency_ms"].get("memory_attention", float("nan"))
        ratio = attn / base["latency_ms"]["memory_attention"] if base else float("nan")
        lines.append(f"{r['memory']:<10}{r['capacity']:>3}{r['JF']:>8.4f}{r['J']:>8.4f}{r['F']:>8.4f}"
                     f"{r['memory_bank_bytes'] / 1024:>10.1f}{attn:>13.2f}{ratio:>11.2f}")
    return "\n".join(lines)


def plot(runs: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixqsam2.fileio import write_figure_atomic

    base = runs[f"{BASELINE[0]}@{BASELINE[1]}"]["latency_ms"]["memory_attention"]
    fig, (ax_jf, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    for policy in dict.fromkeys(r["memory"] for r in runs.values()):
        rows = sorted((r for r in runs.values() if r["memory"] == policy), key=lambda r: r["capacity"])
        ks = [r["capacity"] for r in rows]
        ax_jf.plot(ks, [r["JF"] for r in rows], marker="o", label=policy)
        ax_t.plot(ks, [r["latency_ms"]["memory_attention"] / base for r in rows], marker="o", label=policy)
    ax_jf.set(xlabel="memory-bank capacity K", ylabel="J&F", title="J&F vs. capacity (held-out long videos)")
    ax_t.set(xlabel="memory-bank capacity K", ylabel="memory-attention time / FIFO K=6", title="attention cost")
    for ax in (ax_jf, ax_t):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.eval.videos import evaluate_videos
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    videos = open_video_set(video_set(args))
    model = build_model(args.model, args.checkpoint)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result.update({
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, python {platform.python_version()}",
        "videos": len(videos), "frames": args.frames, "seed": args.seed, "model": args.model,
    })
    runs = result.setdefault("runs", {})
    configs = [(p, int(k)) for p in args.policies.split(",") for k in args.capacities.split(",")]
    for policy, capacity in [BASELINE, *[c for c in configs if c != BASELINE]]:
        key = f"{policy}@{capacity}"
        if key in runs:
            continue
        r = evaluate_videos(model, videos, memory=policy, capacity=capacity)
        r.pop("per_video")
        runs[key] = r
        write_json_atomic(out, result)
        print(f"{key}: J&F {r['JF']:.4f}", flush=True)
    print(table(runs))
    plot(runs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
