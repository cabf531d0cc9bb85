"""Where and why a small merged bank loses a track that SAM2's FIFO at 6 keeps (issue 14).

Takes a ``benchmarks/memory_bank.py`` result (same videos, same checkpoint), picks the working
tracks (FIFO@6 J&F >= 0.5) that ``--policy`` (default ``sis@3``) loses most on, and replays
those videos with FIFO@6 and the policy side by side (the same tracker and prompts as the
benchmark, so the same masks), recording per frame and object: the mask IoU with the ground
truth (every frame, first and last included, unlike J; 1 where the object is absent and
nothing is predicted), the object-score logit (> 0: the model says the object is there), and
the bank that made the frame's mask (slots held, each slot's age = now - its temporal
position, how many frames it stands for, and its object score). The *divergence frame* is the
first frame from which the policy's IoU stays 0.2+ below FIFO@6's for 10 frames. The videos
must be annotated on every frame (generated ones are).

Out: JSON (per object: both IoU curves, the bank at every frame, the divergence frame), a
Markdown table, and a figure: IoU over time with the bank's slots below it, and at the
divergence frame the frame itself, both masks, and every bank slot's memory features (the
first three principal components of the slot tokens as RGB, fitted on the whole bank), so a
merged slot can be seen next to raw ones.

    python benchmarks/merge_anatomy.py --memory-bank out/bench/memory_bank_v1b.json \\
        --out out/bench/merge_anatomy.json --figure benchmarks/figures/merge_anatomy.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from memory_bank import BASELINE, split, strata  # noqa: E402  (the benchmark whose result this reads)

GAP, HOLD = 0.2, 10  # the policy is this much below FIFO@6's IoU for this many frames in a row


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-bank", required=True, help="memory_bank.py result with fifo@6 and --policy")
    parser.add_argument("--policy", default="sis@3")
    parser.add_argument("--count", type=int, default=4, help="tracks to replay")
    parser.add_argument("--data", default=None, help="the memory-bank run's data cache (default: next to its JSON)")
    parser.add_argument("--out", default="out/bench/merge_anatomy.json")
    parser.add_argument("--figure", default="benchmarks/figures/merge_anatomy.png")
    return parser.parse_args(argv)


def worst_working(result: dict, policy: str, count: int) -> list[str]:
    """The working tracks (FIFO@6 J&F >= 0.5) with the largest FIFO@6 - policy J&F.

    >>> runs = {"fifo@6": {"per_object": {"a#1": .9, "b#1": .8, "c#1": .2}}, "sis@3": {"per_object": {"a#1": .85, "b#1": .3, "c#1": .1}}}
    >>> worst_working({"runs": runs}, "sis@3", 1)
    ['b#1']
    """
    from mixqsam2.errors import UserInputError

    if policy not in result["runs"] or BASELINE not in result["runs"]:
        raise UserInputError(f"the memory-bank result has runs {', '.join(result['runs'])}; it needs {BASELINE} and {policy}")
    base, other = result["runs"][BASELINE]["per_object"], result["runs"][policy]["per_object"]
    return sorted(strata(base)["working"], key=lambda unit: other[unit] - base[unit])[:count]


def divergence(reference: list[float], other: list[float]) -> int | None:
    """First frame from which ``other`` stays GAP+ below ``reference`` for HOLD frames.

    >>> divergence([1.0] * 20, [1.0] * 5 + [0.5] * 15)
    5
    """
    below = np.asarray(other) < np.asarray(reference) - GAP
    for start in range(len(below) - HOLD + 1):
        if below[start : start + HOLD].all():
            return start
    return None


def replay(model, video, key: str, objects: list[int]) -> dict:
    """Per object and frame: the IoU, and the bank that made the mask (ages, counts, features):
    the one the previous frame left."""
    from mixqsam2.eval.metrics import mask_iou
    from mixqsam2.memory.prompts import Prompt, prompt_then_track
    from mixqsam2.memory.tracker import StreamingTracker

    policy, k, pool = split(key)
    tracker = StreamingTracker(model, memory=policy, capacity=k, num_frames=len(video.frame_paths), memory_pool=pool)
    prompts = {obj: Prompt(mask=m) for obj, m in video.prompt_masks().items()}
    trace = {obj: {"iou": [], "score": [], "present": [], "ages": [], "counts": [], "slot_scores": [], "masks": [],
                   "features": []} for obj in objects}
    banks = {obj: None for obj in objects}  # what the previous frame left (None: before the prompt)
    for name, result in zip(video.frame_names, prompt_then_track(tracker, video.frames(), prompts)):
        truth = video.annotation(name)
        for obj in objects:
            mask, record, bank = result.masks[obj], trace[obj], banks[obj]
            held = bank.valid if bank is not None else np.zeros(0, bool)
            record["iou"].append(mask_iou(mask, truth.get(obj, np.zeros_like(mask))))
            record["score"].append(float(result.object_scores[obj]))
            record["present"].append(bool(truth.get(obj, np.zeros(1, bool)).any()))
            record["ages"].append((tracker.frame_idx - bank.positions[held]).tolist() if bank is not None else [])
            record["counts"].append(bank.counts[held].tolist() if bank is not None else [])
            record["slot_scores"].append(bank.scores[held].tolist() if bank is not None else [])
            record["masks"].append(mask)
            record["features"].append(bank.features[held].copy() if bank is not None else None)
            banks[obj] = tracker.objects[obj].bank
    return trace


def analyse(model, videos: dict, units: list[str], policy: str) -> dict:
    """Both configurations' traces of every unit, and the divergence frame with the bank there."""
    out = {}
    for unit in units:
        name, obj = unit.rsplit("#", 1)
        traces = {key: replay(model, videos[name], key, [int(obj)])[int(obj)] for key in (BASELINE, policy)}
        start = divergence(traces[BASELINE]["iou"], traces[policy]["iou"])
        gaps = np.asarray(traces[policy]["iou"]) - traces[BASELINE]["iou"]
        at = start if start is not None else 1 + int(np.argmin(gaps[1:]))  # frame 0 is the prompt: no bank
        out[unit] = {"traces": traces, "divergence": start, "shown_frame": at,
                     "bank_at_divergence": {"ages": traces[policy]["ages"][at], "counts": traces[policy]["counts"][at]}}
    return out


