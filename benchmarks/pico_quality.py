"""Quality of pico checkpoints, in distribution and out of it, next to the trivial baselines.

Data (all seeds apart from training's and from each other):
- ``train-gen``: the training generator (``mixqsam2.data.synth``), seeds 9001 (images) and
  9003/9004 (videos);
- ``heldout``: the independent generator (``mixqsam2.data.heldout``: other shapes, photos,
  motion and camera rules; never used to train), same seeds in its own seed space.

Images: box mIoU with GT-box prompts, next to fill-the-box and a classical, training-free
answer (OpenCV's GrabCut from the box). Videos: J&F with a first-frame mask prompt and FIFO
at 6, next to repeating the first mask; "lost" counts objects under J&F 0.5, and next to a
classical tracker without learning (GrabCut on each frame from the last mask's box). The
GrabCut answers are scored once per set (``--no-baselines`` skips them: ~15 min at the
default sizes) and paired against each checkpoint per image and per object: the level a
learned model should clear out of distribution. "absent" is the share of (frame, object)
pairs after the prompt where the object is not in the ground truth, and "empty there" the
share of those the tracker answers with an empty mask (what J counts as right), "empty when
present" the share of the pairs with the object present that got an empty mask (the tracker
said it is gone: sam2 empties the mask of an object its object score calls absent); "IoU by
frames since the prompt" is the mean IoU of the present targets 1, 2-5, ... frames after the
prompt frame (which shows the prompt mask itself), to tell a model that segments badly from
the first tracked frame from one that drifts. Checkpoints are compared pairwise per unit
(image, video object) with bootstrap intervals (``mixqsam2.eval.paired``), and each against
fill-the-box per image (issue 13's box floor is fill-the-box + 0.05 out of distribution).
CPU ms per frame of each checkpoint's tracker comes from the same run. A grid of the hardest
held-out videos (GT red, prediction green) goes to ``--figure``. ``--box-zoom S`` also scores
the boxes with small ones segmented on a zoomed view (``StreamingTracker(box_zoom=S)``),
paired against the plain prompts; ``--track-zoom S`` also tracks the videos with small objects
on a window that follows them (``StreamingTracker(track_zoom=S)``), paired against plain
tracking.
``--merge A.json B.json ...`` evaluates nothing: it pairs the checkpoints of earlier runs
(made with the same data settings, so on the same units) against the first one, so that
checkpoints evaluated one per core, or in different sessions, compare as if in one run.

    python benchmarks/pico_quality.py --checkpoint shipped=toolkit/mixqsam2/models/weights/pico.pt \\
        --checkpoint mine=out/train/mine.pt --out out/bench/pico_quality.json
    python benchmarks/pico_quality.py --merge out/bench/shipped.json out/bench/mine.json --out out/bench/both.json
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

SETS = ("train-gen", "heldout")


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser, distinct_names, named_file, open_share

    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=named_file, action="append", metavar="NAME=PATH",
                        help="checkpoints to compare (default: shipped=the bundled pico)")
    parser.add_argument("--images", type=int, default=200, help="images per set")
    parser.add_argument("--videos", type=int, default=6, help="videos per set and video seed")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--box-zoom", type=open_share, help="also score box prompts with this zoom share (e.g. 0.3)")
    parser.add_argument("--track-zoom", type=open_share, help="also track the videos with this zoom share (e.g. 0.3)")
    parser.add_argument("--video-seeds", type=int, nargs="+", default=[9003, 9004])
    parser.add_argument("--out", default="out/bench/pico_quality.json")
    parser.add_argument("--figure", default="out/bench/pico_hardest_heldout.png",
                        help="the grid of hardest held-out videos (the committed one: benchmarks/figures/)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="skip the GrabCut answers (boxes and tracks); --merge takes them from another run")
    parser.add_argument("--merge", nargs="+", metavar="RESULT.json",
                        help="evaluate nothing: pair the checkpoints of these earlier runs against the first one")
    args = parser.parse_args(argv)
    args.checkpoint = args.checkpoint and distinct_names(parser, args.checkpoint, "--checkpoint")
    options = {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}
    given = [options[dest] for dest in EVALUATION_OPTIONS if getattr(args, dest) != parser.get_default(dest)]
    if args.merge and given:
        parser.error(f"--merge compares earlier results; it takes no {', '.join(given)}")
    return args


EVALUATION_OPTIONS = ("checkpoint", "images", "videos", "frames", "box_zoom", "track_zoom", "video_seeds", "figure",
                      "baselines")
SETTINGS = ("frames", "video_seeds", "box_zoom", "track_zoom")  # what runs to merge must share
# what the tables and comparisons read from each set of a result
SCORES = ("box_miou", "box_fill_miou", "per_image", "box_miou_by_area", "JF", "first_mask_JF", "objects", "lost",
          "per_object", "ms_per_frame", "absent_share", "empty_when_absent")
ZOOM_SCORES = {"box_zoom": ("box_miou_zoom", "per_image_zoom", "box_miou_zoom_by_area"),
               "track_zoom": ("JF_track_zoom", "per_object_track_zoom", "lost_track_zoom", "ms_per_frame_track_zoom")}
UNITS = {"per_image": "images", "per_image_zoom": "images (box zoom)", "per_object": "video objects",
         "per_object_track_zoom": "video objects (track zoom)"}


def merged_runs(paths: list[str]) -> dict:
    """The runs of ``paths`` as one: their checkpoints in order, the shared settings, and each
    run's machine and figure. Refused (one line) unless every file is a pico_quality result,
    the runs share :data:`SETTINGS` and scored the same units (images, video objects, zoomed
    or not), and no checkpoint name repeats. GrabCut's scores come from the first run that has them.

    >>> import json, tempfile
    >>> scores = {**{key: 0.5 for key in SCORES}, "per_image": {"0": 0.5}, "per_object": {"v#1": 0.4}}
    >>> run = {"checkpoints": {"v2": "v2.pt"}, "frames": 120, "video_seeds": [9003], "box_zoom": None,
    ...        "track_zoom": None, "results": {"v2": {s: dict(scores) for s in SETS}}}
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.json").write_text(json.dumps(run))
    >>> run["results"]["v2"]["heldout"]["per_image"] = {"1": 0.5}
    >>> _ = (folder / "b.json").write_text(json.dumps(run).replace('"v2', '"v3'))
    >>> merged_runs([str(folder / "a.json"), str(folder / "b.json")])
    Traceback (most recent call last):
    mixqsam2.errors.UserInputError: .../b.json scored other heldout images than .../a.json; merge runs made on the same data
    """
    from mixqsam2.errors import UserInputError

    runs = {path: _read_result(path) for path in paths}
    first = runs[paths[0]]
    reference = next(iter(first["results"].values()))
    merged = {**{key: first[key] for key in SETTINGS + ("data",) if key in first}, "checkpoints": {}, "results": {},
              "merged_from": {path: {key: run.get(key) for key in ("machine", "figure")} for path, run in runs.items()}}
    for path, run in runs.items():
        differing = [key for key in SETTINGS if run[key] != first[key]]
        if "data" in run and "data" in first and run["data"] != first["data"]:  # recorded since 2026-11-28
            differing.append("data (generator versions)")
        if differing:
            raise UserInputError(f"{path} was run with other {', '.join(differing)} than {paths[0]}")
        for name, sets in run["results"].items():
            if name in merged["results"]:
                raise UserInputError(f"checkpoint name {name!r} appears twice; rename one in its file")
            _check_same_units(sets, reference, path, paths[0])
            merged["results"][name], merged["checkpoints"][name] = sets, run["checkpoints"][name]
    source = next((path for path, run in runs.items() if run.get("baselines")), None)  # since 2026-12-06
    if source:
        merged["baselines"] = runs[source]["baselines"]
        _check_same_units(merged["baselines"], reference, f"the GrabCut scores of {source}", paths[0],
                          keys=("per_image", "per_object"))
    return merged


def _read_result(path: str) -> dict:
    """The result in ``path``, checked to hold what the tables read; otherwise one line."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import read_json

    run = read_json(path, f"no pico_quality result at {path}")
    results = run.get("results") if isinstance(run, dict) else None
    if not (isinstance(results, dict) and results and isinstance(run.get("checkpoints"), dict)
            and all(key in run for key in SETTINGS)):
        raise UserInputError(f"{path} is not a pico_quality result (no checkpoints, results or settings)")
    needed = SCORES + sum((keys for option, keys in ZOOM_SCORES.items() if run[option]), ())
    for name, sets in results.items():
        missing = [f"{set_name}/{key}" for set_name in SETS for key in needed
                   if not (isinstance(sets, dict) and key in sets.get(set_name, {}))]
        if missing or name not in run["checkpoints"]:
            raise UserInputError(f"{path}: checkpoint {name!r} lacks {', '.join(missing) or 'its path'}; "
                                 "is it a pico_quality result of this version?")
    baselines = run.get("baselines", {})  # GrabCut's scores: recorded since 2026-12-06
    if not isinstance(baselines, dict) or (baselines and not all(
            isinstance(baselines.get(s), dict) and set(BASELINE_SCORES) <= set(baselines[s]) for s in SETS)):
        raise UserInputError(f"{path}: its GrabCut scores (baselines) lack a set or a score")
    return run


