"""One memory-bank table over several runs of ``memory_bank.py`` on disjoint video sets.

Each input is a result JSON of ``benchmarks/memory_bank.py`` (same checkpoint and settings, other
seeds). The configurations every input ran are pooled object by object (object names carry
their seed, so none collide) and summarized as ``memory_bank.py`` does: strata by FIFO@6,
paired bootstrap intervals, goal verdicts. Cost (timing and FLOPs) is taken from
``--cost`` (default: the first input), so a run timed on another model can supply it.
``--against`` compares every configuration with another model's FIFO@6 on the same videos
(e.g. a fine-tune against the shipped model), on that model's working and lost tracks and per
generator, and what each read (e.g. a pooled one) costs each model against its own FIFO@6.

    python benchmarks/memory_bank_combine.py out/bench/memory_bank_pool_recolor.json \\
        out/bench/memory_bank_recolor_9103.json --cost out/bench/memory_bank_pool_recolor_hiera.json \\
        --out out/bench/memory_bank_pool_combined.json --plot benchmarks/figures/memory_bank_pool.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import memory_bank  # noqa: E402  (the benchmark whose results this combines)


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="memory_bank.py result JSONs (disjoint seeds)")
    parser.add_argument("--cost", help="result JSON whose timing and FLOPs the table shows (default: the first)")
    parser.add_argument("--out", required=True, help="combined result JSON (the table as Markdown next to it)")
    parser.add_argument("--plot", help="the figure of memory_bank.py for the combined runs (PNG)")
    parser.add_argument("--against", nargs="+", help="memory_bank.py results of another model on the same videos")
    return parser.parse_args(argv)


def pool_runs(results: list[dict]) -> dict:
    """``spec`` (the seeds of all inputs), and ``runs`` and ``first_mask`` per object, of the
    configurations every input ran.

    >>> run = lambda **scores: {"capacity": 6, "per_object": scores}
    >>> a = {"spec": {"checkpoint": "c", "seeds": [1]}, "runs": {"fifo@6": run(x=0.9), "fifo@3": run(x=0.8)},
    ...      "first_mask": {"x": 0.1}}
    >>> b = {"spec": {"checkpoint": "c", "seeds": [2]}, "runs": {"fifo@6": run(y=0.2)}, "first_mask": {"y": 0.1}}
    >>> pooled = pool_runs([a, b])
    >>> list(pooled["runs"]), sorted(pooled["runs"]["fifo@6"]["per_object"]), pooled["spec"]["seeds"]
    (['fifo@6'], ['x', 'y'], [1, 2])
    """
    from mixqsam2.errors import UserInputError

    specs = [{k: v for k, v in r["spec"].items() if k != "seeds"} for r in results]
    if any(spec != specs[0] for spec in specs):
        raise UserInputError(f"the results were run with other settings: {specs}")
    keys = [k for k in results[0]["runs"] if all(k in r["runs"] for r in results)]
    runs = {k: {**results[0]["runs"][k],
                "per_object": {u: s for r in results for u, s in r["runs"][k]["per_object"].items()}} for k in keys}
    return {"spec": {**specs[0], "seeds": [s for r in results for s in r["spec"]["seeds"]]}, "runs": runs,
            "first_mask": {u: s for r in results for u, s in r["first_mask"].items()}}


def combine(results: list[dict], cost: dict) -> dict:
    """:func:`pool_runs` with ``summary``, ``goal`` and ``table`` as ``memory_bank.py`` makes
    them, the cost (``timing``, ``flops``) taken from ``cost``."""
    combined = {**pool_runs(results), "timing": cost["timing"], "flops": cost["flops"]}
    combined["summary"] = memory_bank.summaries(combined["runs"], combined["first_mask"])
    combined["goal"] = memory_bank.goal(combined["summary"], combined["timing"])
    combined["table"] = memory_bank.table(combined)
    return combined


def read_cost(runs: dict, key: str) -> dict[str, float]:
    """Per object: what reading through ``key`` costs against the same model's FIFO@6 (J&F
    difference, negative = worse).

    >>> run = lambda **scores: {"per_object": scores}
    >>> cost = read_cost({"fifo@6": run(x=0.9, y=0.5), "fifo@6:pool4": run(x=0.7, y=0.5)}, "fifo@6:pool4")
    >>> {u: round(c, 3) for u, c in cost.items()}
    {'x': -0.2, 'y': 0.0}
    """
    baseline = runs[memory_bank.BASELINE]["per_object"]
    return {u: s - baseline[u] for u, s in runs[key]["per_object"].items()}


def against(combined: dict, other: dict) -> dict:
    """Paired per object, ``combined`` against ``other`` (another model on the same videos), in
    the strata of ``other``'s FIFO@6 (all, working, lost) and per generator:

    - ``jf``: every configuration of ``combined`` minus ``other``'s FIFO@6;
    - ``read_cost``: for each configuration both ran besides FIFO@6, its :func:`read_cost` on
      ``combined`` minus its cost on ``other`` (> 0: this model loses less by reading that way).

    >>> run = lambda **scores: {"capacity": 6, "per_object": scores}
    >>> this = {"runs": {"fifo@6": run(**{"a/1": 0.9, "b/1": 0.4}), "fifo@6:pool4": run(**{"a/1": 0.9, "b/1": 0.3})}}
    >>> that = {"spec": {"checkpoint": "v1"},
    ...         "runs": {"fifo@6": run(**{"a/1": 0.8, "b/1": 0.4}), "fifo@6:pool4": run(**{"a/1": 0.6, "b/1": 0.4})}}
    >>> rows = against(this, that)
    >>> round(rows["jf"]["fifo@6"]["a"]["mean"], 3), round(rows["read_cost"]["fifo@6:pool4"]["all"]["mean"], 3)
    (0.1, 0.05)
    """
    from mixqsam2.errors import UserInputError

    if memory_bank.BASELINE not in other["runs"]:
        raise UserInputError(f"--against: the results have no {memory_bank.BASELINE} run")
    reference = other["runs"][memory_bank.BASELINE]["per_object"]
    shared = [k for k in combined["runs"] if k in other["runs"] and k != memory_bank.BASELINE]
    runs = [*combined["runs"].values(), *(other["runs"][k] for k in shared)]
    if any(set(r["per_object"]) != set(reference) for r in runs):
        raise UserInputError("--against: the results cover other objects")
    groups = {**memory_bank.strata(reference), **memory_bank.generators(reference)}

    def by_group(scores: dict[str, float], ref: dict[str, float]) -> dict:
        return {name: memory_bank.compare(scores, ref, units) for name, units in groups.items()}

    return {"checkpoint": other["spec"]["checkpoint"], "objects": {name: len(u) for name, u in groups.items()},
            "jf": {k: by_group(r["per_object"], reference) for k, r in combined["runs"].items()},
            "read_cost": {k: by_group(read_cost(combined["runs"], k), read_cost(other["runs"], k)) for k in shared}}


def against_table(rows: dict) -> str:
    """Markdown of :func:`against`."""
    names = list(rows["objects"])
    header = ["", "| config | " + " | ".join(f"{n} ({rows['objects'][n]})" for n in names) + " |",
              "|---|" + "---|" * len(names)]

    def body(part: str) -> list[str]:
        return [f"| {k} | " + " | ".join(memory_bank._diff(row[n]) for n in names) + " |" for k, row in rows[part].items()]

    lines = [f"each configuration minus {rows['checkpoint']}'s {memory_bank.BASELINE}, paired per object (strata: "
             f"its working / lost tracks under {memory_bank.BASELINE}, and per generator)", *header, *body("jf")]
    if rows["read_cost"]:
        lines += ["", f"read cost (config − {memory_bank.BASELINE} of the same model), this model's minus "
                  f"{rows['checkpoint']}'s; > 0: this model loses less", *header, *body("read_cost")]
    return "\n".join(lines) + "\n"


def read_results(paths: list[str]) -> list[dict]:
    """The ``memory_bank.py`` results in ``paths``; anything else is refused."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import read_json

    results = [read_json(Path(p), f"{p} not found") for p in paths]
    for path, result in zip(paths, results):
        if not (isinstance(result, dict) and isinstance(result.get("runs"), dict) and "spec" in result):
            raise UserInputError(f"{path} is not a result of benchmarks/memory_bank.py")
    return results


def run(args) -> int:
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic

    results = read_results(args.results)
    cost = read_results([args.cost])[0] if args.cost else results[0]
    combined = combine(results, cost)
    if args.against:
        combined["against"] = against(combined, pool_runs(read_results(args.against)))
        combined["table"] += "\n" + against_table(combined["against"])
    out = Path(args.out)
    write_json_atomic(out, combined)
    write_bytes_atomic(out.with_suffix(".md"), combined["table"].encode())
    if args.plot:
        memory_bank.plot(combined, args.plot)
    print(combined["table"])
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
