"""``mixqsam2 <verb>``: models, synth, eval, calibrate, export, train-pico, finetune (see ``mixqsam2 --help``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from mixqsam2.cli.export import add_export_parser
from mixqsam2.cli.common import (add_box_zoom_arg, add_memory_args, add_memory_pool_arg, add_model_args,
                                 add_ort_kernels_arg, add_track_zoom_arg, check_device,
                                 Parser, non_negative_int, positive_float, positive_int, probability, run_cli)
from mixqsam2.errors import UserInputError
from mixqsam2.quant.config import AMAX_METHODS, DEFAULTS as CALIBRATION_DEFAULTS, CalibrationConfig
from mixqsam2.train.config import TRAIN_PRESETS



def _models(args) -> None:
    from mixqsam2.models import model_info

    print(json.dumps(model_info(), indent=2))


def _synth(args) -> None:
    from mixqsam2.data import heldout, synth

    if args.generator == "heldout":
        write_images, write_videos = heldout.write_heldout_image_set, heldout.write_heldout_video_set
    else:
        write_images, write_videos = synth.write_image_set, synth.write_video_set
    if args.kind == "images":
        write_images(args.out, num=args.num, seed=args.seed, overwrite=args.overwrite)
    else:
        write_videos(args.out, num=args.num, frames=args.frames, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {args.out}")


def _eval(args) -> None:
    from mixqsam2.fileio import check_output_file, write_json_atomic
    from mixqsam2.runtime.backends import check_ort_kernels, resolve_backend

    check_output_file(args.out)
    if not Path(args.data).is_dir():
        raise UserInputError(f"data folder not found: {args.data}")
    if not (args.model or args.onnx_dir):
        raise UserInputError("give --model M, or --onnx-dir DIR (an export, run on ONNX Runtime)")
    evaluate = _image_evaluation(args) if args.kind == "images" else _video_evaluation(args)
    backend = resolve_backend(args.backend, args.onnx_dir)
    check_ort_kernels(backend, args.ort_kernels)
    if backend == "ort":
        result, summary = _evaluate_export(args, evaluate)
    else:
        result, summary = _evaluate_model(args, evaluate)
    write_json_atomic(args.out, result)
    print(summary)


def _evaluate_export(args, evaluate) -> tuple[dict, str]:
    """An export (or the model exported on the fly) on ONNX Runtime; its plan is in the graphs."""
    from mixqsam2.runtime.backends import open_graphs

    if args.plan:
        raise UserInputError("--plan is for the torch backend; an export has its plan baked in (see its manifest.json)")
    graphs = open_graphs("ort", args.model, args.checkpoint, args.onnx_dir, capacity=getattr(args, "capacity", None),
                         ort_kernels=args.ort_kernels, memory_pool=getattr(args, "memory_pool", None))
    result, summary = evaluate(graphs, None)
    return {**result, "backend": "ort", "ort_kernels": args.ort_kernels, "model": args.model,
            "onnx_dir": args.onnx_dir}, summary


def _evaluate_model(args, evaluate) -> tuple[dict, str]:
    """The torch model, fake-quantized by ``--plan`` (with its agreement with the unquantized model)."""
    from mixqsam2.models import build_model

    model = build_model(args.model, args.checkpoint)
    if args.plan:
        import copy

        from mixqsam2.eval.agreement import AgreementScore, ReferenceMasks
        from mixqsam2.quant.plan import PrecisionPlan, apply_plan

        plan = PrecisionPlan.load(args.plan)
        unquantized, reference = copy.deepcopy(model), ReferenceMasks()
        apply_plan(model, plan)
        evaluate(unquantized, reference.record)
        agreement = AgreementScore(reference)
        result, summary = evaluate(model, agreement)
        result["agreement_with_unquantized"] = agreement.mean()
        summary += f"; agreement with the unquantized model {agreement.mean():.4f} (mask IoU)"
    else:
        result, summary = evaluate(model, None)
    return {**result, "backend": "torch", "model": args.model, "plan": args.plan}, summary


def _image_evaluation(args):
    from mixqsam2.data.loaders import CocoImages
    from mixqsam2.eval.images import evaluate_images

    images = CocoImages.from_dir(args.data)

    def evaluate(model, on_mask):
        result = {**evaluate_images(model, images, on_mask, box_zoom=args.box_zoom), "box_zoom": args.box_zoom}
        return result, (f"mIoU {result['miou']:.4f} over {result['instances']} instances "
                        f"(fill-the-box {result['box_fill_miou']:.4f})")

    return evaluate


def _video_evaluation(args):
    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.eval.videos import evaluate_videos

    videos = open_video_set(args.data)

    def evaluate(model, on_mask):
        result = {**evaluate_videos(model, videos, args.memory, args.capacity, on_mask, track_zoom=args.track_zoom,
                                    memory_pool=args.memory_pool),
                  "track_zoom": args.track_zoom}
        return result, f"J {result['J']:.4f}  F {result['F']:.4f}  J&F {result['JF']:.4f} over {result['objects']} objects"

    return evaluate


def _train_pico(args) -> None:
    from dataclasses import replace

    from mixqsam2.train.loop import train

    check_device(args.device)
    given = {"seed": args.seed, "steps": args.steps, "image_batch": args.image_batch,
             "video_batch": args.video_batch, "init_checkpoint": args.init, "embed": args.embed,
             "recolor": args.recolor, "small_objects": args.small_objects, "large_objects": args.large_objects,
             "absent_targets": args.absent_targets, "clutter": args.clutter,
             "image_encoder_lr_scale": args.encoder_lr_scale,
             "video_every": args.video_every, "bank_memory_pools": tuple(args.memory_pool) if args.memory_pool else None}
    cfg = replace(TRAIN_PRESETS[args.preset], **{k: v for k, v in given.items() if v is not None})
    _check_training_pools(cfg)
    history = train(cfg, args.out, minutes=args.minutes, resume=args.resume, device=args.device, workers=args.workers,
                    overwrite=args.overwrite)
    _print_training_summary(history, cfg.steps, args.out)


def _check_training_pools(cfg) -> None:
    """``--memory-pool`` needs the bank in the loop, and pools that divide the memory grid."""
    from mixqsam2.models import get_spec
    from mixqsam2.models.graphs import check_memory_pool

    if cfg.bank_memory_pools != (1,) and not cfg.bank_policies:
        raise UserInputError("--memory-pool: this preset trains with sam2's own memory, not a bank; use --preset v2")
    for pool in cfg.bank_memory_pools:
        check_memory_pool(pool, get_spec(cfg.model).image_size // 16)  # sam2's lowest level: stride 16


def _print_training_summary(history: list[dict], steps: int, out: str) -> None:
    from mixqsam2.train.loop import recent_summary

    last = history[-100:]
    recent = recent_summary(last)
    print(f"step {len(history)}/{steps}, last {len(last)} steps: median loss {recent['loss']}, "
          f"IoU {recent['iou']}, present targets scored absent {recent['missed']}; wrote {out}")


def _finetune(args) -> None:
    from mixqsam2.memory.synthesis import RULES
    from mixqsam2.memory.tracker import check_capacity
    from mixqsam2.models import PICO_EMBED, get_spec, pico_width, read_checkpoint
    from mixqsam2.models.graphs import check_memory_pool
    from mixqsam2.train.config import MEMORY_MODULES, TrainConfig
    from mixqsam2.train.data import VideoFolderClips
    from mixqsam2.train.loop import train

    check_device(args.device)
    checkpoint = args.checkpoint or get_spec(args.model).checkpoint
    if checkpoint is None:
        raise UserInputError(f"--checkpoint: model '{args.model}' has no bundled weights to fine-tune")
    policies = tuple(args.memory.split(","))
    for policy in policies:
        if policy not in RULES:
            raise UserInputError(f"unknown memory policy '{policy}'; choose from: {', '.join(RULES)}")
        check_capacity(args.capacity, policy)
    check_memory_pool(args.memory_pool, get_spec(args.model).image_size // 16)  # sam2's lowest level: stride 16
    clips = VideoFolderClips(args.videos, tuple(args.frames))  # bad videos or clip lengths: refused now
    width = pico_width(read_checkpoint(checkpoint)) if args.model == "pico" else None  # a wider pico's own
    cfg = TrainConfig(  # absolute paths: a resume from another folder is the same run
        model=args.model, embed=width or PICO_EMBED, init_checkpoint=str(Path(checkpoint).resolve()),
        videos=str(Path(args.videos).resolve()),
        seed=args.seed, steps=args.steps, lr=args.lr, warmup_steps=min(100, args.steps // 10), image_only_fraction=0.0,
        video_batch=args.batch, video_frames=tuple(args.frames), bank_policies=policies,
        bank_capacities=(args.capacity, args.capacity), bank_memory_pools=(args.memory_pool,),
        trainable=MEMORY_MODULES, save_half=False,
    )
    history = train(cfg, args.out, minutes=args.minutes, resume=args.resume, device=args.device, batches=clips,
                    workers=args.workers, overwrite=args.overwrite)
    _print_training_summary(history, cfg.steps, args.out)


def _check_plan_out(plan_path: Path) -> tuple[Path, Path]:
    """PLAN.json's report and chart paths (PLAN.md, PLAN.png). Only an earlier plan and its
    report are replaced: an existing PLAN.json must be a plan, and without one, a file
    where the report goes is the user's and refused."""
    from mixqsam2.fileio import check_output_file
    from mixqsam2.quant.plan import PrecisionPlan

    check_output_file(plan_path)
    if plan_path.suffix != ".json":
        raise UserInputError(f"--out {plan_path}: name the plan PLAN.json (PLAN.md and PLAN.png go beside it)")
    report_files = plan_path.with_suffix(".md"), plan_path.with_suffix(".png")
    if os.path.lexists(plan_path):
        try:
            PrecisionPlan.load(plan_path)
        except UserInputError:
            raise UserInputError(f"{plan_path} exists and is not a precision plan; choose another --out") from None
        return report_files
    for path in report_files:
        if os.path.lexists(path):
            raise UserInputError(f"{path} exists and is no report of a plan {plan_path.name}: the report would "
                                 "replace it; choose another --out")
    return report_files


