"""Should a trained candidate replace the bundled pico? A fixed gate over finished results.

Fix the thresholds before the candidate is evaluated, then run this on its results; it
decides nothing the results do not already say, but it says it the same way every time.
The candidate ships only if every criterion passes:

- ``long videos, held out``: on 200-frame held-out videos never used to choose anything
  (``memory_bank.py`` at fresh first seeds, combined with ``memory_bank_combine.py --against``
  the bundled model's runs on them), candidate - bundled at FIFO@6, paired per object, has
  its whole 95 % interval above 0;
- ``long videos, generator 3``: the same on the training generator's videos, mean >=
  ``-video_tolerance``;
- ``boxes, held out`` / ``boxes, generator 3`` (``pico_quality.py``, the bundled checkpoint
  first and the candidate second, in one run or ``--merge``d): mean difference >=
  ``-box_tolerance``;
- ``present scored absent`` / ``absent scored absent`` (``object_scores.py``, held-out videos):
  the candidate calls present targets absent at most ``absent_ratio`` times as often as the
  bundled model, and absent targets absent at least 1 / ``absent_ratio`` times as often; a
  model that stops saying "absent" fails as one that says it too readily.

Issue 13's floors (held-out box mIoU >= 0.80 and >= fill-the-box + 0.05; held-out J&F >=
0.65 on the long videos) are reported beside, for the candidate; they do not decide.
The inputs must describe the same two models: each result records its checkpoint paths, and
a bank made against another model, a quality file merged in the other order or swapped
object-score files are refused. Exit code 0: ship; 1: do not ship; 2: unusable input.

    python benchmarks/bundle_gate.py --bank out/bench/v23/memory_bank_s11_vs_v21.json \\
        --quality out/bench/v23/pico_quality_v21_s11.json \\
        --object-scores out/bench/v23/object_scores_v21.json out/bench/v23/object_scores_s11.json \\
        --out out/bench/v23/gate_s11.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError

sys.path.insert(0, str(Path(__file__).parent))
import memory_bank  # noqa: E402  (the baseline configuration, objects per generator, the interval format)

BOX_FLOOR, BOX_OVER_FILL, JF_FLOOR = 0.80, 0.05, 0.65
MIN_FRAMES = 100  # issue 13's videos of 100+ frames


def at_least_one(text: str) -> float:
    value = float(text)
    if not 1.0 <= value < math.inf:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {text}")
    return value


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser, probability

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", required=True,
                        help="memory_bank_combine.py result of the candidate, --against the bundled model")
    parser.add_argument("--quality", required=True,
                        help="pico_quality.py result: the bundled checkpoint, then the candidate")
    parser.add_argument("--object-scores", nargs=2, required=True, metavar=("BUNDLED", "CANDIDATE"),
                        help="object_scores.py results, one checkpoint each")
    parser.add_argument("--box-tolerance", type=probability, default=0.01, help="largest box mIoU drop allowed (0.01)")
    parser.add_argument("--video-tolerance", type=probability, default=0.02,
                        help="largest generator-3 long-video J&F drop allowed (0.02)")
    parser.add_argument("--absent-ratio", type=at_least_one, default=1.5,
                        help="how far either absent rate may move from the bundled model's, as a factor (1.5)")
    parser.add_argument("--out", required=True, help="result JSON (the table as Markdown next to it)")
    return parser.parse_args(argv)


def _field(result: dict, keys: tuple[str, ...], what: str):
    """``result[k1][k2]...``, or a clear refusal naming ``what`` and the missing entry."""
    node = result
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise UserInputError(f"{what} has no {' / '.join(keys)!r}")
        node = node[key]
    return node


def _number(result: dict, keys: tuple[str, ...], what: str) -> float:
    """:func:`_field` that must be a finite number."""
    value = _field(result, keys, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserInputError(f"{what}: {' / '.join(keys)!r} is not a number ({value!r})")
    return float(value)


def _interval(result: dict, keys: tuple[str, ...], what: str) -> dict:
    """A paired-difference entry (``mean``, ``low``, ``high``, ``units``) of a result."""
    return {k: _number(result, (*keys, k), what) for k in ("mean", "low", "high", "units")}


def _criterion(name: str, value: float, threshold: float, passed: bool, detail: str) -> dict:
    return {"criterion": name, "value": float(value), "threshold": float(threshold), "pass": bool(passed),
            "detail": detail}


def video_criteria(bank: dict, video_tolerance: float) -> list[dict]:
    """The long-video criteria from a ``memory_bank_combine.py --against`` result.

    >>> d = lambda m, lo, hi: {"mean": m, "low": lo, "high": hi, "units": 40}
    >>> bank = {"against": {"jf": {"fifo@6": {"heldout": d(0.03, 0.01, 0.06), "train-gen": d(-0.03, -0.07, 0.01)}}}}
    >>> [c["pass"] for c in video_criteria(bank, 0.02)]
    [True, False]
    """
    what = "the --bank result (made with memory_bank_combine.py --against)"
    held, gen3 = (_interval(bank, ("against", "jf", memory_bank.BASELINE, s), what) for s in ("heldout", "train-gen"))
    return [_criterion("long videos, held out", held["low"], 0.0, held["low"] > 0,
                       f"{memory_bank._diff(held)}, {held['units']:.0f} objects"),
            _criterion("long videos, generator 3", gen3["mean"], -video_tolerance, gen3["mean"] >= -video_tolerance,
                       f"{memory_bank._diff(gen3)}, {gen3['units']:.0f} objects")]


def quality_names(quality: dict) -> tuple[str, str]:
    """(bundled, candidate): the two checkpoints of a ``pico_quality.py`` result, in order."""
    checkpoints = _field(quality, ("checkpoints",), "the --quality result")
    if not isinstance(checkpoints, dict) or len(checkpoints) != 2:
        raise UserInputError("the --quality result must hold two checkpoints (bundled, candidate)")
    bundled, candidate = checkpoints
    return bundled, candidate


def box_criteria(quality: dict, box_tolerance: float) -> list[dict]:
    """Candidate - bundled box mIoU per generator, from the result's paired comparisons."""
    bundled, candidate = quality_names(quality)
    out = []
    for name, key in (("boxes, held out", "heldout"), ("boxes, generator 3", "train-gen")):
        d = _interval(quality, ("comparisons", f"{candidate}-{bundled}/{key}", "box_miou"), "the --quality result")
        out.append(_criterion(name, d["mean"], -box_tolerance, d["mean"] >= -box_tolerance,
                              f"{memory_bank._diff(d)}, {d['units']:.0f} images"))
    return out


