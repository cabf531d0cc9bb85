"""How box-prompted pico masks miss small objects: do they spill out of the prompt box?

For each checkpoint and image set (the ``pico_quality.py`` sets: 200 images, seed 9001, of
the training generator and the held-out one), every GT-box prompt's mask is measured by object
area (the ``pico_quality.py`` bins): box mIoU and fill-the-box, the median of predicted area /
box area next to object area / box area, the share of predicted pixels inside the box, and
what clipping the mask to its box would score (not something the tracker does).
``--input-sizes`` also runs each checkpoint's weights at other input sizes (pico's positional
tables interpolate; no retraining), to tell resolution from training. ``--box-zooms`` also
segments small boxes on zoomed views (``StreamingTracker(box_zoom=S)``) for each share S.

    python benchmarks/box_spill.py --checkpoint ctrl=out/train/pico_v3_ctrl.pt \\
        --checkpoint small=out/train/pico_v3_small.pt --out out/bench/box_spill.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pico_quality import area_bins  # noqa: E402  (the same area bins)


def parse_args(argv=None):
    from mixqsam2.cli.common import open_share

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--input-sizes", type=int, nargs="+", default=[256], help="pico input sizes to run at")
    parser.add_argument("--box-zooms", type=open_share, nargs="+", default=[], help="box-zoom shares to run with too")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", default="out/bench/data", help="cache of generated sets")
    parser.add_argument("--out", default="out/bench/box_spill.json")
    return parser.parse_args(argv)


def measure(model, images, box_zoom: float | None = None) -> list[dict]:
    """Per GT-box prompt: object, box and predicted areas, predicted pixels in the box, IoU, fill
    IoU, and the IoU of the mask clipped to its box."""
    from mixqsam2.eval.images import box_mask, evaluate_images
    from mixqsam2.eval.metrics import mask_iou
    from mixqsam2.memory.prompts import clip_box

    samples = {str(sample.image_id): sample for sample in images}
    rows = []

    def on_mask(key, mask):
        sample = samples[key[0]]
        truth = sample.masks[key[1]]
        box = box_mask(clip_box(sample.boxes[key[1]], *mask.shape), mask.shape)  # the prompt's box
        rows.append({"object": int(truth.sum()), "box": int(box.sum()), "predicted": int(mask.sum()),
                     "inside": int((mask & box).sum()), "iou": mask_iou(mask, truth), "fill": mask_iou(box, truth),
                     "clipped": mask_iou(mask & box, truth)})

    evaluate_images(model, images, on_mask=on_mask, box_zoom=box_zoom)
    return rows


def by_area(rows: list[dict]) -> dict:
    """Per area bin: instances, box mIoU, fill, median predicted/box and object/box area, share inside the box."""
    table = {}
    for label, lo, hi in area_bins():
        picked = [r for r in rows if lo <= r["object"] < hi]
        if picked:
            table[label] = {
                "instances": len(picked), "box_miou": float(np.mean([r["iou"] for r in picked])),
                "fill": float(np.mean([r["fill"] for r in picked])),
                "predicted_per_box": float(np.median([r["predicted"] / r["box"] for r in picked])),
                "object_per_box": float(np.median([r["object"] / r["box"] for r in picked])),
                "inside_box": float(np.mean([r["inside"] / max(1, r["predicted"]) for r in picked])),
                "clipped_miou": float(np.mean([r["clipped"] for r in picked])),
            }
    return table


def build(checkpoint: str, size: int):
    """pico with ``checkpoint``'s weights at input size ``size``."""
    from mixqsam2.models import build_pico_variant, load_state_dict_checked, pico_width, read_checkpoint

    state = read_checkpoint(checkpoint)
    model = build_pico_variant(pico_width(state), size)
    load_state_dict_checked(model, state, checkpoint)
    return model.eval()


def table(result: dict) -> str:
    lines = ["| checkpoint | input px | box zoom | set | area px | n | box mIoU | fill | predicted / box | object / box "
             "| inside box | clipped to box |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, sets in result.items():
        name, size, zoom = key.rsplit("@", 2)
        for set_name, bins in sets.items():
            for label, r in bins.items():
                lines.append(f"| {name} | {size} | {zoom} | {set_name} | {label} | {r['instances']} | {r['box_miou']:.3f} | "
                             f"{r['fill']:.3f} | {r['predicted_per_box']:.2f} | {r['object_per_box']:.2f} | {r['inside_box']:.2f} "
                             f"| {r['clipped_miou']:.3f} |")
    return "\n".join(lines) + "\n"


def spill_run(args) -> int:
    import torch

    from mixqsam2.data.heldout import cached_heldout_set
    from mixqsam2.data.loaders import CocoImages
    from mixqsam2.data.synth import cached_set
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic

    torch.set_num_threads(1)
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    sets = {name: CocoImages.from_dir(make(Path(args.data), "images", num=args.images, seed=9001))
            for name, make in {"train-gen": cached_set, "heldout": cached_heldout_set}.items()}
    result = {}
    for name, path in checkpoints.items():
        for size in args.input_sizes:
            model = build(path, size)
            for zoom in [None, *args.box_zooms]:
                result[f"{name}@{size}@{zoom or '-'}"] = {set_name: by_area(measure(model, images, zoom))
                                                         for set_name, images in sets.items()}
    markdown = table(result)
    write_json_atomic(Path(args.out), {"checkpoints": checkpoints, "result": result, "table": markdown})
    write_bytes_atomic(Path(args.out).with_suffix(".md"), markdown.encode())
    print(markdown)
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(spill_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
