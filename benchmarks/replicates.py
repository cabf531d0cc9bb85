"""Is model A better than model B across training seeds? One interval over replicate pairs.

Each ``--pair A B`` is two result JSONs of one training seed: A (e.g. a run with a new option)
and its same-seed control B, evaluated with the same settings on the same units (images,
objects). Per unit, the differences A - B are averaged over the pairs. Two intervals: the
paired bootstrap over units of those averages (how these trained models compare on these
units), and a two-level bootstrap over pairs and then units (``mixqsam2.eval.paired``), which
pairs that disagree widen (whether the option wins across seeds; crude with two pairs). Each
pair's own paired interval stands beside them, and ``agree`` says whether every pair's mean
has the sign of the average.

Accepted results: ``pico_quality.py`` (one checkpoint each; box mIoU per image and J&F per
object, plain and zoomed, per generator) and ``memory_bank.py`` / ``memory_bank_combine.py``
(J&F per object of every configuration, per generator). Sets and metrics that some result
lacks are left out; units that some pair did not score are counted as ``dropped``.

    python benchmarks/replicates.py --pair out/bench/v22/pico_quality_pool.json out/bench/v22/pico_quality_control.json \\
        --pair out/bench/v22/pico_quality_pool_s9.json out/bench/v22/pico_quality_control_s9.json \\
        --out out/bench/v22/replicates_pico_quality.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import memory_bank  # noqa: E402  (object names per generator, the interval format)

PICO_QUALITY_METRICS = {"box_miou": "per_image", "box_miou_zoom": "per_image_zoom", "JF": "per_object",
                        "JF_track_zoom": "per_object_track_zoom"}
PICO_QUALITY_SETTINGS = ("frames", "video_seeds", "box_zoom", "track_zoom")


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
                        help="result JSONs of one seed: the model, then its control")
    parser.add_argument("--out", required=True, help="result JSON (the table as Markdown next to it)")
    return parser.parse_args(argv)


def settings(result: dict) -> dict:
    """What must match for two results to have scored the same units: a ``memory_bank.py``
    result's spec but its checkpoint, or ``pico_quality.py``'s data settings.

    >>> settings({"spec": {"checkpoint": "a.pt", "frames": 200, "seeds": [9101, 9102]}, "runs": {}})
    {'frames': 200, 'seeds': [9101, 9102]}
    """
    from mixqsam2.errors import UserInputError

    if not isinstance(result, dict) or not isinstance(result.get("runs", result.get("results")), dict):
        raise UserInputError("not a result of benchmarks/pico_quality.py or memory_bank.py")
    if "runs" in result:
        return {k: v for k, v in result["spec"].items() if k != "checkpoint"}
    return {k: result.get(k) for k in PICO_QUALITY_SETTINGS}


def unit_scores(result: dict) -> dict[tuple[str, str], dict[str, float]]:
    """``{(set, metric): {unit: score}}`` of a ``pico_quality.py`` or ``memory_bank.py`` result.

    >>> bank = {"runs": {"fifo@6": {"per_object": {"heldout/s1/v0#1": 0.5, "train-gen/s1/v0#1": 0.7}}}}
    >>> unit_scores(bank)[("heldout", "fifo@6")]
    {'heldout/s1/v0#1': 0.5}
    """
    from mixqsam2.errors import UserInputError

    if "runs" in result:
        return {(generator, config): {u: run["per_object"][u] for u in units}
                for config, run in result["runs"].items()
                for generator, units in memory_bank.generators(run["per_object"]).items()}
    if len(result["results"]) != 1:
        raise UserInputError("a pico_quality result of exactly one checkpoint is needed for each side of a pair")
    (sets,) = result["results"].values()
    return {(name, metric): sets[name][key] for name in sets for metric, key in PICO_QUALITY_METRICS.items()
            if key in sets[name]}


def replicated_differences(pairs: list[tuple[dict, dict]]) -> dict:
    """Per set and metric that every result has: the units all pairs scored (and how many
    some pair lacks), the mean over pairs of A - B with its interval over units (``units_only``)
    and over pairs and units (``pairs_and_units``), each pair's own (``per_pair``), and ``agree``.

    >>> bank = lambda **s: {"runs": {"fifo@6": {"per_object": {f"g/{u}": v for u, v in s.items()}}}}
    >>> seed1 = (bank(x=0.9, y=0.5), bank(x=0.7, y=0.5))
    >>> seed2 = (bank(x=0.6, y=0.6), bank(x=0.6, y=0.4))
    >>> row = replicated_differences([seed1, seed2])["g/fifo@6"]
    >>> row["units"], round(row["units_only"]["mean"], 3), [round(d["mean"], 3) for d in row["per_pair"]], row["agree"]
    (2, 0.1, [0.1, 0.1], True)
    """
    from mixqsam2.errors import UserInputError
    from mixqsam2.eval.paired import paired_difference, replicated_difference

    scored = [(unit_scores(a), unit_scores(b)) for a, b in pairs]
    keys = [k for k in scored[0][0] if all(k in a and k in b for a, b in scored)]
    if not keys:
        raise UserInputError("the results share no set and metric")
    out = {}
    for key in keys:
        sides = [(a[key], b[key]) for a, b in scored]
        units = sorted(set.intersection(*(set(a) & set(b) for a, b in sides)))
        if not units:
            raise UserInputError(f"the pairs share no unit in {key[0]} {key[1]}")
        average = {u: float(np.mean([a[u] - b[u] for a, b in sides])) for u in units}
        per_pair = [paired_difference({u: a[u] for u in units}, b) for a, b in sides]
        units_only = paired_difference(average, dict.fromkeys(units, 0.0))
        out[f"{key[0]}/{key[1]}"] = {
            "units": len(units), "dropped": len(set().union(*(set(a) | set(b) for a, b in sides))) - len(units),
            "units_only": units_only, "pairs_and_units": replicated_difference(sides), "per_pair": per_pair,
            "agree": all(np.sign(d["mean"]) == np.sign(units_only["mean"]) for d in per_pair)}
    return out


def table(rows: dict, pairs: int) -> str:
    """Markdown: one row per set and metric."""
    diff = memory_bank._diff
    lines = [f"A - B paired per unit [95% CI], averaged over {pairs} seed pairs: intervals over units, and over "
             "pairs then units; then each pair's own", "",
             "| set / metric | units | mean, over units | over pairs and units | pairs agree | "
             + " | ".join(f"pair {i + 1}" for i in range(pairs)) + " |", "|---|---|---|---|---|" + "---|" * pairs]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['units']} | **{diff(row['units_only'])}** | {diff(row['pairs_and_units'])} | "
                     f"{'yes' if row['agree'] else 'no'} | " + " | ".join(diff(d) for d in row["per_pair"]) + " |")
    return "\n".join(lines) + "\n"


def read_pairs(pairs: list[list[str]]) -> list[tuple[dict, dict]]:
    """The results of each pair, refused unless every file is given once and all were made
    with the same settings."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import read_json

    paths = [p for pair in pairs for p in pair]
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise UserInputError("a result is given twice; each side of each pair is its own run")
    results = {}
    for path in paths:
        try:
            result = read_json(Path(path), f"{path} not found")
            results[path] = (result, settings(result))
        except UserInputError as exc:
            raise UserInputError(f"{path}: {exc}") from None
    first, (_, reference) = paths[0], results[paths[0]]
    for path, (_, setting) in results.items():
        if setting != reference:
            raise UserInputError(f"{path} was made with other settings than {first}: {setting} against {reference}")
    return [(results[a][0], results[b][0]) for a, b in pairs]


def run(args) -> int:
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic

    rows = replicated_differences(read_pairs(args.pair))
    out, markdown = Path(args.out), table(rows, len(args.pair))
    write_json_atomic(out, {"pairs": args.pair, "differences": rows})
    write_bytes_atomic(out.with_suffix(".md"), markdown.encode())
    print(markdown)
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