def absent_rates(scores: dict, what: str) -> tuple[float, float]:
    """(present scored absent, absent scored absent) of an ``object_scores.py`` result of one checkpoint.

    >>> absent_rates({"results": {"m": {"present": 200, "missed": 10, "absent": 50,
    ...                                 "scored_absent_when_absent": 20}}}, "x")
    (0.05, 0.4)
    """
    results = _field(scores, ("results",), what)
    if not isinstance(results, dict) or len(results) != 1:
        raise UserInputError(f"{what} must hold the results of one checkpoint")
    (name,) = results
    present, missed, absent, called = (_number(scores, ("results", name, k), what)
                                       for k in ("present", "missed", "absent", "scored_absent_when_absent"))
    if not present or not absent:
        raise UserInputError(f"{what} has no present or no absent targets to rate")
    return missed / present, called / absent


def absent_criteria(bundled: dict, candidate: dict, ratio: float) -> list[dict]:
    """The object score, both ways: present targets called absent no more than ``ratio`` x the
    bundled model's rate, absent ones called absent no less than its rate / ``ratio``."""
    (b_missed, b_absent), (c_missed, c_absent) = (absent_rates(bundled, "the bundled object scores"),
                                                  absent_rates(candidate, "the candidate's object scores"))
    return [_criterion("present scored absent", c_missed, ratio * b_missed, c_missed <= ratio * b_missed,
                       f"{c_missed:.1%} (bundled {b_missed:.1%})"),
            _criterion("absent scored absent", c_absent, b_absent / ratio, c_absent >= b_absent / ratio,
                       f"{c_absent:.1%} (bundled {b_absent:.1%})")]


def floors(bank: dict, quality: dict) -> list[dict]:
    """Issue 13's floors for the candidate, held out (reported, not deciding)."""
    _, candidate = quality_names(quality)
    box, fill = (_number(quality, ("results", candidate, "heldout", k), "the --quality result")
                 for k in ("box_miou", "box_fill_miou"))
    per_object = _field(bank, ("runs", memory_bank.BASELINE, "per_object"), "the --bank result")
    held = [_number(per_object, (k,), "the --bank result")
            for k in sorted(memory_bank.generators(per_object).get("heldout", ()))]
    if not held:
        raise UserInputError("the --bank result has no held-out objects")
    jf, over_fill = float(np.mean(held)), box - fill
    frames = int(_number(bank, ("spec", "frames"), "the --bank result"))
    return [_criterion("box mIoU, held out", box, BOX_FLOOR, box >= BOX_FLOOR, ""),
            _criterion("box mIoU over fill-the-box, held out", over_fill, BOX_OVER_FILL,
                       over_fill >= BOX_OVER_FILL, ""),
            _criterion(f"J&F, held out, {frames} frames, FIFO@6", jf, JF_FLOOR, jf >= JF_FLOOR, "")]