def _check_same_units(sets: dict, reference: dict, path: str, reference_path: str, keys=tuple(UNITS)) -> None:
    """Refuse ``sets`` unless each set scored the same units as ``reference``, zoomed or not."""
    from mixqsam2.errors import UserInputError

    for set_name in SETS:
        for key, units in ((key, UNITS[key]) for key in keys):
            if set(sets[set_name].get(key, ())) != set(reference[set_name].get(key, ())):
                raise UserInputError(f"{path} scored other {set_name} {units} than {reference_path}; "
                                     "merge runs made on the same data")


def data_sets(root: Path, args) -> dict:
    """{set: (images dir, [video dirs])}, made once and cached under ``root``."""
    from mixqsam2.data.heldout import cached_heldout_set
    from mixqsam2.data.synth import cached_set

    makers = {"train-gen": cached_set, "heldout": cached_heldout_set}
    return {
        name: (make(root, "images", num=args.images, seed=9001),
               [make(root, "videos", num=args.videos, frames=args.frames, seed=s) for s in args.video_seeds])
        for name, make in makers.items()
    }


AREA_BINS = (0, 1000, 4000, 10**9)  # object pixels in a 240x320 frame: < ~32x32, < ~64x64, larger


def area_bins() -> list[tuple[str, int, int]]:
    return [(f"{lo}+" if hi == AREA_BINS[-1] else f"{lo}-{hi}", lo, hi) for lo, hi in zip(AREA_BINS, AREA_BINS[1:])]