def table(anatomy: dict, policy: str) -> str:
    lines = [f"| track | mean IoU {BASELINE} | mean IoU {policy} | largest IoU gap | divergence frame | "
             f"{policy} bank there: age (frames merged) | frames with a merged slot | mean slots held |",
             "|---|---|---|---|---|---|---|---|"]
    for unit, row in anatomy.items():
        base, other = row["traces"][BASELINE], row["traces"][policy]
        bank = row["bank_at_divergence"]
        slots = ", ".join(f"{age:.0f} ({count:.0f})" for age, count in sorted(zip(bank["ages"], bank["counts"])))
        merged = np.mean([max(c, default=1) > 1 for c in other["counts"]])
        gap = np.max(np.asarray(base["iou"]) - other["iou"])
        lines.append(f"| {unit} | {np.mean(base['iou']):.3f} | {np.mean(other['iou']):.3f} | {gap:.2f} | {row['divergence']} | "
                     f"{slots} | {merged:.0%} | {np.mean([len(c) for c in other['counts'][1:]]):.2f} |")
    lines += ["", f"| track (frames after the prompt) | frames object absent | ... {BASELINE} says present | ... {policy} says present | "
              f"{policy}'s bank there: mean slot score | frames object present | ... {BASELINE} says absent | "
              f"... {policy} says absent |", "|---|---|---|---|---|---|---|---|"]
    for unit, row in anatomy.items():
        base, other = row["traces"][BASELINE], row["traces"][policy]
        present = np.asarray(other["present"])[1:]  # after the prompt frame (a mask prompt's score)
        absent = 1 + np.flatnonzero(~present)
        says = {key: np.asarray(trace["score"][1:]) > 0 for key, trace in row["traces"].items()}
        slot_score = np.mean([np.mean(other["slot_scores"][t]) for t in absent if other["slot_scores"][t]] or [np.nan])
        lines.append(f"| {unit} | {absent.size} | {says[BASELINE][~present].sum()} | {says[policy][~present].sum()} | "
                     f"{slot_score:+.1f} | {present.sum()} | {(~says[BASELINE][present]).sum()} | "
                     f"{(~says[policy][present]).sum()} |")
    return "\n".join(lines) + "\n"


def pca_rgb(slots: np.ndarray, side: int) -> np.ndarray:
    """Slot features [S, HW, C] -> [S, side, side, 3] in [0, 1]: the bank's first 3 principal components."""
    tokens = slots.reshape(-1, slots.shape[-1]).astype(np.float64)
    tokens = tokens - tokens.mean(0)
    _, _, basis = np.linalg.svd(tokens, full_matrices=False)
    projected = tokens @ basis[:3].T
    low, high = np.percentile(projected, [2, 98], axis=0)
    return np.clip((projected - low) / np.maximum(high - low, 1e-9), 0, 1).reshape(slots.shape[0], side, side, 3)


