"""Train pico candidates side by side on one lent GPU within a wall-time budget (issue 13).

Each candidate is a training run (``mixqsam2.train.loop.train``) in its own process, all on
the same GPU at once, each with its own batch-making worker processes. The schedule length
(``steps``, which sets the learning-rate decay) is sized to the budget: every run first
times a probe of ``--probe-steps`` steps (or as many as a quarter of the budget allows) under
the same contention (all candidates probing together; the probe's checkpoint goes to a
temporary folder) and then trains ``steps = 0.9 * time left / seconds per step``; ``minutes``
stops it at the budget in any case, saving the checkpoint. Writes per candidate
``OUT/NAME.pt`` (sam2 format, fp16), ``OUT/NAME.pt.curve.png`` and ``OUT/NAME.json`` (config,
probe rate, history, seconds), then ``OUT/runs.png`` (every run's IoU curve) and
``OUT/runs.md`` (a table); ``--report-only`` writes those two again from the JSON files.

    python benchmarks/gpu_train.py --out out/gpu_train --minutes 8 --workers 3 \
        --candidate w32-pico=32:toolkit/mixqsam2/models/weights/pico.pt --candidate w48=48

The candidates' recipe is ``--preset`` (v2 by default) at ``--video-batch``/``--image-batch``,
with ``--set FIELD=VALUE`` overriding any numeric ``TrainConfig`` field for every candidate
(e.g. the best CPU-measured options: ``--set recolor=0.7 --set small_objects=0.5 --set
image_encoder_lr_scale=0.3``); a candidate without initial weights starts with
``--fresh-image-only`` of image-only steps at ``--fresh-lr``, as pico v1 did.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME=EMBED[:INIT]",
                        help="a run: its name, pico trunk width and optional initial checkpoint")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, help="wall-time budget of every run, probe included")
    parser.add_argument("--report-only", action="store_true", help="only the table and figure of OUT's runs")
    parser.add_argument("--preset", default="v2")
    parser.add_argument("--workers", type=int, default=3, help="batch-making processes per run")
    parser.add_argument("--video-batch", type=int, default=4)
    parser.add_argument("--image-batch", type=int, default=12)
    parser.add_argument("--fresh-lr", type=float, default=1e-3)
    parser.add_argument("--fresh-image-only", type=float, default=0.2)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--probe-steps", type=int, default=30,
                        help="steps timed before sizing the schedule; the first third is not counted "
                             "(kernels are built and the workers' queue fills)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a numeric TrainConfig field for every candidate, e.g. video_every=4")
    return parser.parse_args(argv)


def config_overrides(pairs: list[str]) -> dict:
    """``FIELD=VALUE`` pairs -> numeric ``TrainConfig`` fields, each value of its field's type.

    >>> config_overrides(["recolor=0.7", "video_every=4"])
    {'recolor': 0.7, 'video_every': 4}
    """
    from dataclasses import fields

    from mixqsam2.train.config import TrainConfig

    own_flags = ("embed", "video_batch", "image_batch", "steps")  # set by --candidate, the batch flags, --minutes
    numeric = {f.name: type(f.default) for f in fields(TrainConfig)
               if type(f.default) in (int, float) and f.name not in own_flags}
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            overrides[name] = numeric[name](value)
        except (KeyError, ValueError):
            raise ValueError(f"--set {pair!r}: give FIELD=VALUE, FIELD one of {', '.join(sorted(numeric))} "
                             "and VALUE a number of its type") from None
    return overrides


def candidate_config(spec: str, args):
    """``NAME=EMBED[:INIT]`` -> (name, TrainConfig)."""
    from mixqsam2.train.config import TRAIN_PRESETS

    name, _, rest = spec.partition("=")
    embed, _, init = rest.partition(":")
    if not (name and embed.isdigit() and int(embed) > 0 and args.preset in TRAIN_PRESETS):
        raise ValueError(f"--candidate {spec!r} (preset {args.preset!r}): give NAME=EMBED[:INIT], "
                         f"EMBED a positive trunk width, a preset of {sorted(TRAIN_PRESETS)}")
    cfg = replace(TRAIN_PRESETS[args.preset], embed=int(embed), init_checkpoint=init or None,
                  video_batch=args.video_batch, image_batch=args.image_batch)
    if not init:
        cfg = replace(cfg, lr=args.fresh_lr, image_only_fraction=args.fresh_image_only)
    return name, replace(cfg, **config_overrides(args.set))  # --set last: it wins


def run_candidate(name: str, cfg, args, started: float) -> None:
    """Probe the step rate, size the schedule to the time left, train; write NAME.json."""
    import tempfile

    import torch

    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.train.loop import train

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    budget = args.minutes * 60
    with tempfile.TemporaryDirectory() as scratch:  # at most a quarter of the budget, however slow the steps
        probe = train(replace(cfg, steps=args.probe_steps, image_only_fraction=0.0), Path(scratch) / "probe.pt",
                      minutes=args.minutes / 4, device=args.device, workers=args.workers, save_every=10**9)
    timed = probe[len(probe) // 3:]
    rate = sum(r["wall"] for r in timed) / len(timed)
    left = budget - (time.monotonic() - started)
    cfg = replace(cfg, steps=max(args.probe_steps, int(0.9 * left / rate)))
    trained = time.monotonic()
    history = train(cfg, out / f"{name}.pt", minutes=max(left - 30, 1) / 60, device=args.device,
                    workers=args.workers, save_every=200, overwrite=True)  # the script's own folder
    record = {"name": name, "config": asdict(cfg), "probe_seconds_per_step": rate, "steps_done": len(history),
              "seconds": time.monotonic() - trained, "history": history}
    write_json_atomic(out / f"{name}.json", record)
    print(f"{name}: {len(history)}/{cfg.steps} steps, probe {rate:.3f} s/step", flush=True)


def report(out: Path) -> str:
    """``runs.md`` and ``runs.png`` of the runs in ``out``; returns the table."""
    from mixqsam2.fileio import write_bytes_atomic
    from mixqsam2.train.report import plot_runs

    records = [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]
    lines = ["| run | trunk | init | steps | seconds | s/step | image IoU, last 200 steps "
             "| video IoU, last 200 steps |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        last = r["history"][-200:]
        iou = {kind: sum(x["iou"] for x in last if x["kind"] == kind) / max(1, sum(x["kind"] == kind for x in last))
               for kind in ("image", "video")}
        init = Path(r["config"]["init_checkpoint"]).name if r["config"]["init_checkpoint"] else "fresh"
        lines.append(f"| {r['name']} | {r['config']['embed']} | {init} | {r['steps_done']} | {r['seconds']:.0f} | "
                     f"{r['seconds'] / r['steps_done']:.3f} | {iou['image']:.3f} | {iou['video']:.3f} |")
    table = "\n".join(lines) + "\n"
    write_bytes_atomic(out / "runs.md", table.encode())
    plot_runs({r["name"]: r["history"] for r in records}, out / "runs.png")
    return table


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        if not sorted(Path(args.out).glob("*.json")):
            print(f"error: {args.out}: no run records (NAME.json) to report", file=sys.stderr)
            return 2
        print(report(Path(args.out)), end="")
        return 0
    if not args.candidate or args.minutes is None:
        print("error: give --candidate and --minutes (or --report-only)", file=sys.stderr)
        return 2
    if args.probe_steps < 2:
        print(f"error: --probe-steps {args.probe_steps}: time at least 2 steps", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        candidates = [candidate_config(spec, args) for spec in args.candidate]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    runs = [context.Process(target=run_candidate, args=(name, cfg, args, started), name=name)
            for name, cfg in candidates]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    failed = [run.name for run in runs if run.exitcode != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    print(report(Path(args.out)), end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
