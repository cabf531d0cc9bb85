"""How far training moved each part of a model: does the image trunk learn at a given rate?

For each checkpoint, the relative change from the starting checkpoint, per part of SAM2
(``||W - W0|| / ||W0||`` over all weights of the part): the image trunk, its neck, the prompt
encoder, the mask decoder, the memory encoder, memory attention, and the rest. Both
checkpoints must have the same shapes (a widened run's start is not a file).
``train-pico --encoder-lr-scale S`` sets the trunk's rate; this says what it did.

    python benchmarks/weight_drift.py --init toolkit/mixqsam2/models/weights/pico.pt \\
        --checkpoint ctrl=out/train/pico_v3_ctrl.pt --out out/bench/weight_drift.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

PARTS = ("image_encoder.trunk", "image_encoder.neck", "sam_prompt_encoder", "sam_mask_decoder",
         "memory_encoder", "memory_attention")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="the checkpoint the runs started from")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--out", default="out/bench/weight_drift.json")
    return parser.parse_args(argv)


def part_of(key: str) -> str:
    """The part of SAM2 a state-dict key belongs to.

    >>> part_of("image_encoder.trunk.blocks.0.attn.qkv.weight"), part_of("obj_ptr_proj.layers.0.bias")
    ('image_encoder.trunk', 'other')
    """
    return next((p for p in PARTS if key.startswith(p + ".")), "other")


def relative_drift(start: dict, end: dict) -> dict[str, float]:
    """``{part: ||end - start|| / ||start||}`` over the floating-point weights of each part.

    >>> import torch
    >>> relative_drift({"memory_encoder.w": torch.ones(4)}, {"memory_encoder.w": torch.full((4,), 1.5)})
    {'memory_encoder': 0.5}
    """
    moved: dict[str, float] = {}
    size: dict[str, float] = {}
    for key, w0 in start.items():
        if not w0.is_floating_point():
            continue
        if end[key].shape != w0.shape:
            raise ValueError(f"{key}: shape {tuple(end[key].shape)} against {tuple(w0.shape)} at the start")
        part = part_of(key)
        moved[part] = moved.get(part, 0.0) + float((end[key] - w0).pow(2).sum())
        size[part] = size.get(part, 0.0) + float(w0.pow(2).sum())
    return {part: math.sqrt(moved[part] / size[part]) for part in moved if size[part] > 0}


def table(drift: dict[str, dict[str, float]]) -> str:
    parts = [p for p in (*PARTS, "other") if any(p in d for d in drift.values())]
    lines = ["| checkpoint | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
    lines += [f"| {name} | " + " | ".join(f"{d.get(p, float('nan')):.4f}" for p in parts) + " |"
              for name, d in drift.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic
    from mixqsam2.models import read_checkpoint

    args = parse_args(argv)
    start = read_checkpoint(args.init)
    checkpoints = dict(spec.split("=", 1) for spec in args.checkpoint)
    drift = {name: relative_drift(start, read_checkpoint(path)) for name, path in checkpoints.items()}
    markdown = table(drift)
    write_json_atomic(Path(args.out), {"init": args.init, "checkpoints": checkpoints, "drift": drift, "table": markdown})
    write_bytes_atomic(Path(args.out).with_suffix(".md"), markdown.encode())
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