def by_area(per_instance: dict) -> dict:
    """Box mIoU and fill-the-box by object area: ``{"lo-hi": {"instances", "box_miou", "fill"}}``.

    >>> by_area({"1/1": {"iou": 0.5, "fill_iou": 0.4, "area": 500}})["0-1000"]
    {'instances': 1, 'box_miou': 0.5, 'fill': 0.4}
    """
    import numpy as np

    table = {}
    for label, lo, hi in area_bins():
        rows = [r for r in per_instance.values() if lo <= r["area"] < hi]
        if rows:
            table[label] = {"instances": len(rows), "box_miou": float(np.mean([r["iou"] for r in rows])),
                                   "fill": float(np.mean([r["fill_iou"] for r in rows]))}
    return table


def evaluate(model, images_dir: Path, video_dirs: list[Path], box_zoom: float | None = None,
             track_zoom: float | None = None) -> dict:
    """Images and videos of one set; units keyed so that two checkpoints pair up."""
    from mixqsam2.data.loaders import CocoImages, open_video_set
    from mixqsam2.eval.images import evaluate_images
    from mixqsam2.eval.videos import evaluate_videos, first_mask_baseline

    image_set = CocoImages.from_dir(images_dir)
    images = evaluate_images(model, image_set)
    zoomed = evaluate_images(model, image_set, box_zoom=box_zoom) if box_zoom else None
    videos = [v for d in video_dirs for v in _named(open_video_set(d), d)]
    after, repeated = AfterPrompt(videos), AfterPrompt(videos)
    tracked, baseline = evaluate_videos(model, videos, on_mask=after), first_mask_baseline(videos, on_mask=repeated)
    objects = _per_object(tracked)
    followed = evaluate_videos(model, videos, track_zoom=track_zoom) if track_zoom else None
    followed_objects = _per_object(followed) if followed else {}
    return {
        "box_miou": images["miou"], "box_fill_miou": images["box_fill_miou"], "instances": images["instances"],
        "per_image": images["per_image"], "per_image_fill": images["per_image_fill"],
        "box_miou_by_area": by_area(images["per_instance"]),
        "JF": tracked["JF"], "first_mask_JF": baseline["JF"], "objects": len(objects),
        "lost": _lost(objects), "per_object": objects,
        "per_video": {name: v["JF"] for name, v in tracked["per_video"].items()},
        "ms_per_frame": sum(tracked["latency_ms"].values()),
        "absent_share": after.absent / max(1, after.pairs), "empty_when_absent": after.empty / max(1, after.absent),
        "empty_when_present": after.empty_present / max(1, after.pairs - after.absent),
        "iou_by_frames_since_prompt": after.iou_by_frames(), "first_mask_iou_by_frames": repeated.iou_by_frames(),
        **({"box_miou_zoom": zoomed["miou"], "per_image_zoom": zoomed["per_image"],
            "box_miou_zoom_by_area": by_area(zoomed["per_instance"])} if zoomed else {}),
        **({"JF_track_zoom": followed["JF"], "per_object_track_zoom": followed_objects,
            "lost_track_zoom": _lost(followed_objects),
            "ms_per_frame_track_zoom": sum(followed["latency_ms"].values())} if followed else {}),
    }


