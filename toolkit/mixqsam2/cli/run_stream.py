"""``run_stream``: track objects through a video, frame folder or camera.

    run_stream --demo --out out/demo
    run_stream --model pico --frames clip/ --box 40,30,120,90 --memory fifo --capacity 6 --out out/run

Writes ``OUT/masks/<frame>.png``, ``OUT/overlay.mp4`` and ``OUT/stats.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mixqsam2.cli.common import add_memory_args, positive_int, run_cli
from mixqsam2.errors import UserInputError

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
    from mixqsam2.models import build_model

    if args.backend != "torch" or args.onnx_dir or args.engine_dir:
        _refuse_unavailable_backend(args)
    model = build_model("pico" if args.demo else args.model, args.checkpoint)
    return StreamingTracker(model, memory=args.memory, capacity=args.capacity)


def _refuse_unavailable_backend(args) -> None:
    """ort/trt arrive with the export and TensorRT stages; say so, or that TensorRT is missing."""
    if args.backend == "trt" or args.engine_dir:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise UserInputError("--backend trt needs TensorRT, which is not installed here") from None
    raise UserInputError(
        "the ort/trt backends are not available in this version yet (they need the ONNX export "
        "stage); use --backend torch with --model or --demo"
    )


def _run(args) -> None:
    from mixqsam2.fileio import ensure_writable_parent
    from mixqsam2.runtime.io import open_source
    from mixqsam2.runtime.stream import run_stream

    ensure_writable_parent(args.out)
    if args.demo:
        args.frames = args.frames or DEMO_CLIP / "frames"
        if not (args.prompt_mask or args.box or args.point):
            args.prompt_mask = str(DEMO_CLIP / "prompt.png")
    elif not (args.video or args.frames or args.camera is not None):
        raise UserInputError("give an input: --video PATH, --frames DIR or --camera N")
    elif not (args.prompt_mask or args.box or args.point):
        raise UserInputError("give a prompt: --prompt-mask PNG, --box x0,y0,x1,y1 or --point x,y")
    prompts = _prompts(args)
    source = open_source(frames=args.frames, video=args.video, camera=args.camera, max_frames=args.max_frames)
    for prompt in prompts.values():
        prompt.validate(*source.frame_size)
    tracker = _tracker(args)
    stats = run_stream(tracker, source, prompts, args.out)
    print(
        f"{stats['frames']} frames at {stats['fps']:.1f} fps, memory bank {stats['memory_bank_bytes'] / 1024:.0f} KiB "
        f"-> {args.out}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_stream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model").add_mutually_exclusive_group(required=True)
    model.add_argument("--demo", action="store_true", help="bundled pico model on the bundled clip")
    model.add_argument("--model", help="pico or an official config name (torch backend)")
    model.add_argument("--onnx-dir", help="exported ONNX graphs (ort backend)")
    model.add_argument("--engine-dir", help="TensorRT engines (trt backend)")
    parser.add_argument("--checkpoint", help="sam2-format checkpoint for --model")
    parser.add_argument("--backend", choices=("torch", "ort", "trt"), default="torch")
    source = parser.add_argument_group("input").add_mutually_exclusive_group()
    source.add_argument("--video", help="video file (OpenCV)")
    source.add_argument("--frames", help="folder of frames (named in order)")
    source.add_argument("--camera", type=int, help="camera index")
    parser.add_argument("--max-frames", type=positive_int, help="stop after this many frames (cameras run until stopped)")
    prompt = parser.add_argument_group("prompt (first frame)").add_mutually_exclusive_group()
    prompt.add_argument("--prompt-mask", help="PNG mask (0/255, or DAVIS palette ids for several objects)")
    prompt.add_argument("--box", help="x0,y0,x1,y1 in frame pixels")
    prompt.add_argument("--point", help="x,y in frame pixels (foreground click)")
    add_memory_args(parser)
    parser.add_argument("--out", required=True, help="output folder (masks/, overlay.mp4, stats.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    sys.exit(main())