def _checkpoint(result: dict, keys: tuple[str, ...], what: str) -> str:
    path = _field(result, keys, what)
    if not isinstance(path, str):
        raise UserInputError(f"{what}: {' / '.join(keys)!r} is not a checkpoint path")
    return os.path.normpath(path)


def check_same_models(bank: dict, quality: dict, bundled_scores: dict, candidate_scores: dict) -> dict:
    """``{"bundled": path, "candidate": path}`` when every input names the same two checkpoints
    in its place and the long videos are long enough; a clear refusal otherwise."""
    bundled, candidate = quality_names(quality)
    sources = {"bundled": [("the --quality result's first checkpoint", quality, ("checkpoints", bundled)),
                           ("the model the --bank result is --against", bank, ("against", "checkpoint"))],
               "candidate": [("the --quality result's second checkpoint", quality, ("checkpoints", candidate)),
                             ("the --bank result's checkpoint", bank, ("spec", "checkpoint"))]}
    for role, scores in (("bundled", bundled_scores), ("candidate", candidate_scores)):
        results = _field(scores, ("checkpoints",), f"the {role} object scores")
        if not isinstance(results, dict) or len(results) != 1:
            raise UserInputError(f"the {role} object scores must hold the results of one checkpoint")
        sources[role].append((f"the {role} object scores' checkpoint", scores, ("checkpoints", *results)))
    models = {}
    for role, named in sources.items():
        paths = {what: _checkpoint(result, keys, what) for what, result, keys in named}
        if len(set(paths.values())) > 1:
            raise UserInputError(f"the inputs disagree on the {role} model: "
                                 + "; ".join(f"{what}: {path}" for what, path in paths.items()))
        models[role] = next(iter(paths.values()))
    if models["bundled"] == models["candidate"]:
        raise UserInputError(f"the candidate and the bundled model are the same checkpoint, {models['bundled']}")
    if _field(bundled_scores, ("data",), "the bundled object scores") != _field(candidate_scores, ("data",),
                                                                                "the candidate's object scores"):
        raise UserInputError("the two object-score results were made on other videos")
    if _number(bank, ("spec", "frames"), "the --bank result") < MIN_FRAMES:
        raise UserInputError(f"the --bank result's videos are shorter than {MIN_FRAMES} frames")
    return models


def table(gate: list[dict], floor_rows: list[dict], ship: bool) -> str:
    """Markdown: the gate, the verdict, then the floors."""
    rows = lambda cs: [f"| {c['criterion']} | {c['value']:.3f} | {c['threshold']:.3f} | "
                       f"{'pass' if c['pass'] else 'FAIL'} | {c['detail']} |" for c in cs]
    head = ["| criterion | value | threshold | | detail |", "|---|---|---|---|---|"]
    return "\n".join(["gate: candidate against the bundled pico", "", *head, *rows(gate), "",
                      f"verdict: {'ship' if ship else 'do not ship'}", "", "issue 13's floors (the candidate)", "",
                      *head, *rows(floor_rows)]) + "\n"


def run(args) -> int:
    from mixqsam2.fileio import check_output_file, read_json, write_bytes_atomic, write_json_atomic

    out = Path(args.out)
    if out.suffix != ".json":
        raise UserInputError(f"--out must name a .json file (the table goes next to it as .md), got {out}")
    for path in (out, out.with_suffix(".md")):
        check_output_file(path)
    bank, quality, bundled_scores, candidate_scores = (read_json(Path(p), f"{p} not found")
                                                       for p in (args.bank, args.quality, *args.object_scores))
    models = check_same_models(bank, quality, bundled_scores, candidate_scores)
    gate = (video_criteria(bank, args.video_tolerance) + box_criteria(quality, args.box_tolerance)
            + absent_criteria(bundled_scores, candidate_scores, args.absent_ratio))
    floor_rows = floors(bank, quality)
    ship = all(c["pass"] for c in gate)
    markdown = table(gate, floor_rows, ship)
    inputs = {"bank": args.bank, "quality": args.quality, "object_scores": args.object_scores,
              "long_video_seeds": _field(bank, ("spec", "seeds"), "the --bank result"), **models}
    write_json_atomic(out, {"inputs": inputs, "gate": gate, "ship": ship, "floors": floor_rows})
    write_bytes_atomic(out.with_suffix(".md"), markdown.encode())
    print(markdown)
    return 0 if ship else 1


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