BASELINE_SCORES = ("grabcut_miou", "per_image", "by_area", "grabcut_track_JF", "per_object")


def score_grabcut(images_dir: Path, video_dirs: list[Path]) -> dict:
    """The GrabCut answers of one set (checkpoint-independent, so scored once): from each GT box
    (``grabcut_miou``, ``per_image``, ``by_area``) and tracked from each video's prompt mask
    (``grabcut_track_JF``, ``per_object``), keyed as :func:`evaluate` keys a checkpoint's."""
    from mixqsam2.data.loaders import CocoImages, open_video_set
    from mixqsam2.eval.images import grabcut_baseline
    from mixqsam2.eval.videos import grabcut_track_baseline

    boxes = grabcut_baseline(CocoImages.from_dir(images_dir))
    tracks = grabcut_track_baseline([v for d in video_dirs for v in _named(open_video_set(d), d)])
    return {"grabcut_miou": boxes["miou"], "per_image": boxes["per_image"], "by_area": by_area(boxes["per_instance"]),
            "grabcut_track_JF": tracks["JF"], "per_object": _per_object(tracks)}


FRAMES_SINCE_PROMPT = ((1, 1), (2, 5), (6, 20), (21, 50), (51, 10**9))  # bins of frames after the prompt


def frames_bin(offset: int) -> str:
    """The label of the :data:`FRAMES_SINCE_PROMPT` bin of ``offset`` frames after the prompt.

    >>> frames_bin(1), frames_bin(7), frames_bin(119)
    ('1', '6-20', '51+')
    """
    lo, hi = next((lo, hi) for lo, hi in FRAMES_SINCE_PROMPT if lo <= offset <= hi)
    return str(lo) if lo == hi else f"{lo}+" if hi == 10**9 else f"{lo}-{hi}"


def frame_bins() -> list[str]:
    """The labels of :data:`FRAMES_SINCE_PROMPT`, in order."""
    return [frames_bin(lo) for lo, _ in FRAMES_SINCE_PROMPT]


