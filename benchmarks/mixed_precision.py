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
    from mixqsam2.data.synth import cached_set

    sets = {"calib_images": ("images", dict(num=32, seed=8101)),
            "calib_videos": ("videos", dict(num=4, frames=16, seed=8102)),
            "eval_images": ("images", dict(num=args.eval_images, seed=9101)),
            "eval_videos": ("videos", dict(num=args.eval_videos, frames=args.eval_frames, seed=9102))}
    out = {}
    for name, (kind, spec) in sets.items():
        path = cached_set(root, kind, **spec)
        out[name] = list(CocoImages.from_dir(path)) if kind == "images" else open_video_set(path)
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
    layers = [LayerOptions(r.name, r.params, 0.0, {f: (b, rng.random() * 2.0 ** -b) for f, (b, _) in r.options.items()})
              for r in rows]
    return solve_exact(layers, budget)


def uniform_choice(rows, preferred: list[str]):
    """Each layer in the first of ``preferred`` it allows."""
    return {r.name: next(f for f in preferred if f in r.options) for r in rows}


DEPLOYABLE = ("fp16", "int8", "int4")


@dataclass
class Bench:
    """What every experiment shares: the model, the data, the FP32 reference, and the result
    (written after every run)."""

    args: argparse.Namespace
    model: object
    sets: dict
    reference: Reference
    layers: dict
    sha: str
    out: Path
    result: dict

    def config(self, formats=DEPLOYABLE, budget=16.0, **settings):
        from mixqsam2.quant.config import CalibrationConfig

        return CalibrationConfig(budget_bits=budget, formats=formats, block_size=self.args.block_size, **settings)

    def plan(self, rows, choice, config):
        from mixqsam2.quant.calibrate import build_plan

        return build_plan(rows, choice, config, self.args.model, self.sha, {})

    def record(self, key, plan, seconds, scores=None, bits=None, extra=None) -> dict:
        from mixqsam2.fileio import write_json_atomic

        scores = scores or evaluate(self.model, plan, self.sets, self.reference)
        fp32 = self.result["fp32"]
        run = self.result["runs"][key] = {
            "effective_bits": plan.effective_bits if bits is None else bits, "calib_seconds": seconds, **scores,
            **(extra or {}), "miou_retention": scores["miou"] / fp32["miou"], "jf_retention": scores["jf"] / fp32["jf"]}
        write_json_atomic(self.out, self.result)
        print(f"{key:<28} bits {run['effective_bits']:5.2f}  retention mIoU {run['miou_retention']:.4f} "
              f"J&F {run['jf_retention']:.4f}  agreement images {run['agreement_images']:.4f} "
              f"videos {run['agreement_videos']:.4f}  distortion {run['distortion']:.3f}", flush=True)
        return run

    def statistics(self, formats):
        """Allowed formats and calibration statistics per layer, and the seconds they took."""
        from mixqsam2.quant.calibrate import collect_statistics, layer_formats, make_forward_loop

        allowed = layer_formats(self.layers, self.config(formats))
        start = time.perf_counter()
        loop = make_forward_loop(self.sets["calib_images"], self.sets["calib_videos"])
        observers = collect_statistics(self.layers, loop, self.model)
        return allowed, observers, time.perf_counter() - start


@dataclass
class Tables:
    """The deployable formats' calibration, scored both ways, shared by every budget."""

    allowed: dict
    wais: list  # LayerCalibration rows, WAIS x expected NSR
    measured: list  # the same rows with measured output distortions
    statistics_seconds: float
    measure_seconds: float

    def for_importance(self, importance: str):
        """(rows, calibration seconds) of the ``wais`` or ``measured`` objective."""
        if importance == "wais":
            return self.wais, self.statistics_seconds
        return self.measured, self.statistics_seconds + self.measure_seconds


def deployable_tables(bench: Bench) -> Tables:
    from mixqsam2.quant.calibrate import layer_table, make_forward_loop, with_measured_errors

    allowed, observers, statistics_seconds = bench.statistics(DEPLOYABLE)
    start = time.perf_counter()
    rows = layer_table(bench.layers, allowed, observers, bench.config())
    subset = make_forward_loop(bench.sets["calib_images"][:8], bench.sets["calib_videos"][:2], 8, progress=False)
    measured = with_measured_errors(rows, bench.model, bench.layers, bench.config(), subset)
    tables = Tables(allowed, rows, measured, statistics_seconds, time.perf_counter() - start)
    bench.result.update(statistics_seconds=statistics_seconds, sensitivity_seconds=tables.measure_seconds)
    return tables


def solver_runs(bench: Bench, tables: Tables, budget: float) -> dict:
    """Ours (exact solver, both objectives) and the paper's greedy solver at ``budget``."""
    from mixqsam2.quant.calibrate import allocate

    runs = {}
    for label, solver, importance in (("ours", "ilp", "wais"), ("ours-measured", "ilp", "measured"),
                                      ("paper-greedy", "greedy", "wais")):
        config = bench.config(budget=budget, solver=solver, importance=importance)
        rows, seconds = tables.for_importance(importance)
        start = time.perf_counter()
        choice = allocate(rows, config)
        runs[label] = bench.record(f"{label}@{budget:g}", bench.plan(rows, choice, config),
                                   seconds + time.perf_counter() - start)
    return runs


