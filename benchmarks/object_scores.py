"""How a pico checkpoint's object score decides, on held-out videos: present targets scored
absent, absent ones scored absent, and whether a track scored absent ever comes back.

sam2 shows an object only where its object score is > 0, and a frame scored absent writes a
"no object" memory. Each video streams through the tracker (first-frame mask prompt, FIFO at
6) and every (frame, object) pair after the prompt with ground truth is counted: "missed" is a
present target scored <= 0, "recoveries" the times a missed target is scored present again on
the next frame, "longest miss" the longest run of consecutive missed frames of one object.

    python benchmarks/object_scores.py --checkpoint v2=toolkit/mixqsam2/models/weights/pico.pt \\
        --checkpoint mine=out/train/mine.pt --out out/bench/object_scores.json
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser, distinct_names, named_file, positive_int

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=named_file, action="append", metavar="NAME=PATH", required=True)
    parser.add_argument("--videos", type=positive_int, default=6, help="held-out videos per seed")
    parser.add_argument("--frames", type=positive_int, default=120)
    parser.add_argument("--video-seeds", type=int, nargs="+", default=[9003, 9004])
    parser.add_argument("--data", help="where the held-out sets are made once and kept (default: data/ beside --out, "
                                       "as pico_quality.py keeps them)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    args.checkpoint = distinct_names(parser, args.checkpoint, "--checkpoint")
    return args


def object_traces(model, video) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per prompted object, (object scores, target present) over the annotated frames after the
    prompt, tracked as ``pico_quality`` tracks (``mixqsam2.eval.videos``: FIFO at the model's
    default capacity, 6 for pico)."""
    from mixqsam2.eval.videos import prompted_stream
    from mixqsam2.memory.tracker import StreamingTracker, default_capacity

    tracker = StreamingTracker(model, memory="fifo", capacity=default_capacity(model), num_frames=len(video.frame_paths))
    prompts, results = prompted_stream(tracker, video)
    traces = {k: ([], []) for k in prompts}
    for name, result in islice(results, 1, None):  # after the prompt frame
        truth = video.annotation(name)
        if truth is None:
            continue
        for obj, (scores, present) in traces.items():
            scores.append(result.object_scores[obj])
            present.append(obj in truth and bool(truth[obj].any()))
    return [(np.array(s, float), np.array(p, bool)) for s, p in traces.values()]


def summary(traces: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Counts over all objects' traces (see the module's docstring).

    >>> summary([(np.array([2.0, -0.03, -0.02, 1.0, -1.0]), np.array([True, True, True, True, False]))])
    {'present': 4, 'missed': 2, 'absent': 1, 'scored_absent_when_absent': 1, 'missed_score_median': -0.025, 'recoveries': 1, 'longest_miss': 2}
    """
    present = sum(int(p.sum()) for _, p in traces)
    missed_scores = np.concatenate([s[p & (s <= 0)] for s, p in traces]) if traces else np.array([])
    missed = [p & (s <= 0) for s, p in traces]
    return {
        "present": present, "missed": int(missed_scores.size),
        "absent": sum(int((~p).sum()) for _, p in traces),
        "scored_absent_when_absent": sum(int(((~p) & (s <= 0)).sum()) for s, p in traces),
        "missed_score_median": float(np.median(missed_scores)) if missed_scores.size else None,
        "recoveries": sum(int((m[:-1] & (s[1:] > 0)).sum()) for m, (s, _) in zip(missed, traces)),
        "longest_miss": max((_longest_run(m) for m in missed), default=0),
    }


def _longest_run(flags: np.ndarray) -> int:
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]]))))[::2]
    return int(runs.max()) if runs.size else 0


def table(results: dict) -> str:
    lines = ["| checkpoint | present targets scored absent | absent targets scored absent | score when missed (median) | "
             "recoveries | longest miss (frames) |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        median = "-" if r["missed_score_median"] is None else f"{r['missed_score_median']:+.3f}"
        lines.append(f"| {name} | {r['missed']}/{r['present']} ({r['missed'] / max(1, r['present']):.1%}) | "
                     f"{r['scored_absent_when_absent']}/{r['absent']} ({r['scored_absent_when_absent'] / max(1, r['absent']):.1%}) | "
                     f"{median} | {r['recoveries']} | {r['longest_miss']} |")
    return "\n".join(lines) + "\n"


def scores_run(args) -> int:
    from tqdm import tqdm

    from mixqsam2.data.heldout import cached_heldout_set
    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.fileio import check_output_file, write_json_atomic
    from mixqsam2.models import build_model

    check_output_file(args.out)
    data = Path(args.data) if args.data else Path(args.out).parent / "data"
    folders = [cached_heldout_set(data, "videos", num=args.videos, frames=args.frames, seed=seed)
               for seed in args.video_seeds]
    videos = [v for folder in folders for v in open_video_set(folder)]
    results = {}
    for name, path in args.checkpoint.items():
        model = build_model("pico", path)
        traces = [t for video in tqdm(videos, desc=name, unit="video") for t in object_traces(model, video)]
        results[name] = summary(traces)
    write_json_atomic(args.out, {"checkpoints": args.checkpoint, "data": [f.name for f in folders], "results": results})
    print(table(results))
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(scores_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