class AfterPrompt:
    """An ``on_mask`` callback over the (frame, object) pairs after each video's prompt frame
    that have ground truth: how many there are, how many have their object absent, how many of
    those got an empty mask, how many present ones got one, and the IoU of each present one by
    frames since the prompt."""

    def __init__(self, videos):
        self.videos = {video.name: video for video in videos}
        self.index = {video.name: {name: i for i, name in enumerate(video.frame_names)} for video in videos}
        self.pairs = self.absent = self.empty = self.empty_present = 0
        self.ious: dict[str, list[float]] = {}
        self._truth = (None, None)  # (video, frame) -> annotation, the last one read

    def __call__(self, key, mask) -> None:
        from mixqsam2.eval.metrics import mask_iou

        name, obj, frame = key
        offset = self.index[name][frame]
        if offset == 0:
            return
        if self._truth[0] != (name, frame):
            self._truth = ((name, frame), self.videos[name].annotation(frame))
        if self._truth[1] is None:  # not annotated: neither present nor absent
            return
        truth = self._truth[1].get(obj)
        self.pairs += 1
        if truth is None or not truth.any():
            self.absent += 1
            self.empty += int(not mask.any())
        else:
            self.empty_present += int(not mask.any())
            self.ious.setdefault(frames_bin(offset), []).append(mask_iou(mask, truth))

    def iou_by_frames(self) -> dict[str, float]:
        """``{bin: mean IoU}`` over the bins that had a present target."""
        import numpy as np

        return {label: float(np.mean(self.ious[label])) for label in frame_bins() if label in self.ious}


def _named(videos, folder: Path):
    """Videos of several seeds share names (vid0000...): prefix the seed (``seed9003/vid0000``)."""
    seed = next(part for part in folder.name.split("-") if part.startswith("seed"))
    for video in videos:
        video.name = f"{seed}/{video.name}"
        yield video


def _lost(objects: dict[str, float]) -> int:
    """How many objects' tracks are lost (J&F under 0.5)."""
    return sum(jf < 0.5 for jf in objects.values())


def _per_object(tracked: dict) -> dict[str, float]:
    return {f"{name}#{obj}": (s["J"] + s["F"]) / 2
            for name, v in tracked["per_video"].items() for obj, s in v["per_object"].items()}


def comparisons(results: dict) -> dict:
    """Every later checkpoint against the first, per set: paired box IoU and J&F differences
    (and those with box zoom and track zoom, where scored)."""
    from mixqsam2.eval.paired import paired_difference

    names = list(results)
    out = {}
    for other in names[1:]:
        for set_name in SETS:
            a, b = results[other][set_name], results[names[0]][set_name]
            out[f"{other}-{names[0]}/{set_name}"] = {
                "box_miou": paired_difference(a["per_image"], b["per_image"]),
                "JF": paired_difference(a["per_object"], b["per_object"]),
                **({"box_miou_zoom": paired_difference(a["per_image_zoom"], b["per_image_zoom"])}
                   if "per_image_zoom" in a else {}),
                **({"JF_track_zoom": paired_difference(a["per_object_track_zoom"], b["per_object_track_zoom"])}
                   if "per_object_track_zoom" in a else {}),
            }
    return out


GRABCUT_PAIRS = {"box_miou": ("per_image", "per_image"), "box_miou_zoom": ("per_image_zoom", "per_image"),
                 "JF": ("per_object", "per_object"), "JF_track_zoom": ("per_object_track_zoom", "per_object")}


def against_grabcut(results: dict, baselines: dict) -> dict:
    """Every checkpoint's box mIoU and J&F (plain and, where scored, zoomed) minus GrabCut's,
    paired per image and per video object, per set."""
    from mixqsam2.eval.paired import paired_difference

    return {f"{name}-GrabCut/{set_name}": {
        key: paired_difference(r[ours], baselines[set_name][theirs])
        for key, (ours, theirs) in GRABCUT_PAIRS.items() if ours in r and theirs in baselines[set_name]}
        for name, sets in results.items() for set_name, r in sets.items()}


FILL_FLOOR = 0.05  # issue 13: box mIoU at least fill-the-box + 0.05 out of distribution