def plot(anatomy: dict, videos: dict, policy: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixqsam2.data.loaders import read_rgb

    rows = len(anatomy)
    fig = plt.figure(figsize=(16, 3.2 * rows))
    grid = fig.add_gridspec(rows, 10)
    for r, (unit, row) in enumerate(anatomy.items()):
        base, other, at = row["traces"][BASELINE], row["traces"][policy], row["shown_frame"]
        ax = fig.add_subplot(grid[r, :4])
        ax.plot(base["iou"], label=BASELINE, color="tab:blue")
        ax.plot(other["iou"], label=policy, color="tab:red")
        merged = [i for i, c in enumerate(other["counts"]) if max(c, default=1) > 1]
        ax.scatter(merged, [-0.05] * len(merged), s=2, color="tab:red", label=f"{policy} holds a merged slot")
        ax.axvline(at, color="k", lw=0.8, ls="--")
        ax.set(ylim=(-0.1, 1.05), xlabel="frame", ylabel="IoU", title=unit)
        ax.legend(fontsize=7, loc="lower left")
        name, obj = unit.rsplit("#", 1)
        frame = read_rgb(videos[name].frame_paths[at])
        for c, (label, trace) in enumerate(((BASELINE, base), (policy, other))):
            tile = fig.add_subplot(grid[r, 4 + c])
            tile.imshow(frame)
            tile.contour(trace["masks"][at], levels=[0.5], colors=["lime"], linewidths=0.8)
            tile.contour(videos[name].annotation(videos[name].frame_names[at]).get(int(obj), np.zeros(frame.shape[:2])),
                         levels=[0.5], colors=["red"], linewidths=0.8)
            tile.set_title(f"{label}, frame {at}", fontsize=8)
            tile.axis("off")
        features = other["features"][at]
        if features is None or not len(features):  # the bank was still empty
            continue
        side = int(round(np.sqrt(features.shape[1])))
        for s, (image, age, count) in enumerate(zip(pca_rgb(features, side), other["ages"][at], other["counts"][at])):
            tile = fig.add_subplot(grid[r, 6 + s]) if s < 4 else None
            if tile is not None:
                tile.imshow(image, interpolation="nearest")
                tile.set_title(f"slot: age {age:.0f}, {count:.0f} frame{'s' if count > 1 else ''}", fontsize=8)
                tile.axis("off")
    fig.suptitle(f"{policy} vs {BASELINE} on working tracks it loses (GT red, prediction green; "
                 "right: the bank's memory features, first 3 principal components)", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(anatomy_run, parse_args(argv))


def anatomy_run(args) -> int:
    import torch

    import memory_bank
    from mixqsam2.fileio import read_json, write_bytes_atomic, write_json_atomic
    from mixqsam2.models import build_model

    torch.set_num_threads(1)
    result = read_json(Path(args.memory_bank), f"{args.memory_bank} not found")
    spec = result["spec"]
    bank_args = argparse.Namespace(videos=spec["videos_per_set"], frames=spec["frames"], first_seed=spec["seeds"][0],
                                   seeds=len(spec["seeds"]), data=args.data, out=args.memory_bank)
    videos = {video.name: video for video in memory_bank.load_videos(bank_args)}
    model = build_model("pico", spec["checkpoint"])
    anatomy = analyse(model, videos, worst_working(result, args.policy, args.count), args.policy)
    markdown = table(anatomy, args.policy)
    plot(anatomy, videos, args.policy, args.figure)
    summary = {unit: {"divergence": row["divergence"], "bank_at_divergence": row["bank_at_divergence"],
                      **{f"iou_{key}": trace["iou"] for key, trace in row["traces"].items()},
                      **{f"score_{key}": trace["score"] for key, trace in row["traces"].items()},
                      "present": row["traces"][BASELINE]["present"],
                      **{f"bank_{key}": {"ages": trace["ages"], "counts": trace["counts"], "scores": trace["slot_scores"]}
                         for key, trace in row["traces"].items()}}
               for unit, row in anatomy.items()}
    write_json_atomic(Path(args.out), {"memory_bank": args.memory_bank, "policy": args.policy, "tracks": summary,
                                       "table": markdown})
    write_bytes_atomic(Path(args.out).with_suffix(".md"), markdown.encode())
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
