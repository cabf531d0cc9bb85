#!/usr/bin/env python3
"""Latency of every engine of one or more engine folders (deploy/build_engine.py output).

    python deploy/engine_latency.py --engine-dir out/engines-fp16 --engine-dir out/engines-plan --out latency.json

Each engine runs on random inputs of its profile's opt shapes (memory banks full, so the SIS
update merges); wall ms per run include the host <-> device copies. Prints one row per graph,
one column per folder (named by its last path part). Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def measure(folder: str, warmup: int, iterations: int) -> dict[str, dict]:
    """graph -> {"typing", "median_ms", "mean_ms"} for the engines of ``folder``."""
    import numpy as np

    from mixqsam2.trt.runtime import TensorRTRunner

    results = {}
    with TensorRTRunner(folder) as runner:
        for graph in runner.graphs:
            inputs = runner.example_inputs(graph)
            for _ in range(warmup):
                runner.run(graph, inputs)
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                runner.run(graph, inputs)
                times.append((time.perf_counter() - start) * 1e3)
            results[graph] = {"typing": runner.index["engines"][graph]["typing"],
                              "median_ms": float(np.median(times)), "mean_ms": float(np.mean(times))}
        gpu, tensorrt = runner.index["gpu"], runner.index["tensorrt"]
    return {"gpu": gpu, "tensorrt": tensorrt, "engines": results}


def table(results: dict[str, dict]) -> str:
    folders = list(results)
    graphs = sorted({g for r in results.values() for g in r["engines"]})
    rows = ["| graph | " + " | ".join(f"{Path(f).name} (ms, median)" for f in folders) + " |",
            "|---|" + "---|" * len(folders)]
    for graph in graphs:
        cells = [f"{r['engines'][graph]['median_ms']:.3f} ({r['engines'][graph]['typing']})"
                 if graph in r["engines"] else "-" for r in results.values()]
        rows.append(f"| {graph} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> None:
    from mixqsam2.fileio import write_json_atomic

    results = {folder: measure(folder, args.warmup, args.iterations) for folder in args.engine_dir}
    print(table(results))
    if args.out:
        write_json_atomic(args.out, results)


def main(argv=None) -> int:
    from mixqsam2.cli.common import Parser, positive_int, run_cli

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine-dir", action="append", required=True, help="engine folder (repeat to compare)")
    parser.add_argument("--warmup", type=positive_int, default=5)
    parser.add_argument("--iterations", type=positive_int, default=50)
    parser.add_argument("--out", help="write the results as JSON")
    return run_cli(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