def modelopt_run(bench: Bench, budget: float, batches: list) -> dict | None:
    """NVIDIA ModelOpt's ``auto_quantize`` at ``budget`` (None where it finds the budget infeasible)."""
    start = time.perf_counter()
    try:
        quantized, summary = modelopt_baseline.auto_quantize(copy.deepcopy(bench.model), batches, budget,
                                                             bench.args.block_size, list(bench.layers))
    except ValueError as exc:  # ModelOpt's own accounting can find a budget infeasible that ours allows
        bench.result["runs"][f"modelopt@{budget:g}"] = {"error": str(exc)}
        print(f"modelopt@{budget:g}: {exc}", flush=True)
        return None
    return bench.record(f"modelopt@{budget:g}", None, time.perf_counter() - start,
                        scores=evaluate_model(quantized, bench.sets, bench.reference),
                        bits=summary["effective_bits"], extra=summary)


def random_run(bench: Bench, tables: Tables, budget: float) -> dict:
    """Random feasible allocations at ``budget``, averaged per unit over ``--random-seeds``."""
    config = bench.config(budget=budget, solver="random")
    runs = []
    for seed in range(bench.args.random_seeds):
        plan = bench.plan(tables.wais, random_choice(tables.wais, budget, seed), config)
        runs.append(bench.record(f"random{seed}@{budget:g}", plan, tables.statistics_seconds))
    return mean_run(runs)


def budget_experiment(bench: Bench, tables: Tables, budget: float, modelopt_batches: list) -> None:
    """Every method at one budget, and ours compared with each by paired bootstrap."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.quant.calibrate import check_budget

    try:
        check_budget(bench.layers, tables.allowed, bench.config(budget=budget))
    except UserInputError as exc:
        bench.result["runs"][f"infeasible@{budget:g}"] = {"error": str(exc)}
        print(exc, flush=True)
        return
    runs = solver_runs(bench, tables, budget)
    modelopt = modelopt_run(bench, budget, modelopt_batches)
    if modelopt is not None:
        runs["modelopt"] = modelopt
    runs["random-mean"] = random_run(bench, tables, budget)
    ours = ("ours", "ours-measured")
    bench.result["comparisons"][f"{budget:g}"] = {
        f"{mine} - {other}": compare(runs[mine], runs[other]) for mine in ours for other in runs if other not in ours
    } | {"ours-measured - ours": compare(runs["ours-measured"], runs["ours"])}
    write_json_atomic(bench.out, bench.result)


def uniform_experiment(bench: Bench, tables: Tables) -> None:
    """Every layer in one format where it can be: fp16 (TensorRT's floor), int8, int4 + int8."""
    config = bench.config(solver="uniform")
    for name, preferred in (("fp16", ["fp16"]), ("uniform-int8", ["int8", "fp16"]),
                            ("uniform-int4+int8", ["int4", "int8", "fp16"])):
        bench.record(name, bench.plan(tables.wais, uniform_choice(tables.wais, preferred), config),
                     tables.statistics_seconds)


def research_experiment(bench: Bench, label: str, formats: tuple[str, ...], budget: float, uniform_format: str) -> None:
    """The paper's setting: research WbAb formats at ``budget``, ours and greedy vs uniform."""
    from mixqsam2.quant.calibrate import allocate, layer_table

    allowed, observers, seconds = bench.statistics(formats)
    rows = layer_table(bench.layers, allowed, observers, bench.config(formats, budget))
    for solver in ("ilp", "greedy"):
        config = bench.config(formats, budget, solver=solver)
        bench.record(f"research-{label}-{'ours' if solver == 'ilp' else 'paper-greedy'}",
                     bench.plan(rows, allocate(rows, config), config), seconds)
    config = bench.config(formats, budget, solver="uniform")
    bench.record(f"research-uniform-{uniform_format}", bench.plan(rows, uniform_choice(rows, [uniform_format]), config),
                 seconds)


def setup(args) -> Bench:
    """Model, data sets and the FP32 reference."""
    import torch

    from mixqsam2.models import build_model
    from mixqsam2.quant.calibrate import target_layers
    from mixqsam2.quant.plan import state_dict_sha256

    out = Path(args.out)
    sets = data(out.parent / "data", args)
    model = build_model(args.model, args.checkpoint)
    fp32, reference = fp32_reference(model, sets)
    result = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "model": args.model,
              "block_size": args.block_size,
              "eval": {"images": args.eval_images, "videos": args.eval_videos, "frames": args.eval_frames},
              "fp32": fp32, "runs": {}, "comparisons": {}}
    return Bench(args, model, sets, reference, target_layers(model), state_dict_sha256(model), out, result)


def main(argv=None) -> int:
    from mixqsam2.fileio import write_bytes_atomic

    args = parse_args(argv)
    bench = setup(args)
    tables = deployable_tables(bench)
    modelopt_batches = modelopt_baseline.batches(bench.sets["calib_images"], bench.sets["calib_videos"],
                                                 bench.model.image_size, 16)
    for budget in [float(b) for b in args.budgets.split(",")]:
        budget_experiment(bench, tables, budget, modelopt_batches)
    uniform_experiment(bench, tables)
    for label, formats, budget, uniform_format in (("avg-4", ("w3a3", "w4a4", "w5a5"), 4.0, "w4a4"),
                                                   ("avg-6", ("w5a5", "w6a6", "w7a7"), 6.0, "w6a6")):
        research_experiment(bench, label, formats, budget, uniform_format)
    write_bytes_atomic(bench.out.with_suffix(".md"), markdown(bench.result).encode())
    print(markdown(bench.result))
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
