"""How well do the cheap per-layer error models predict the measured one?

For every quantizable layer of the model and every non-fp16 format TensorRT allows there,
the measured cost is the output distortion with only that layer quantized
(:func:`mixqsam2.quant.sensitivity.measure_format_errors`, on 8 calibration images and 2
videos x 8 frames, as ``calibrate --importance measured`` does). It is compared, by Spearman
rank correlation over the layers, with:

- WAIS x NSR: our default objective (the paper's score times the format's expected
  noise-to-signal ratio at the layer's output);
- NSR alone, and WAIS alone (what the paper's greedy ranks layers by).

A scatter plot (measured vs WAIS x NSR, per format) is written next to the JSON. Then the
additivity the measured objective assumes is checked: for the plans both objectives make at
5, 6 and 8 bits, the sum of the plan's per-layer distortions against the distortion of the
whole plan, measured on the same data.

    python benchmarks/sensitivity_proxy.py --out out/bench/sensitivity_proxy.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import mixed_precision  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pico")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--out", default="out/bench/sensitivity_proxy.json")
    return parser.parse_args(argv)


def correlations(points: list[dict]) -> dict:
    from scipy.stats import spearmanr

    measured = [p["measured"] for p in points]
    proxies = {"wais_x_nsr": [p["wais"] * p["nsr"] for p in points], "nsr": [p["nsr"] for p in points],
               "wais": [p["wais"] for p in points]}
    return {name: float(spearmanr(measured, values)[0]) for name, values in proxies.items()} | {"layers": len(points)}


def additivity(model, rows: list, measured: list, args, sensitivity_loop) -> dict:
    """Sum of the per-layer measured distortions of a plan vs the plan's own distortion."""
    import copy

    from mixqsam2.quant.calibrate import CalibrationConfig, allocate, build_plan
    from mixqsam2.quant.plan import apply_plan, state_dict_sha256
    from mixqsam2.quant.sensitivity import OutputDistortion

    distortion, sha, checks = OutputDistortion(model, sensitivity_loop), state_dict_sha256(model), {}
    errors = {r.name: {f: e for f, (_, e) in r.options.items()} for r in measured}
    for budget in (5.0, 6.0, 8.0):
        for label, table in (("wais", rows), ("measured", measured)):
            config = CalibrationConfig(budget_bits=budget, block_size=args.block_size, importance=label)
            plan = build_plan(table, allocate(table, config), config, args.model, sha, {})
            checks[f"{label}@{budget:g}"] = {
                "sum_of_layers": sum(errors[name][layer["format"]] for name, layer in plan.layers.items()),
                "whole_plan": distortion.measure(apply_plan(copy.deepcopy(model), plan))}
    return checks


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixqsam2.fileio import write_figure_atomic

    fig, ax = plt.subplots(figsize=(6, 5))
    for fmt, color in (("int8", "#55a868"), ("int4", "#dd8452")):
        chosen = [p for p in points if p["format"] == fmt and p["measured"] > 0]
        ax.scatter([p["wais"] * p["nsr"] for p in chosen], [p["measured"] for p in chosen], s=12, color=color, label=fmt)
    ax.set(xscale="log", yscale="log", xlabel="WAIS x expected NSR (default objective)",
           ylabel="measured output distortion, this layer alone", title="per-layer error: proxy vs measured")
    ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model
    from mixqsam2.quant.calibrate import (CalibrationConfig, collect_statistics, layer_formats, layer_table,
                                          make_forward_loop, target_layers, with_measured_errors)

    out = Path(args.out)
    sets = mixed_precision.data(out.parent / "data", mixed_precision.parse_args([]))  # its calibration sets
    model = build_model(args.model, args.checkpoint)
    layers = target_layers(model)
    config = CalibrationConfig(budget_bits=16, block_size=args.block_size)
    observers = collect_statistics(layers, make_forward_loop(sets["calib_images"], sets["calib_videos"]), model)
    rows = layer_table(layers, layer_formats(layers, config), observers, config)
    sensitivity_loop = make_forward_loop(sets["calib_images"][:8], sets["calib_videos"][:2], 8, progress=False)
    start = time.perf_counter()
    measured = with_measured_errors(rows, model, layers, config, sensitivity_loop)
    seconds = time.perf_counter() - start
    points = [{"layer": r.name, "format": fmt, "wais": r.wais, "nsr": r.options[fmt][1],
               "measured": m.options[fmt][1]}
              for r, m in zip(rows, measured) for fmt in r.options if fmt in ("int8", "int4")]
    result = {"model": args.model, "block_size": args.block_size, "measure_seconds": seconds,
              "spearman": {fmt: correlations([p for p in points if p["format"] == fmt]) for fmt in ("int8", "int4")}
              | {"all": correlations(points)}, "additivity": additivity(model, rows, measured, args, sensitivity_loop),
              "points": points}
    write_json_atomic(out, result)
    plot(points, out.with_suffix(".png"))
    print("| formats | layers | WAIS x NSR | NSR | WAIS |\n|---|---|---|---|---|")
    for fmt, c in result["spearman"].items():
        print(f"| {fmt} | {c['layers']} | {c['wais_x_nsr']:.2f} | {c['nsr']:.2f} | {c['wais']:.2f} |")
    print(f"measured in {seconds:.0f} s\n\n| plan | sum of per-layer distortions | whole plan |\n|---|---|---|")
    for name, check in result["additivity"].items():
        print(f"| {name} | {check['sum_of_layers']:.3g} | {check['whole_plan']:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
