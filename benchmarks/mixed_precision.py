"""Accuracy retention of mixed-precision plans: ours (exact ILP) vs the paper's greedy, random
allocation, uniform formats and NVIDIA ModelOpt's ``auto_quantize`` (same formats, budget and
calibration data; loss against ground truth), on held-out generated images and videos.

Calibration statistics are collected once (32 images + 4 videos x 16 frames, seeds 8101/8102)
and every method allocates from them; each plan is applied as fake quantization and
evaluated on held-out data (seeds 9101/9102: box mIoU on images, J&F on videos). Retention
is quantized / FP32. Budgets are effective weight bits; a budget below what TensorRT's rules
allow for this model is reported as infeasible with its minimum. Research mode repeats the
paper's setting: candidates {w3a3, w4a4, w5a5} at 4 bits and {w5a5, w6a6, w7a7} at 6 bits
against uniform W4A4 / W6A6.

    pip install nvidia-modelopt requests huggingface_hub   # the peer baseline (CPU is fine)
    python benchmarks/mixed_precision.py --out out/bench/mixed_precision.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import modelopt_baseline  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pico")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--budgets", default="4.5,5,6,8")
    parser.add_argument("--block-size", type=int, default=64, help="int4 block (pico's linears are 32-2048 wide)")
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--eval-videos", type=int, default=6)
    parser.add_argument("--eval-frames", type=int, default=48)
    parser.add_argument("--random-seeds", type=int, default=3)
    parser.add_argument("--out", default="out/bench/mixed_precision.json")
    return parser.parse_args(argv)


def data(root: Path, args):
    from mixqsam2.data.loaders import CocoImages, open_video_set
    from mixqsam2.data.synth import write_image_set, write_video_set

    sets = {"calib_images": (write_image_set, dict(num=32, seed=8101)),
            "calib_videos": (write_video_set, dict(num=4, frames=16, seed=8102)),
            "eval_images": (write_image_set, dict(num=args.eval_images, seed=9101)),
            "eval_videos": (write_video_set, dict(num=args.eval_videos, frames=args.eval_frames, seed=9102))}
    out = {}
    for name, (writer, kwargs) in sets.items():
        path = root / f"{name}-{'-'.join(str(v) for v in kwargs.values())}"
        if not path.is_dir():
            writer(path, **kwargs)
        out[name] = list(CocoImages.from_dir(path)) if "images" in name else open_video_set(path)
    return out


def evaluate(model, plan, sets) -> dict:
    import copy

    from mixqsam2.quant.plan import apply_plan

    return evaluate_model(apply_plan(copy.deepcopy(model), plan) if plan is not None else model, sets)


def evaluate_model(model, sets) -> dict:
    from mixqsam2.eval.images import evaluate_images
    from mixqsam2.eval.videos import evaluate_videos

    return {"miou": evaluate_images(model, sets["eval_images"])["miou"],
            "jf": evaluate_videos(model, sets["eval_videos"])["JF"]}


def random_choice(rows, budget, seed):
    """The exact solver on random importances with the paper's 2^-b error: a random feasible
    allocation at the budget (what the score is worth, everything else equal)."""
    from mixqsam2.quant.allocate import LayerOptions, solve_exact

    rng = np.random.default_rng(seed)
    layers = [LayerOptions(r["name"], r["params"], 0.0, {f: (b, rng.random() * 2.0 ** -b) for f, (b, _) in r["options"].items()})
              for r in rows]
    return solve_exact(layers, budget)


def uniform_choice(rows, preferred: list[str]):
    """Each layer in the first of ``preferred`` it allows."""
    return {r["name"]: next(f for f in preferred if f in r["options"]) for r in rows}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model
    from mixqsam2.quant.calibrate import (CalibrationConfig, allocate, build_plan, check_budget, collect_statistics,
                                          layer_formats, layer_table, make_forward_loop, target_layers)
    from mixqsam2.quant.plan import state_dict_sha256

    out = Path(args.out)
    sets = data(out.parent / "data", args)
    model = build_model(args.model, args.checkpoint)
    sha = state_dict_sha256(model)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "model": args.model,
              "block_size": args.block_size, "fp32": evaluate(model, None, sets), "runs": {}}
    fp32 = result["fp32"]
    layers = target_layers(model)

    def record(key, plan, seconds, scores=None, bits=None, extra=None):
        scores = scores or evaluate(model, plan, sets)
        bits = plan.effective_bits if bits is None else bits
        result["runs"][key] = {"effective_bits": bits, "calib_seconds": seconds, **scores, **(extra or {}),
                               "miou_retention": scores["miou"] / fp32["miou"], "jf_retention": scores["jf"] / fp32["jf"]}
        write_json_atomic(out, result)
        print(f"{key:<28} bits {bits:5.2f}  mIoU ret {result['runs'][key]['miou_retention']:.4f}  "
              f"J&F ret {result['runs'][key]['jf_retention']:.4f}", flush=True)

    def statistics(candidates):
        config = CalibrationConfig(budget_bits=16, candidates=candidates, block_size=args.block_size)
        formats = layer_formats(layers, config)
        start = time.perf_counter()
        observers = collect_statistics(layers, make_forward_loop(sets["calib_images"], sets["calib_videos"]), model)
        rows = layer_table(layers, formats, observers, config)
        return formats, rows, time.perf_counter() - start

    deployable = ("fp16", "int8", "int4")
    formats, rows, stat_seconds = statistics(deployable)
    modelopt_batches = modelopt_baseline.batches(sets["calib_images"], sets["calib_videos"], model.image_size, 16)
    result["statistics_seconds"] = stat_seconds
    for budget in [float(b) for b in args.budgets.split(",")]:
        config = CalibrationConfig(budget_bits=budget, candidates=deployable, block_size=args.block_size)
        try:
            check_budget(layers, formats, config)
        except UserInputError as exc:
            result["runs"][f"infeasible@{budget:g}"] = {"error": str(exc)}
            print(exc, flush=True)
            continue
        for solver in ("ilp", "greedy"):
            cfg = CalibrationConfig(budget_bits=budget, candidates=deployable, block_size=args.block_size, solver=solver)
            start = time.perf_counter()
            choice = allocate(rows, cfg)
            record(f"{'ours' if solver == 'ilp' else 'paper-greedy'}@{budget:g}",
                   build_plan(rows, choice, cfg, args.model, sha, {}), stat_seconds + time.perf_counter() - start)
        start = time.perf_counter()
        try:
            quantized, summary = modelopt_baseline.auto_quantize(copy.deepcopy(model), modelopt_batches, budget,
                                                                 args.block_size, list(layers))
        except ValueError as exc:  # ModelOpt's own accounting can find a budget infeasible that ours allows
            result["runs"][f"modelopt@{budget:g}"] = {"error": str(exc)}
            print(f"modelopt@{budget:g}: {exc}", flush=True)
        else:
            record(f"modelopt@{budget:g}", None, time.perf_counter() - start, scores=evaluate_model(quantized, sets),
                   bits=summary["effective_bits"], extra=summary)
        random_config = CalibrationConfig(budget_bits=budget, candidates=deployable, block_size=args.block_size,
                                          solver="random")
        for seed in range(args.random_seeds):
            plan = build_plan(rows, random_choice(rows, budget, seed), random_config, args.model, sha, {})
            record(f"random{seed}@{budget:g}", plan, stat_seconds)
    uniform = CalibrationConfig(budget_bits=16, candidates=deployable, block_size=args.block_size, solver="uniform")
    for name, preferred in (("uniform-int8", ["int8", "fp16"]), ("uniform-int4+int8", ["int4", "int8", "fp16"])):
        record(name, build_plan(rows, uniform_choice(rows, preferred), uniform, args.model, sha, {}), stat_seconds)
    for label, candidates, budget, uniform_format in (("avg-4", ("w3a3", "w4a4", "w5a5"), 4.0, "w4a4"),
                                               ("avg-6", ("w5a5", "w6a6", "w7a7"), 6.0, "w6a6")):
        _, research_rows, seconds = statistics(candidates)
        for solver in ("ilp", "greedy"):
            cfg = CalibrationConfig(budget_bits=budget, candidates=candidates, solver=solver, block_size=args.block_size)
            record(f"research-{label}-{'ours' if solver == 'ilp' else 'paper-greedy'}",
                   build_plan(research_rows, allocate(research_rows, cfg), cfg, args.model, sha, {}), seconds)
        cfg = CalibrationConfig(budget_bits=budget, candidates=candidates, solver="uniform", block_size=args.block_size)
        record(f"research-uniform-{uniform_format}", build_plan(research_rows, uniform_choice(research_rows, [uniform_format]),
                                                         cfg, args.model, sha, {}), seconds)
    print(json.dumps({"fp32": fp32, "statistics_seconds": stat_seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
