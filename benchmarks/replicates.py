"""Is model A better than model B across training seeds? One paired interval over replicate pairs.

Each ``--pair A B`` is two result JSONs of one training seed: A (e.g. a run with a new option)
and its same-seed control B, both evaluated on the same units (images, objects). Per unit, the
differences A - B are averaged over the pairs, and the percentile bootstrap resamples whole
units (``mixqsam2.eval.paired``), so the interval says whether A beats B on these units once
the seed's own noise is averaged out; each pair's own difference is shown next to it.

Accepted results: ``pico_quality.py`` (one checkpoint each; box mIoU per image and J&F per
object, plain and zoomed, per generator) and ``memory_bank.py`` / ``memory_bank_combine.py``
(J&F per object of every configuration both ran, per generator).

    python benchmarks/replicates.py --pair out/bench/v22/pico_quality_pool.json out/bench/v22/pico_quality_control.json \\
        --pair out/bench/v22/pico_quality_pool_s9.json out/bench/v22/pico_quality_control_s9.json \\
        --out out/bench/v22/replicates_pico_quality.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PICO_QUALITY_METRICS = {"box_miou": "per_image", "box_miou_zoom": "per_image_zoom", "JF": "per_object",
                        "JF_track_zoom": "per_object_track_zoom"}


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
                        help="result JSONs of one seed: the model, then its control")
    parser.add_argument("--out", required=True, help="result JSON (the table as Markdown next to it)")
    return parser.parse_args(argv)


def unit_scores(result: dict) -> dict[tuple[str, str], dict[str, float]]:
    """``{(set, metric): {unit: score}}`` of a ``pico_quality.py`` or ``memory_bank.py`` result.

    >>> bank = {"runs": {"fifo@6": {"per_object": {"heldout/s1/v0#1": 0.5, "train-gen/s1/v0#1": 0.7}}}}
    >>> unit_scores(bank)[("heldout", "fifo@6")]
    {'heldout/s1/v0#1': 0.5}
    """
    from mixqsam2.errors import UserInputError

    if "runs" in result:
        out: dict[tuple[str, str], dict[str, float]] = {}
        for config, run in result["runs"].items():
            for unit, score in run["per_object"].items():
                out.setdefault((unit.split("/")[0], config), {})[unit] = score
        return out
    if len(result.get("results", {})) != 1:
        raise UserInputError("a pico_quality result of exactly one checkpoint is needed for each side of a pair")
    (sets,) = result["results"].values()
    return {(name, metric): sets[name][key] for name in sets for metric, key in PICO_QUALITY_METRICS.items()
            if key in sets[name]}


def replicated_difference(pairs: list[tuple[dict, dict]]) -> dict:
    """Per (set, metric) that every result has: the units all pairs scored, the paired interval
    of the per-unit mean over pairs of A - B (``pooled``), and each pair's own (``per_pair``).

    >>> bank = lambda **s: {"runs": {"fifo@6": {"per_object": {f"g/{u}": v for u, v in s.items()}}}}
    >>> seed1 = (bank(x=0.9, y=0.5), bank(x=0.7, y=0.5))
    >>> seed2 = (bank(x=0.6, y=0.6), bank(x=0.6, y=0.4))
    >>> row = replicated_difference([seed1, seed2])["g/fifo@6"]
    >>> row["units"], round(row["pooled"]["mean"], 3), [round(d["mean"], 3) for d in row["per_pair"]]
    (2, 0.1, [0.1, 0.1])
    """
    from mixqsam2.errors import UserInputError
    from mixqsam2.eval.paired import paired_difference

    scored = [(unit_scores(a), unit_scores(b)) for a, b in pairs]
    keys = [k for k in scored[0][0] if all(k in a and k in b for a, b in scored)]
    if not keys:
        raise UserInputError("the results share no set and metric")
    out = {}
    for key in keys:
        units = sorted(set.intersection(*(set(a[key]) & set(b[key]) for a, b in scored)))
        if not units:
            raise UserInputError(f"the pairs share no unit in {key[0]} {key[1]}")
        diffs = np.array([[a[key][u] - b[key][u] for u in units] for a, b in scored])
        zero = dict.fromkeys(units, 0.0)
        out[f"{key[0]}/{key[1]}"] = {
            "units": len(units), "pooled": paired_difference(dict(zip(units, diffs.mean(axis=0))), zero),
            "per_pair": [paired_difference(dict(zip(units, d)), zero) for d in diffs]}
    return out


def table(rows: dict, pairs: int) -> str:
    """Markdown: one row per set and metric."""
    def diff(d: dict) -> str:
        return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"

    lines = [f"A - B paired per unit [95% CI]: mean over {pairs} seed pairs, and each pair", "",
             "| set / metric | units | over the pairs | " + " | ".join(f"pair {i + 1}" for i in range(pairs)) + " |",
             "|---|---|---|" + "---|" * pairs]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['units']} | **{diff(row['pooled'])}** | "
                     + " | ".join(diff(d) for d in row["per_pair"]) + " |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from mixqsam2.fileio import read_json, write_bytes_atomic, write_json_atomic

    pairs = [tuple(read_json(Path(p), f"{p} not found") for p in pair) for pair in args.pair]
    rows = replicated_difference(pairs)
    out = Path(args.out)
    write_json_atomic(out, {"pairs": args.pair, "differences": rows})
    write_bytes_atomic(out.with_suffix(".md"), table(rows, len(pairs)).encode())
    print(table(rows, len(pairs)))
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