def against_fill(results: dict) -> dict:
    """Every checkpoint's box mIoU (plain and, where scored, zoomed) minus fill-the-box's, paired
    per image, per set. Fill-the-box depends on the images alone, so a run that did not keep it
    per image (made before this comparison) is paired with the fill of one that did; a set no
    run kept it for is left out."""
    from mixqsam2.eval.paired import paired_difference

    fills = {set_name: r["per_image_fill"] for sets in results.values() for set_name, r in sets.items()
             if "per_image_fill" in r}
    pairs = {"box_miou": "per_image", "box_miou_zoom": "per_image_zoom"}
    return {f"{name}-fill/{set_name}": {key: paired_difference(r[ours], fills[set_name])
                                        for key, ours in pairs.items() if ours in r}
            for name, sets in results.items() for set_name, r in sets.items() if set_name in fills}


def zoom_gains(results: dict) -> dict:
    """Per checkpoint and set, what zooming gains where it was scored: box mIoU with zoomed
    small boxes minus plain (paired per image), J&F tracked with the following window minus
    plain (paired per object)."""
    from mixqsam2.eval.paired import paired_difference

    pairs = {"box_miou": ("per_image_zoom", "per_image"), "JF": ("per_object_track_zoom", "per_object")}
    gains = {f"{name}/{set_name}": {key: paired_difference(r[zoomed], r[plain])
                                    for key, (zoomed, plain) in pairs.items() if zoomed in r}
             for name, sets in results.items() for set_name, r in sets.items()}
    return {key: g for key, g in gains.items() if g}


