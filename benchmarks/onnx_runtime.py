"""Per-graph CPU latency of the exported graphs: torch eager vs ONNX Runtime (fp32, a plan, all-int8).

For each model: the graphs are exported without a plan, with the given plan and with an
all-int8 plan (every layer int8, as a uniform int8 deployment), then each
graph is timed on the same inputs (the export's tracing inputs: 1 object) in one process,
interleaved, median of ``--repeats``. ORT graphs run both ways: ``exact`` (the graph as
written: dequantize + float kernels, what parity checks use) and ``fast`` (ORT's integer
kernels, and memory attention's attention products in int8; on the fp32 export ``fast`` is
the latter alone). Also: per-frame ms of a whole tracked stream against the number of objects
(1, 4, 16) for the torch tracker and the batched ORT pipeline, and file sizes per precision.

    mixqsam2 calibrate --model pico --images IMGS --videos VIDS --formats int8 --budget-bits 8 --out int8.json
    python benchmarks/onnx_runtime.py --model pico --plan plan.json --int8-plan int8.json --objects --out out/bench/onnx_pico.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

GRAPHS = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "sis_update.sis")


def median_ms(run, inputs, repeats: int) -> float:
    run(inputs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(inputs)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def graph_latency(model, folders: dict[str, Path], graphs, repeats: int, threads: int, variants=None) -> dict:
    """{graph: {variant: median ms}} with every variant (or those named in ``variants``) timed in
    turn on the same inputs."""
    from mixqsam2.export.onnx_graphs import example_inputs
    from mixqsam2.models.graphs import TorchGraphs
    from mixqsam2.runtime.ort_backend import OrtGraphs

    torch_graphs = TorchGraphs(model, capacity=json.loads((folders["fp32"] / "manifest.json").read_text())["bank_capacity"])
    runners = {"torch eager": torch_graphs}
    for name, folder in folders.items():
        for k in ("exact", "fast"):
            label = f"ort {name}" + ("" if (name, k) == ("fp32", "exact") else f" ({k})")
            runners[label] = OrtGraphs(folder, threads, kernels=k)
    runners = {label: runner for label, runner in runners.items() if variants is None or label in variants}
    table = {}
    for graph in graphs:
        inputs = example_inputs(graph.split(".")[0], torch_graphs.config, torch_graphs.capacity, objects=1)
        table[graph] = {label: median_ms(lambda x, r=r: r.run(graph, x), inputs, repeats) for label, r in runners.items()}
        print(graph, {k: round(v, 2) for k, v in table[graph].items()}, flush=True)
    return table


def objects_scaling(model, fp32_folder: Path, threads: int, counts=(1, 4, 16), frames: int = 6) -> dict:
    """Mean per-frame ms of a stream of generated frames with N box-prompted objects."""
    from mixqsam2.memory.prompts import Prompt
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.runtime.ort_backend import OrtGraphs

    rng = np.random.default_rng(0)
    frames_rgb = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(frames)]
    result = {}
    for count in counts:
        boxes = {k + 1: Prompt(box=(10 + 30 * (k % 16), 10 + 20 * (k // 4), 60 + 30 * (k % 16), 60 + 20 * (k // 4)))
                 for k in range(count)}
        row = {}
        for label, graphs in (("torch tracker", model), ("ort batched", OrtGraphs(fp32_folder, threads))):
            tracker = StreamingTracker(graphs, num_frames=frames)
            tracker.step(frames_rgb[0], boxes)
            start = time.perf_counter()
            for rgb in frames_rgb[1:]:
                tracker.step(rgb)
            row[label] = 1000 * (time.perf_counter() - start) / (frames - 1)
        result[count] = row
        print(f"{count} objects", {k: round(v, 1) for k, v in row.items()}, flush=True)
    return result


def file_sizes(folders: dict[str, Path], graphs) -> dict:
    return {name: {g: (folder / f"{g}.onnx").stat().st_size for g in graphs} for name, folder in folders.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pico")
    parser.add_argument("--checkpoint")
    parser.add_argument("--plan", required=True, help="a deployable plan for this model (mixqsam2 calibrate)")
    parser.add_argument("--int8-plan", required=True, help="every layer int8 (mixqsam2 calibrate --formats int8 --budget-bits 8)")
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--variants", nargs="+", help="time only these, e.g. 'ort fp32' 'ort plan (fast)' (all seven "
                                                        "sessions of hiera_t's memory attention need ~20 GB)")
    parser.add_argument("--objects", action="store_true", help="also time whole streams with 1, 4, 16 objects")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for torch and ONNX Runtime alike (1: robust on a shared machine, where "
                             "2-thread OpenMP spin-waits slow torch 25x when the other core is busy)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from mixqsam2.export import export_model
    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.models import build_model

    torch.set_num_threads(args.threads)
    model = build_model(args.model, args.checkpoint)
    work = Path(tempfile.mkdtemp(prefix="onnx-bench-"))
    plans = {"fp32": None, "plan": Path(args.plan), "int8": Path(args.int8_plan)}
    folders = {}
    for name, plan in plans.items():
        folders[name] = work / name
        export_model(model, args.model, folders[name], plan_path=plan)
    result = {
        "model": args.model, "plan": args.plan,
        "effective_bits": json.loads(Path(args.plan).read_text())["effective_bits"],
        "threads": args.threads,
        "latency_ms": graph_latency(model, folders, args.graphs, args.repeats, args.threads, args.variants),
        "file_bytes": file_sizes(folders, [g for g in GRAPHS if not g.startswith("sis")]),
    }
    if args.objects:
        result["per_frame_ms_by_objects"] = objects_scaling(model, folders["fp32"], args.threads)
    write_json_atomic(args.out, result)
    print(json.dumps(result["file_bytes"], indent=1))


if __name__ == "__main__":
    main()
