"""Accuracy retention of mixed-precision plans: ours (exact ILP; WAIS x expected NSR, or the
measured per-layer distortion) vs the paper's greedy, random allocation, uniform formats and NVIDIA ModelOpt's
``auto_quantize`` (same formats, budget and calibration data; loss against ground truth), on
held-out generated images and videos.

Calibration statistics are collected once (32 images + 4 videos x 16 frames, seeds 8101/8102)
and every method allocates from them (the measured objective uses the first 8 images and 2
videos x 8 frames of them); each plan is applied as fake quantization and evaluated on
held-out data (seeds 9101/9102: box mIoU on images, J&F on videos). Retention is quantized /
FP32. Agreement is the mask IoU between the quantized and the FP32 model's masks on the same
prompts (:mod:`mixqsam2.eval.agreement`): what quantization changed, without the model's own
errors. Distortion is the mean squared change of the mask decoder's raw predictions on the
held-out images (:class:`mixqsam2.quant.sensitivity.OutputDistortion`, x 1e4): the smooth
part of that change, without the threshold flips (object present or not, which of the
masks) that make mask metrics jump. "fp16" is every layer in fp16, TensorRT's floor. Ours
is compared with every other method by paired bootstrap over the held-out units
(95 % intervals of the difference). Budgets are effective weight bits; a budget below what
TensorRT's rules allow for this model is reported as infeasible with its minimum. Research
mode repeats the paper's setting: candidates {w3a3, w4a4, w5a5} at 4 bits and {w5a5, w6a6,
w7a7} at 6 bits against uniform W4A4 / W6A6.

    pip install nvidia-modelopt requests huggingface_hub   # the peer baseline (CPU is fine)
    python benchmarks/mixed_precision.py --out out/bench/mixed_precision.json
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixqsam2.eval.agreement import AgreementScore, ReferenceMasks
from mixqsam2.quant.sensitivity import OutputDistortion

sys.path.insert(0, str(Path(__file__).parent))
import modelopt_baseline  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pico")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--budgets", default="4.5,5,6,8")
    parser.add_argument("--block-size", type=int, default=64, help="int4 block (pico's linears are 32-2048 wide)")
    parser.add_argument("--eval-images", type=int, default=400)
    parser.add_argument("--eval-videos", type=int, default=16)
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


def evaluate(model, plan, sets, reference) -> dict:
    from mixqsam2.quant.plan import apply_plan

    return evaluate_model(apply_plan(copy.deepcopy(model), plan), sets, reference)


@dataclass
class Reference:
    """What the FP32 model gives on the held-out sets, to measure the others against."""

    image_masks: ReferenceMasks
    video_masks: ReferenceMasks
    distortion: OutputDistortion


def ground_truth_scores(model, sets, on_image=None, on_video=None) -> dict:
    """Ground-truth scores with their per-unit values (images; video objects)."""
    from mixqsam2.eval.images import evaluate_images
    from mixqsam2.eval.videos import evaluate_videos

    images = evaluate_images(model, sets["eval_images"], on_image)
    videos = evaluate_videos(model, sets["eval_videos"], on_mask=on_video)
    return {"miou": images["miou"], "jf": videos["JF"], "per_image": images["per_image"],
            "per_object": {f"{v}/{o}": (s["J"] + s["F"]) / 2 for v, r in videos["per_video"].items()
                           for o, s in r["per_object"].items()}}


def fp32_reference(model, sets) -> tuple[dict, Reference]:
    """The FP32 scores, and its masks and raw predictions recorded."""
    from mixqsam2.quant.calibrate import make_forward_loop

    reference = Reference(ReferenceMasks(), ReferenceMasks(),
                          OutputDistortion(model, make_forward_loop(sets["eval_images"], [], progress=False)))
    return ground_truth_scores(model, sets, reference.image_masks.record, reference.video_masks.record), reference


def evaluate_model(model, sets, reference: Reference) -> dict:
    """Scores, plus agreement with the FP32 masks and distortion of the FP32 raw predictions."""
    on_image, on_video = AgreementScore(reference.image_masks), AgreementScore(reference.video_masks)
    result = ground_truth_scores(model, sets, on_image, on_video)
    distortion = {str(call): 1e4 * error for call, error in enumerate(reference.distortion.per_call(model))}
    return {**result, "agreement_images": on_image.mean(), "agreement_videos": on_video.mean(),
            "agreement_per_image": on_image.per_unit(), "agreement_per_video": on_video.per_unit(),
            "distortion": float(np.mean(list(distortion.values()))), "distortion_per_call": distortion}


COMPARED = (("miou", "per_image"), ("jf", "per_object"), ("agreement_images", "agreement_per_image"),
            ("agreement_videos", "agreement_per_video"), ("distortion", "distortion_per_call"))


def mean_run(runs: list[dict]) -> dict:
    """Per-unit mean of several runs (random allocation over seeds)."""
    return {units: {u: float(np.mean([r[units][u] for r in runs])) for u in runs[0][units]} for _, units in COMPARED}


def compare(ours: dict, other: dict) -> dict:
    """Paired bootstrap of ours - other on each metric: points (x100) for the scores, the
    distortion as it is (lower is better)."""
    from mixqsam2.eval.paired import paired_difference

    def scale(metric):
        return 1.0 if metric == "distortion" else 100.0

    return {metric: {k: scale(metric) * v if k != "units" else v
                     for k, v in paired_difference(ours[units], other[units]).items()}
            for metric, units in COMPARED}


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
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic
    from mixqsam2.models import build_model
    from mixqsam2.quant.calibrate import (CalibrationConfig, allocate, build_plan, check_budget, collect_statistics,
                                          layer_formats, layer_table, make_forward_loop, target_layers,
                                          with_measured_errors)
    from mixqsam2.quant.plan import state_dict_sha256

    out = Path(args.out)
    sets = data(out.parent / "data", args)
    model = build_model(args.model, args.checkpoint)
    sha = state_dict_sha256(model)
    fp32, reference = fp32_reference(model, sets)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "model": args.model,
              "block_size": args.block_size, "eval": {"images": args.eval_images, "videos": args.eval_videos,
                                                      "frames": args.eval_frames},
              "fp32": fp32, "runs": {}, "comparisons": {}}
    layers = target_layers(model)

    def record(key, plan, seconds, scores=None, bits=None, extra=None):
        scores = scores or evaluate(model, plan, sets, reference)
        bits = plan.effective_bits if bits is None else bits
        run = result["runs"][key] = {"effective_bits": bits, "calib_seconds": seconds, **scores, **(extra or {}),
                                     "miou_retention": scores["miou"] / fp32["miou"],
                                     "jf_retention": scores["jf"] / fp32["jf"]}
        write_json_atomic(out, result)
        print(f"{key:<28} bits {bits:5.2f}  retention mIoU {run['miou_retention']:.4f} J&F {run['jf_retention']:.4f}"
              f"  agreement images {run['agreement_images']:.4f} videos {run['agreement_videos']:.4f}"
              f"  distortion {run['distortion']:.3f}", flush=True)
        return run

    calib_loop = make_forward_loop(sets["calib_images"], sets["calib_videos"])

    def statistics(candidates):
        config = CalibrationConfig(budget_bits=16, candidates=candidates, block_size=args.block_size)
        formats = layer_formats(layers, config)
        start = time.perf_counter()
        observers = collect_statistics(layers, calib_loop, model)
        return formats, observers, time.perf_counter() - start

    deployable = ("fp16", "int8", "int4")
    formats, observers, stat_seconds = statistics(deployable)
    config = CalibrationConfig(budget_bits=16, candidates=deployable, block_size=args.block_size)
    start = time.perf_counter()
    rows = layer_table(layers, formats, observers, config)
    sensitivity_loop = make_forward_loop(sets["calib_images"][:8], sets["calib_videos"][:2], 8, progress=False)
    measured_rows = with_measured_errors(rows, model, layers, config, sensitivity_loop)
    measure_seconds = time.perf_counter() - start
    importance = {"wais": (rows, stat_seconds), "measured": (measured_rows, stat_seconds + measure_seconds)}
    modelopt_batches = modelopt_baseline.batches(sets["calib_images"], sets["calib_videos"], model.image_size, 16)
    result.update(statistics_seconds=stat_seconds, sensitivity_seconds=measure_seconds)
    for budget in [float(b) for b in args.budgets.split(",")]:
        try:
            check_budget(layers, formats, CalibrationConfig(budget_bits=budget, candidates=deployable,
                                                             block_size=args.block_size))
        except UserInputError as exc:
            result["runs"][f"infeasible@{budget:g}"] = {"error": str(exc)}
            print(exc, flush=True)
            continue
        runs = {}
        for label, solver, kind in (("ours", "ilp", "wais"), ("ours-measured", "ilp", "measured"),
                                    ("paper-greedy", "greedy", "wais")):
            cfg = CalibrationConfig(budget_bits=budget, candidates=deployable, block_size=args.block_size,
                                    solver=solver, importance=kind)
            table, seconds = importance[kind]
            start = time.perf_counter()
            choice = allocate(table, cfg)
            runs[label] = record(f"{label}@{budget:g}", build_plan(table, choice, cfg, args.model, sha, {}),
                                 seconds + time.perf_counter() - start)
        start = time.perf_counter()
        try:
            quantized, summary = modelopt_baseline.auto_quantize(copy.deepcopy(model), modelopt_batches, budget,
                                                                 args.block_size, list(layers))
        except ValueError as exc:  # ModelOpt's own accounting can find a budget infeasible that ours allows
            result["runs"][f"modelopt@{budget:g}"] = {"error": str(exc)}
            print(f"modelopt@{budget:g}: {exc}", flush=True)
        else:
            runs["modelopt"] = record(f"modelopt@{budget:g}", None, time.perf_counter() - start,
                                      scores=evaluate_model(quantized, sets, reference),
                                      bits=summary["effective_bits"], extra=summary)
        random_config = CalibrationConfig(budget_bits=budget, candidates=deployable, block_size=args.block_size,
                                          solver="random")
        runs["random-mean"] = mean_run([
            record(f"random{seed}@{budget:g}", build_plan(rows, random_choice(rows, budget, seed), random_config,
                                                          args.model, sha, {}), stat_seconds)
            for seed in range(args.random_seeds)])
        ours = ("ours", "ours-measured")
        result["comparisons"][f"{budget:g}"] = {
            f"{mine} - {other}": compare(runs[mine], runs[other])
            for mine in ours for other in runs if other not in ours} | {
            "ours-measured - ours": compare(runs["ours-measured"], runs["ours"])}
        write_json_atomic(out, result)
    uniform = CalibrationConfig(budget_bits=16, candidates=deployable, block_size=args.block_size, solver="uniform")
    for name, preferred in (("fp16", ["fp16"]), ("uniform-int8", ["int8", "fp16"]),
                            ("uniform-int4+int8", ["int4", "int8", "fp16"])):
        record(name, build_plan(rows, uniform_choice(rows, preferred), uniform, args.model, sha, {}), stat_seconds)
    for label, candidates, budget, uniform_format in (("avg-4", ("w3a3", "w4a4", "w5a5"), 4.0, "w4a4"),
                                                      ("avg-6", ("w5a5", "w6a6", "w7a7"), 6.0, "w6a6")):
        research_formats, research_observers, seconds = statistics(candidates)
        cfg = CalibrationConfig(budget_bits=budget, candidates=candidates, block_size=args.block_size)
        research_rows = layer_table(layers, research_formats, research_observers, cfg)
        for solver in ("ilp", "greedy"):
            cfg = CalibrationConfig(budget_bits=budget, candidates=candidates, solver=solver, block_size=args.block_size)
            record(f"research-{label}-{'ours' if solver == 'ilp' else 'paper-greedy'}",
                   build_plan(research_rows, allocate(research_rows, cfg), cfg, args.model, sha, {}), seconds)
        cfg = CalibrationConfig(budget_bits=budget, candidates=candidates, solver="uniform", block_size=args.block_size)
        record(f"research-uniform-{uniform_format}", build_plan(research_rows, uniform_choice(research_rows, [uniform_format]),
                                                                cfg, args.model, sha, {}), seconds)
    write_bytes_atomic(out.with_suffix(".md"), markdown(result).encode())
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    """Retention and agreement per run, then ours - every other method with 95 % intervals."""
    lines = [f"FP32: box mIoU {result['fp32']['miou']:.4f}, J&F {result['fp32']['jf']:.4f}", "",
             "| run | eff. bits | mIoU retention | J&F retention | agreement images | agreement videos | "
             "distortion (1e-4) | calib s |",
             "|---|---|---|---|---|---|---|---|"]
    for key, run in result["runs"].items():
        if "error" in run:
            lines.append(f"| {key} | {run['error']} | | | | | | |")
            continue
        lines.append(f"| {key} | {run['effective_bits']:.2f} | {100 * run['miou_retention']:.2f} % | "
                     f"{100 * run['jf_retention']:.2f} % | {run['agreement_images']:.4f} | "
                     f"{run['agreement_videos']:.4f} | {run['distortion']:.3f} | {run['calib_seconds']:.1f} |")
    lines += ["", "| budget | comparison | mIoU pts | J&F pts | agreement images pts | agreement videos pts | "
              "distortion (lower is better) |", "|---|---|---|---|---|---|---|"]
    for budget, comparisons in result["comparisons"].items():
        for name, metrics in comparisons.items():
            cells = [f"{m['mean']:+.2f} [{m['low']:+.2f}, {m['high']:+.2f}]" for m in metrics.values()]
            lines.append(f"| {budget} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