def _calibrate(args) -> None:
    from dataclasses import replace

    from mixqsam2.models import build_model
    from mixqsam2.quant.calibrate import budget_bits_for_megabytes, calibrate, format_counts, make_forward_loop
    from mixqsam2.quant.recipe import Recipe
    from mixqsam2.quant.report import write_report

    report_files = _check_plan_out(Path(args.out))
    check_device(args.device)
    for fmt, pattern in args.keep:
        if fmt != "fp16":
            raise UserInputError(f"--keep supports fp16 only, got {fmt}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UserInputError(f"--keep {fmt} {pattern!r}: not a regular expression ({exc})") from None
    recipe = Recipe.load(args.recipe) if args.recipe else Recipe()
    s = recipe.settings({**vars(args), "keep_fp16": tuple(pattern for _, pattern in args.keep)})
    _check_calibration_settings(s, recipe)
    config = CalibrationConfig.from_settings(s)
    config.validate()
    images, videos, summary = _calibration_data(recipe, s)
    model = build_model(s["model"], s["checkpoint"], device=args.device)
    if s["budget_mb"] is not None:
        config = replace(config, budget_bits=budget_bits_for_megabytes(model, s["budget_mb"]))
    sensitivity_loop = None
    if s["importance"] == "measured":
        subset = images[: s["sensitivity_images"]], videos[: s["sensitivity_videos"]]
        summary["sensitivity"] = {"images": len(subset[0]), "videos": len(subset[1]), "frames": s["sensitivity_frames"]}
        sensitivity_loop = make_forward_loop(*subset, s["sensitivity_frames"], progress=False)
    plan = calibrate(model, make_forward_loop(images, videos, s["max_frames"]), config, s["model"], summary,
                     sensitivity_loop)
    plan.save(args.out)
    write_report(plan, *report_files)
    print(f"{plan.effective_bits:.3f} effective bits (budget {plan.budget_bits:g}), {format_counts(plan)}, "
          f"{plan.calibration['seconds']:.1f} s; wrote {args.out}, {report_files[0]}, {report_files[1]}")


def _calibration_data(recipe, settings: dict) -> tuple[list, list, dict]:
    """Images, videos (the settings' folders or the recipe's generated sets) and their summary."""
    from mixqsam2.data.loaders import CocoImages, open_video_set

    folders = recipe.data_folders(settings)
    if folders["images"] is None:
        raise UserInputError("no calibration images: give --images DIR (or a recipe with images or synth-images)")
    for folder in filter(None, folders.values()):
        if not Path(folder).is_dir():
            raise UserInputError(f"data folder not found: {folder}")
    images = list(CocoImages.from_dir(folders["images"]))[: settings["max_images"]]
    if not any(sample.boxes for sample in images):
        raise UserInputError(f"no annotated objects in the calibration images {folders['images']} (the first "
                             f"{len(images)}): their boxes prompt the model, so calibration needs annotations")
    videos = open_video_set(folders["videos"])[: settings["max_videos"]] if folders["videos"] else []
    summary = {"recipe": recipe.name, "images": len(images), "videos": len(videos), "max_frames": settings["max_frames"],
               "image_dir": folders["images"], "video_dir": folders["videos"]}
    return images, videos, summary


def _check_calibration_settings(settings: dict, recipe) -> None:
    if settings["model"] is None:
        raise UserInputError("no model: give --model (or a recipe with model)")
    budgets = [k for k in ("budget_bits", "budget_mb") if settings[k] is not None]
    if len(budgets) != 1:
        raise UserInputError(f"give exactly one budget, --budget-bits or --budget-mb (recipe {recipe.name!r} and "
                             f"command line together give {len(budgets)})")


def default(setting: str) -> str:
    """A calibrate setting's default as the help text shows it."""
    value = CALIBRATION_DEFAULTS[setting]
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _add_run_args(parser) -> None:
    """Where and how long a training run goes (train-pico, finetune)."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="processes that make batches ahead of the model (the run is the same)")
    parser.add_argument("--minutes", type=positive_float, default=None,
                        help="stop (resumable) after this much wall time")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT.state")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run over an existing OUT and OUT.state (without it they are refused)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mixqsam2", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    verbs.add_parser("models", help="list known models as JSON").set_defaults(run=_models)

    synth = verbs.add_parser("synth", help="generate a synthetic data set")
    synth_kinds = synth.add_subparsers(dest="kind", required=True)
    for kind, help_text in (("images", "COCO-format image set"), ("videos", "DAVIS-layout video set")):
        p = synth_kinds.add_parser(kind, help=help_text)
        p.add_argument("--out", required=True, help="output folder (must be absent or empty, or give --overwrite)")
        p.add_argument("--overwrite", action="store_true",
                       help="write into a non-empty --out, replacing only the set's own files (other files stay)")
        p.add_argument("--num", type=positive_int, required=True)
        p.add_argument("--seed", type=non_negative_int, default=0,
                       help="generated sets have their own seed space: no seed reproduces training data")
        p.add_argument("--generator", choices=("train", "heldout"), default="train",
                       help="train: the scenes pico trains on; heldout: an independent generator (other shapes, "
                            "pictures and motion) for out-of-distribution validation")
        if kind == "videos":
            p.add_argument("--frames", type=positive_int, default=32)
        p.set_defaults(run=_synth)

    train = verbs.add_parser("train-pico", help="train the pico model on generated data (resumable)")
    train.add_argument("--out", required=True, help="checkpoint to write (sam2 format); OUT.state holds the run")
    train.add_argument("--preset", choices=sorted(TRAIN_PRESETS), default="v2",
                       help="v1: the first pico's schedule (sam2's memory, 4-8-frame clips); v2: 12-20-frame "
                            "clips, bank policy in the loop; both on generator 3 seen through the training "
                            "camera; the options below override it")
    train.add_argument("--steps", type=positive_int, help="length of the schedule")
    train.add_argument("--seed", type=non_negative_int)
    train.add_argument("--image-batch", type=positive_int)
    train.add_argument("--video-batch", type=positive_int)
    train.add_argument("--init", help="start from this checkpoint (sam2 format) instead of a seeded init")
    train.add_argument("--embed", type=positive_int, help="trunk width (pico.yaml: 32); a wider pico's checkpoint "
                       "loads as --model pico everywhere; an --init half as wide is widened first (each channel "
                       "split in two, same masks), so a wider pico starts from a trained one")
    train.add_argument("--encoder-lr-scale", type=positive_float, help="the image encoder's learning rate as a "
                       "share of the others' (default 0.1: from scratch, a higher one let the image features "
                       "outgrow the prompts; continuing v2 for 1,200 steps, 0.3 moved the trunk 2.7x as far and "
                       "scored best out of distribution, 0.5 worse: BENCHMARKS.md)")
    train.add_argument("--video-every", type=positive_int, metavar="N",
                       help="a video step every N-th step, image steps between (default 2: alternating; a "
                            "video step costs ~4x an image step on CPU)")
    train.add_argument("--recolor", type=probability, help="share of images and clips seen in other colours "
                       "(hue, channel order, saturation, inversion, gamma)")
    train.add_argument("--small-objects", type=probability, help="share of images and clips whose objects are "
                       "drawn smaller (down to 0.3x: ~11 px across)")
    train.add_argument("--large-objects", type=probability, help="share of the other images and clips whose "
                       "objects are drawn larger (up to 2.2x: about as tall as the frame)")
    train.add_argument("--absent-targets", type=probability, help="share of clips in which a target vanishes for "
                       "a stretch of frames (as if fully occluded) and comes back")
    train.add_argument("--clutter", type=probability, help="share of images and clips whose background is "
                       "full of other, unannotated objects (4-16 of any shape and size)")
    train.add_argument("--memory-pool", type=positive_int, nargs="+", metavar="B",
                       help="memory attention reads the bank's older memories B x B pooled, as `run_stream "
                            "--memory-pool B` deploys it; with several values each video step draws one (a "
                            "value given twice, twice as often; default 1: whole reads only)")
    _add_run_args(train)
    train.set_defaults(run=_train_pico)

    tune = verbs.add_parser(
        "finetune", help="fine-tune a model's memory path with a bank policy in the loop (resumable)",
        description="Trains memory attention, the memory encoder and the object-pointer heads on your "
                    "videos while the tracker's memory bank runs POLICY at CAPACITY, so that the model "
                    "learns to read the memories that policy keeps; the rest of the model is frozen.")
    add_model_args(tune)
    tune.add_argument("--videos", required=True, help="your videos: a DAVIS or SA-V layout folder")
    tune.add_argument("--memory", default="sis", help="bank policy, or several separated by commas (one drawn per step)")
    tune.add_argument("--capacity", type=positive_int, default=3)
    add_memory_pool_arg(tune, default=1)
    tune.add_argument("--out", required=True, help="checkpoint to write (sam2 format, fp32); OUT.state holds the run")
    tune.add_argument("--steps", type=positive_int, default=1000)
    tune.add_argument("--lr", type=positive_float, default=1e-4)
    tune.add_argument("--batch", type=positive_int, default=2, help="clips per step")
    tune.add_argument("--frames", type=positive_int, nargs=2, default=(8, 16), metavar=("MIN", "MAX"),
                      help="clip length range, in annotated frames")
    tune.add_argument("--seed", type=non_negative_int, default=0)
    _add_run_args(tune)
    tune.set_defaults(run=_finetune)

    cal = verbs.add_parser("calibrate", help="score layers and allocate formats under a bit budget -> PLAN.json",
                           description="Options left out come from --recipe, then from the defaults shown.")
    cal.add_argument("--recipe", help="YAML recipe (calib/recipes/): device budget, settings and data")
    cal.add_argument("--model", help="pico (bundled) or an official config, e.g. sam2.1_hiera_t")
    cal.add_argument("--checkpoint", help="sam2-format checkpoint ({'model': state_dict}); pico has a default")
    cal.add_argument("--images", help="COCO-format folder (GT boxes prompt the model)")
    cal.add_argument("--videos", help="DAVIS/SA-V folder (first-frame masks; memory sees real memories)")
    budget = cal.add_mutually_exclusive_group()
    budget.add_argument("--budget-bits", type=positive_float, help="effective weight bits (parameter-weighted)")
    budget.add_argument("--budget-mb", type=positive_float, help="weight megabytes (MiB) of the quantized layers")
    cal.add_argument("--solver", help=f"ilp (exact) or greedy (the paper's); default {default('solver')}")
    cal.add_argument("--formats", help=f"candidates (default {default('formats')}); research: e.g. w3a3,w4a4,w5a5")
    cal.add_argument("--block-size", type=positive_int,
                     help=f"int4 block along the input dimension (default {default('block_size')})")
    cal.add_argument("--observer", help=f"int8 activation range: {', '.join(AMAX_METHODS)} "
                                        f"(default {default('observer')})")
    cal.add_argument("--wais", help=f"channel energy: l2 (the paper) or rms (default {default('wais')})")
    cal.add_argument("--keep", nargs=2, action="append", default=[], metavar=("FORMAT", "PATTERN"),
                     help="pin layers matching the regular expression PATTERN to FORMAT (fp16)")
    cal.add_argument("--keep-first-last", action="store_true", default=None, help="keep the first and last layer in fp16")
    cal.add_argument("--importance",
                     help="objective: wais (WAIS x expected NSR) or measured (output distortion with only that "
                          "layer quantized; one pass of the sensitivity subset per layer and format); "
                          f"default {default('importance')}")
    cal.add_argument("--sensitivity-images", type=positive_int,
                     help=f"images measured per layer (default {default('sensitivity_images')})")
    cal.add_argument("--sensitivity-videos", type=positive_int,
                     help=f"videos measured per layer (default {default('sensitivity_videos')})")
    cal.add_argument("--sensitivity-frames", type=positive_int,
                     help=f"frames per measured video (default {default('sensitivity_frames')})")
    cal.add_argument("--max-images", type=positive_int, help=f"default {default('max_images')}")
    cal.add_argument("--max-videos", type=positive_int, help=f"default {default('max_videos')}")
    cal.add_argument("--max-frames", type=positive_int,
                     help=f"frames per calibration video (default {default('max_frames')})")
    cal.add_argument("--device", default="cpu", help="torch device for the calibration passes, e.g. cuda")
    cal.add_argument("--out", required=True, help="PLAN.json (PLAN.md and PLAN.png are written beside it)")
    cal.set_defaults(run=_calibrate)

    add_export_parser(verbs)

    evaluate = verbs.add_parser("eval", help="evaluate a model on an image or video set")
    eval_kinds = evaluate.add_subparsers(dest="kind", required=True)
    for kind in ("images", "videos"):
        p = eval_kinds.add_parser(kind)
        add_model_args(p, required=False)
        p.add_argument("--onnx-dir", help="evaluate an export (from `mixqsam2 export`) on ONNX Runtime instead")
        p.add_argument("--backend", choices=("torch", "ort"),
                       help="torch for --model (default), ort for --onnx-dir (implied by it)")
        add_ort_kernels_arg(p)
        p.add_argument("--data", required=True, help="COCO-format folder (images) or DAVIS/SA-V folder (videos)")
        p.add_argument("--out", required=True, help="result JSON")
        p.add_argument("--plan", help="precision plan: evaluate the fake-quantized model (and its agreement with "
                                      "the unquantized one)")
        if kind == "videos":
            add_memory_args(p)
            add_track_zoom_arg(p)
        else:
            add_box_zoom_arg(p)
        p.set_defaults(run=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 2 on bad input; 128 + the signal's number when a second SIGINT/SIGTERM aborted a
    training run (the first one stops it after the current step, its state saved)."""
    from mixqsam2.runtime.stopping import StreamAborted

    args = build_parser().parse_args(argv)
    try:
        return run_cli(args.run, args)
    except StreamAborted as exc:
        print(f"aborted by a second {exc}: the run's state saved last stays (--resume continues from it)",
              file=sys.stderr)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
