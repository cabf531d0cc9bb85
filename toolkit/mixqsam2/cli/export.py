"""``mixqsam2 export``: SAM2's per-frame graphs as ONNX, with a precision plan baked in.

    mixqsam2 export --model pico --plan plan.json --out out/pico-onnx
    mixqsam2 export --model sam2.1_hiera_t --checkpoint sam2.1_hiera_tiny.pt --capacity 3 --out out/hiera-t-onnx
"""

from __future__ import annotations

import argparse

from mixqsam2.cli.common import add_memory_pool_arg, add_model_args, positive_int


def add_export_parser(verbs) -> None:
    parser = verbs.add_parser("export", help="ONNX graphs (+ manifest.json) of a model, with an optional plan baked in",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--plan", help="precision plan to bake in (Q/DQ, INT4 block weights, fp16 casts)")
    parser.add_argument("--capacity", type=positive_int, help="memory-bank slots K (default num_maskmem - 1 = 6)")
    add_memory_pool_arg(parser, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace our files in an existing --out folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(run=_export)


def _export(args) -> None:
    from mixqsam2.export import export_model
    from mixqsam2.fileio import check_output_dir
    from mixqsam2.models import build_model
    from mixqsam2.quant.plan import PrecisionPlan

    check_output_dir(args.out, args.overwrite)
    if args.plan:
        PrecisionPlan.load(args.plan)  # a missing or malformed plan fails before the model is built
    model = build_model(args.model, args.checkpoint)
    manifest = export_model(model, args.model, args.out, plan_path=args.plan, capacity=args.capacity,
                            overwrite=args.overwrite, memory_pool=args.memory_pool)
    plan = manifest["plan"]
    formats = ", ".join(f"{n} {f}" for f, n in sorted(plan["formats"].items())) if plan else "fp32"
    pooled = f", read {manifest['memory_pool']}x{manifest['memory_pool']} pooled" if manifest["memory_pool"] > 1 else ""
    print(f"exported {len(manifest['graphs'])} graphs ({formats}; bank capacity {manifest['bank_capacity']}{pooled})"
          f" -> {args.out}")