def table(results: dict, diffs: dict, gains: dict, box_zoom: float | None = None, track_zoom: float | None = None,
          baselines: dict | None = None, against: dict | None = None, fill: dict | None = None) -> str:
    """The tables of a run; ``baselines``: its GrabCut scores, ``against``: each checkpoint's
    comparison with them (:func:`against_grabcut`), both or neither; ``fill``: each checkpoint
    against fill-the-box (:func:`against_fill`)."""
    zoom = f" | box mIoU, zoom {box_zoom}" if box_zoom else ""
    lines = [f"| checkpoint | set | box mIoU{zoom} | fill-the-box | video J&F | first-mask J&F | lost objects | "
             "absent / empty there | ms/frame |", "|---|---|---|---|---|---|---|---|---|" + ("---|" if box_zoom else "")]
    for name, sets in results.items():
        for set_name in SETS:
            r = sets[set_name]
            zoomed = f" | {r['box_miou_zoom']:.3f}" if box_zoom else ""
            lines.append(f"| {name} | {set_name} | {r['box_miou']:.3f}{zoomed} | {r['box_fill_miou']:.3f} | "
                         f"{r['JF']:.3f} | {r['first_mask_JF']:.3f} | {r['lost']}/{r['objects']} | "
                         f"{r['absent_share']:.1%} / {r['empty_when_absent']:.0%} | {r['ms_per_frame']:.1f} |")
    bins = [label for label, _, _ in area_bins()]
    lines += ["", "| checkpoint | set | " + " | ".join(f"box mIoU / fill, area {b} px" for b in bins) + " |",
              "|---|---|" + "---|" * len(bins)]
    for name, sets in results.items():
        for set_name in SETS:
            for suffix, label in (("", ""), ("_zoom", f", zoom {box_zoom}")) if box_zoom else (("", ""),):
                cells = [sets[set_name][f"box_miou{suffix}_by_area"].get(b) for b in bins]
                fills = [sets[set_name]["box_miou_by_area"].get(b) for b in bins]
                lines.append(_area_row(f"{name}{label}", set_name, cells, fills))
    for set_name in SETS if baselines else ():  # GrabCut's bins carry their own fill-the-box
        cells = [baselines[set_name]["by_area"].get(b) for b in bins]
        lines.append(_area_row("GrabCut", set_name, cells, cells))
    lines += _grabcut_table(baselines, against, box_zoom, track_zoom) if baselines else []
    lines += _differences_table(f"checkpoint − fill-the-box, paired per image (floor: +{FILL_FLOOR} held out)", fill,
                                {"box_miou": "box mIoU", "box_miou_zoom": f"box mIoU, zoom {box_zoom}"}) if fill else []
    lines += ["", "| comparison | box mIoU diff [95% CI] | J&F diff [95% CI] |", "|---|---|---|"]
    for key, d in diffs.items():
        lines.append(f"| {key} | {_interval(d['box_miou'])} | {_interval(d['JF'])} |")
        if "box_miou_zoom" in d or "JF_track_zoom" in d:
            box, track = (_interval(d[k]) if k in d else "" for k in ("box_miou_zoom", "JF_track_zoom"))
            lines.append(f"| {key}, zoomed (box / track zoom) | {box} | {track} |")
    bins = frame_bins()
    lines += ["", "| checkpoint | set | empty when present | " + " | ".join(f"IoU {b} frames after the prompt" for b in bins)
              + " |", "|---|---|---|" + "---|" * len(bins)]
    for name, sets in results.items():
        for set_name in SETS:
            r = sets[set_name]  # runs before 2026-12-06 did not count these
            by_frames, empty = r.get("iou_by_frames_since_prompt", {}), r.get("empty_when_present")
            lines.append(f"| {name} | {set_name} | {'-' if empty is None else f'{empty:.1%}'} | " + " | ".join(
                f"{by_frames[b]:.3f}" if b in by_frames else "-" for b in bins) + " |")
    first = next(iter(results.values()))  # the same for every checkpoint; recorded since 2026-12-06
    for set_name in SETS if "first_mask_iou_by_frames" in first[SETS[0]] else ():
        repeated = first[set_name]["first_mask_iou_by_frames"]
        lines.append(f"| the prompt mask, repeated | {set_name} | - | " + " | ".join(
            f"{repeated[b]:.3f}" if b in repeated else "-" for b in bins) + " |")
    if track_zoom:
        lines += ["", f"| checkpoint | set | video J&F, track zoom {track_zoom} | lost objects | ms/frame |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {set_name} | {r['JF_track_zoom']:.3f} | {r['lost_track_zoom']}/{r['objects']} | "
                  f"{r['ms_per_frame_track_zoom']:.1f} |" for name, sets in results.items() for set_name, r in sets.items()]
    columns = {"box_miou": f"box mIoU, box zoom {box_zoom}", "JF": f"video J&F, track zoom {track_zoom}"}
    columns = {key: label for key, label in columns.items() if any(key in d for d in gains.values())}
    if gains:
        lines += ["", "| checkpoint/set | " + " | ".join(f"{label} − plain [95% CI]" for label in columns.values()) + " |",
                  "|---|" + "---|" * len(columns)]
        lines += [f"| {key} | " + " | ".join(_interval(d[c]) for c in columns) + " |" for key, d in gains.items()]
    return "\n".join(lines) + "\n"


def _area_row(label: str, set_name: str, cells: list, fills: list) -> str:
    """One row of the by-area table: box mIoU / fill-the-box (instances) per bin, "-" where empty."""
    return f"| {label} | {set_name} | " + " | ".join(
        f"{c['box_miou']:.3f} / {f['fill']:.3f} (n={c['instances']})" if c else "-" for c, f in zip(cells, fills)) + " |"


def _grabcut_table(baselines: dict, against: dict, box_zoom: float | None, track_zoom: float | None) -> list[str]:
    lines = ["", "| set | GrabCut from the box, mIoU | GrabCut tracks, J&F |", "|---|---|---|"]
    lines += [f"| {s} | {b['grabcut_miou']:.3f} | {b['grabcut_track_JF']:.3f} |" for s, b in baselines.items()]
    labels = {"box_miou": "box mIoU", "box_miou_zoom": f"box mIoU, zoom {box_zoom}", "JF": "J&F",
              "JF_track_zoom": f"J&F, track zoom {track_zoom}"}
    return lines + _differences_table("checkpoint − GrabCut, paired", against, labels)


