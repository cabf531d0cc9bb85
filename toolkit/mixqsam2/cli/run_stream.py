"""``run_stream``: track objects through a video, frame folder or camera.

    run_stream --demo --out out/demo
    run_stream --model pico --frames clip/ --box 40,30,120,90 --memory fifo --capacity 6 --out out/run
    run_stream --onnx-dir out/pico-onnx --video in.mp4 --point 120,80 --memory sis --out out/run-ort

Writes ``OUT/masks/<frame>.png``, ``OUT/overlay.mp4`` and ``OUT/stats.json``. Ctrl-C or
SIGTERM ends the stream after the current frame, keeping the output (``"ended": "signal"``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import numpy as np

from mixqsam2.cli.common import (add_box_zoom_arg, add_memory_args, add_ort_kernels_arg, add_track_zoom_arg,
                                 Parser, non_negative_int, positive_int, run_cli)
from mixqsam2.errors import UserInputError
from mixqsam2.runtime.backends import BACKENDS
from mixqsam2.runtime.io import MAX_READ_FAILURES

DEMO_CLIP = Path(__file__).resolve().parent.parent / "assets" / "demo_clip"


def _numbers(text: str, count: int, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UserInputError(f"{flag} expects {count} comma-separated numbers, got '{text}'")
    return values


def _prompts(args) -> dict:
    from mixqsam2.data.formats import read_label_png
    from mixqsam2.memory.prompts import Prompt

    if args.prompt_mask:
        if not Path(args.prompt_mask).is_file():
            raise UserInputError(f"prompt mask not found: {args.prompt_mask}")
        labels = read_label_png(args.prompt_mask)
        ids = [int(i) for i in np.unique(labels) if i != 0]
        if not ids:
            raise UserInputError(f"prompt mask {args.prompt_mask} is empty (no foreground pixel)")
        return {i: Prompt(mask=labels == i) for i in ids}
    if args.box:
        return {1: Prompt(box=_numbers(args.box, 4, "--box"))}
    return {1: Prompt(points=(_numbers(args.point, 2, "--point"),))}


def _tracker(args):
    from mixqsam2.memory.tracker import StreamingTracker
    from mixqsam2.runtime.backends import open_graphs, resolve_backend

    backend = resolve_backend(args.backend, args.onnx_dir, args.engine_dir)
    graphs = open_graphs(backend, "pico" if args.demo else args.model, args.checkpoint, args.onnx_dir,
                         args.engine_dir, args.capacity, args.ort_kernels, args.memory_pool)
    return StreamingTracker(graphs, memory=args.memory, capacity=args.capacity, box_zoom=args.box_zoom,
                            track_zoom=args.track_zoom, memory_pool=args.memory_pool)


def _run(args) -> int:
    from mixqsam2.fileio import check_output_dir
    from mixqsam2.runtime.io import open_source
    from mixqsam2.runtime.stream import run_stream

    check_output_dir(args.out, args.overwrite)
    if args.demo:
        args.frames = args.frames or DEMO_CLIP / "frames"
        if not (args.prompt_mask or args.box or args.point):
            args.prompt_mask = str(DEMO_CLIP / "prompt.png")
    elif not (args.video or args.frames or args.camera is not None):
        raise UserInputError("give an input: --video PATH, --frames DIR or --camera N")
    elif not (args.prompt_mask or args.box or args.point):
        raise UserInputError("give a prompt: --prompt-mask PNG, --box x0,y0,x1,y1 or --point x,y")
    prompts = _prompts(args)
    source = open_source(frames=args.frames, video=args.video, camera=args.camera,
                         max_read_failures=args.max_read_failures)
    for prompt in prompts.values():
        prompt.validate(*source.frame_size)
    tracker = _tracker(args)
    # ignore_signals_after: once the output is in place, a late signal must not turn a complete
    # run into exit 130/143 while the process ends
    stats = run_stream(tracker, source, prompts, args.out, args.max_frames, args.max_read_failures, args.overwrite,
                       ignore_signals_after=True)
    print(
        f"{stats['frames']} frames at {stats['fps']:.1f} fps ({stats['ended'].replace('_', ' ')}; "
        f"{len(stats['skipped_frames'])} skipped), memory bank {stats['memory_bank_bytes'] / 1024:.0f} KiB "
        f"-> {args.out}"
    )
    if stats["ended"] == "read_failures":
        print(f"error: {args.max_read_failures} frames in a row could not be read; the stream ended there "
              f"(output for the frames before is in {args.out})", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="run_stream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model").add_mutually_exclusive_group(required=True)
    model.add_argument("--demo", action="store_true", help="bundled pico model on the bundled clip")
    model.add_argument("--model", help="pico or an official config name (torch backend, or ort: exported on the fly)")
    model.add_argument("--onnx-dir", help="folder from `mixqsam2 export` (ort backend: no torch needed)")
    model.add_argument("--engine-dir", help="folder from deploy/build_engine.py (trt backend)")
    parser.add_argument("--checkpoint", help="sam2-format checkpoint for --model")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="how the graphs run (default: torch; ort with --onnx-dir, trt with --engine-dir)")
    add_ort_kernels_arg(parser)
    source = parser.add_argument_group("input").add_mutually_exclusive_group()
    source.add_argument("--video", help="video file (OpenCV)")
    source.add_argument("--frames", help="folder of frames (named in order)")
    source.add_argument("--camera", type=non_negative_int, help="camera index")
    parser.add_argument("--max-frames", type=positive_int,
                        help="stop after tracking this many frames (otherwise at the end of the input, or on "
                             "Ctrl-C/SIGTERM: cameras run until stopped)")
    parser.add_argument("--max-read-failures", type=positive_int, default=MAX_READ_FAILURES,
                        help="end the stream (exit 1, output kept) after this many frames in a row cannot be read "
                             "(default %(default)s); single bad frames are skipped")
    prompt = parser.add_argument_group("prompt (first frame)").add_mutually_exclusive_group()
    prompt.add_argument("--prompt-mask", help="PNG mask (0/255, or DAVIS palette ids for several objects)")
    prompt.add_argument("--box", help="x0,y0,x1,y1 in frame pixels")
    prompt.add_argument("--point", help="x,y in frame pixels (foreground click)")
    add_box_zoom_arg(parser)
    add_track_zoom_arg(parser)
    add_memory_args(parser)
    parser.add_argument("--out", required=True, help="output folder (masks/, overlay.mp4, stats.json); "
                                                       "it appears once the stream has ended")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing non-empty --out, replacing only the files an earlier run "
                             "wrote there (its .mixqsam2-outputs.json); your files stay, also inside masks/")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the stream ended (end of input, --max-frames, or stopped by SIGINT/SIGTERM:
    a stop is how a camera stream ends, and its output is complete); 1 when frames could not
    be read; 2 on bad input; 128 + signal number when a second signal aborted it (no output).
    Once the output is in place, SIGINT/SIGTERM are ignored until the process ends (a process
    entry point: it does not restore them)."""
    from mixqsam2.runtime.stopping import StreamAborted

    args = build_parser().parse_args(argv)
    try:
        return run_cli(_run, args)
    except StreamAborted as exc:
        print(f"aborted by a second {exc}: no output written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:  # Ctrl-C before the stream started (loading the model)
        print("aborted: no output written", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
