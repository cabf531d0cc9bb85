#!/usr/bin/env python3
"""Build TensorRT engines from an export folder (``mixqsam2 export ... --out DIR``).

    python deploy/build_engine.py --onnx-dir out/export --plan plan.json --out out/engines \\
        --plugin-lib build/sis/libsis_plugin.so --timing-cache out/timing.cache
    python deploy/build_engine.py --onnx-dir out/export --out out/config --dry-run --trt-version 10.3
    python deploy/build_engine.py --onnx-dir out/export --out out/attention --graphs memory_attention

The typing mode, flags, profiles and per-layer precision follow the TensorRT version
(mixqsam2.trt.config). ``--dry-run`` needs no TensorRT: it writes OUT/build_config.json and
prints it. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    from mixqsam2.cli.common import Parser

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx-dir", required=True, help="export folder (manifest.json + ONNX graphs)")
    parser.add_argument("--out", required=True, help="engine folder: <graph>.engine, engines.json, build_config.json")
    parser.add_argument("--plan", help="the precision plan the export was made with (checked against it)")
    parser.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace per engine (MiB)")
    parser.add_argument("--timing-cache", help="TensorRT timing cache file: read if present, written after the build")
    parser.add_argument("--plugin-lib", default=os.environ.get("MIXQSAM2_SIS_PLUGIN"),
                        help="libsis_plugin.so (default: $MIXQSAM2_SIS_PLUGIN)")
    parser.add_argument("--overwrite", action="store_true", help="replace our outputs in a non-empty --out")
    parser.add_argument("--dry-run", action="store_true", help="write and print the configuration, build nothing")
    parser.add_argument("--trt-version", help="TensorRT version for --dry-run (default: the installed one)")
    parser.add_argument("--graphs", nargs="+", metavar="GRAPH",
                        help="build only these graphs, e.g. memory_attention to time it (run_stream needs all)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import atomic_output_dir, check_output_dir, write_json_atomic
    from mixqsam2.trt.build import BUILD_CONFIG, build_engines, installed_version
    from mixqsam2.trt.config import TensorRTVersion, plan_engines
    from mixqsam2.export.manifest import ExportManifest

    if args.trt_version and not args.dry_run:
        raise UserInputError("--trt-version is for --dry-run; a build uses the installed TensorRT")
    manifest = ExportManifest.load(args.onnx_dir)
    version = TensorRTVersion.parse(args.trt_version) if args.trt_version else installed_version()
    plan = plan_engines(manifest, version, args.plan, args.workspace_mb, args.graphs)
    check_output_dir(args.out, args.overwrite)
    if args.dry_run:
        with atomic_output_dir(args.out, overwrite=args.overwrite, kind="build config") as tmp:
            write_json_atomic(tmp / BUILD_CONFIG, plan.to_json())
        print(json.dumps(plan.to_json(), indent=2))
        return
    index = build_engines(plan, manifest, args.out, args.plugin_lib, args.timing_cache, args.overwrite)
    print(json.dumps({graph: {k: record[k] for k in ("file", "typing")} for graph, record in index["engines"].items()},
                     indent=2))


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