def _differences_table(title: str, diffs: dict, labels: dict) -> list[str]:
    """Paired differences, a row per comparison and a column per score of ``labels`` any row has."""
    columns = [key for key in labels if any(key in d for d in diffs.values())]
    return (["", f"| {title} | " + " | ".join(f"{labels[c]} diff [95% CI]" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
            + [f"| {key} | " + " | ".join(_interval(d[c]) if c in d else "-" for c in columns) + " |"
               for key, d in diffs.items()])


def _interval(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def hardest_grid(model, video_dirs: list[Path], per_video: dict, path: str, count: int = 3, columns: int = 6) -> None:
    """Frames of the ``count`` lowest-J&F videos: ground truth red, prediction green."""
    import cv2
    import numpy as np

    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.eval.videos import evaluate_video

    hardest = sorted(per_video, key=per_video.get)[:count]
    videos = {v.name: v for d in video_dirs for v in _named(open_video_set(d), d)}
    rows = []
    for name in hardest:
        video = videos[name]
        shown = set(np.linspace(0, len(video.frame_names) - 1, columns).round().astype(int).tolist())
        masks = {}
        evaluate_video(model, video, on_mask=lambda key, m: masks.__setitem__(key, m))
        tiles = []
        for index, (frame_name, rgb) in enumerate(zip(video.frame_names, video.frames())):
            if index not in shown:
                continue
            tile = rgb.copy()
            for obj_id, truth in (video.annotation(frame_name) or {}).items():
                _outline(tile, truth, (255, 0, 0))
            for (vid, _, frame), mask in masks.items():
                if vid == name and frame == frame_name:
                    _outline(tile, mask, (0, 255, 0))
            cv2.putText(tile, f"{name} t={index} J&F={per_video[name]:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (255, 255, 255), 1)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, axis=1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def _outline(tile, mask, color) -> None:
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(tile, contours, -1, color, 1)


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(quality_run, parse_args(argv))  # bad input: one line on stderr, exit 2


def quality_run(args) -> int:
    """Evaluate ``args.checkpoint`` (or merge ``args.merge``), write the JSON and print the tables."""
    if args.merge:
        return write_comparison(merged_runs(args.merge), args.out)
    import torch

    from mixqsam2.models import build_model, get_spec

    checkpoints = args.checkpoint or {"shipped": str(get_spec("pico").checkpoint)}
    sets = data_sets(Path(args.out).parent / "data", args)
    models = {name: build_model("pico", path) for name, path in checkpoints.items()}  # bad files: before any work
    grabcut = {set_name: score_grabcut(*sets[set_name]) for set_name in SETS} if args.baselines else None
    results = {name: {set_name: evaluate(model, *sets[set_name], box_zoom=args.box_zoom, track_zoom=args.track_zoom)
                      for set_name in SETS} for name, model in models.items()}
    last = list(checkpoints)[-1]
    hardest_grid(models[last], sets["heldout"][1], results[last]["heldout"]["per_video"], args.figure)
    return write_comparison({
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, python {platform.python_version()}",
        "checkpoints": checkpoints, "frames": args.frames, "video_seeds": args.video_seeds,
        "box_zoom": args.box_zoom, "track_zoom": args.track_zoom, "results": results,
        **({"baselines": grabcut} if grabcut else {}), "figure": args.figure,
        "data": {name: [Path(images).name] + [Path(v).name for v in videos] for name, (images, videos) in sets.items()},
    }, args.out)


def write_comparison(run: dict, out: str) -> int:
    """Add the pairwise comparisons, the comparisons with GrabCut (where the run scored it) and
    fill-the-box, and the zoom gains to ``run``, write it to ``out`` and print the tables."""
    from mixqsam2.fileio import write_json_atomic

    results, baselines = run["results"], run.get("baselines")
    run = dict(run, comparisons=comparisons(results) if len(results) > 1 else {}, zoom_gains=zoom_gains(results),
               against_grabcut=against_grabcut(results, baselines) if baselines else {},
               against_fill=against_fill(results))
    tables = table(results, run["comparisons"], run["zoom_gains"], run["box_zoom"], run["track_zoom"], baselines,
                   run["against_grabcut"], run["against_fill"])
    write_json_atomic(out, run)
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
