"""Does memory synthesis pay off? Bank policies at small capacity against SAM2's FIFO at K=6.

Data: long generated videos from two generators, seeds 9101/9102 (never used in training):
``train-gen`` (the training generator, :mod:`mixqsam2.data.synth`) and ``heldout`` (the
independent validation generator, :mod:`mixqsam2.data.heldout`); default 2 generators x 2
seeds x 6 videos x 200 frames = 24 videos. First-frame mask prompts, pico, 1 torch thread.

Configurations are ``policy@K`` (the bank policy at capacity K), or ``policy@K:poolB`` with
memory attention reading the bank B x B pooled (``--memory-pool B``).

Quality: every object is a unit (``train-gen/seed9101/vid0003#2``, J&F = (J + F) / 2). Each
configuration ``policy@K`` is compared with FIFO at 6 by a paired bootstrap over the objects
(95 % interval of the mean difference), over all objects and per stratum: *working* tracks
(FIFO@6 keeps the object: its J&F >= 0.5) and *lost* ones (the rest). Merging policies are
also compared with FIFO at their own K. Repeating the first mask is the floor.

Cost: memory-attention time per frame and object by K and by pooled setting (a full bank; the
median of ``--repeats`` timings, every setting interleaved round-robin in one process so that
machine noise hits them alike; warm-up first), with the bank update of each policy timed the
same way, on pico or on ``--timing-model`` (e.g. sam2.1_hiera_t at 1024 px with random
weights: the shapes decide the time).
FLOPs of one memory-attention and one image-encoder forward are counted for pico and for
sam2.1_hiera_t at 1024 px (random weights, meta tensors: shapes only) with
``torch.utils.flop_counter`` (matmuls, convolutions and attention through sdpa's math path,
2 FLOPs a multiply-add; not counted: softmax, norms, activations, RoPE, positional adds), and
fitted as a + b K.

Goal (issue 14): a configuration with working-track J&F >= FIFO@6 - 0.005 (mean difference
at least -0.005 and its interval reaching 0) at <= 0.6x FIFO@6's memory-attention time (the
issue asks it of K=3; every configuration is judged), and the paper's ``sis`` at 3 not below
FIFO at 3 (the interval of the difference reaching 0).

Results (JSON with every object's score, so that strata can be recomputed; the table as
Markdown next to it) are written after each configuration; a rerun skips the finished ones.
``--track-zoom S`` tracks small objects on a window that follows them (as ``run_stream
--track-zoom``), every configuration alike.

    python benchmarks/memory_bank.py --out out/bench/memory_bank.json --plot benchmarks/figures/memory_bank.png
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BASELINE = "fifo@6"
CONFIGS = "fifo@6,fifo@3,prune@3,sis@3,sis-pair@3"
LOW_CAPACITY = "fifo@2,sis@2"
WORKING = 0.5  # FIFO@6's J&F on an object from which its track counts as working
TOLERANCE = 0.005
TIME_TARGET = 0.6
FLOP_MODELS = ("pico", "sam2.1_hiera_t")


def parse_args(argv=None):
    from mixqsam2.cli.common import open_share

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="pico checkpoint (default: the shipped one)")
    parser.add_argument("--videos", type=int, default=6, help="videos per generator and seed")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2, help="how many seeds, from --first-seed on")
    parser.add_argument("--first-seed", type=int, default=9101)
    parser.add_argument("--configs", default=CONFIGS,
                        help=f"policy@K[:poolB] list (fifo@6 is always run; default {CONFIGS})")
    parser.add_argument("--low-capacity", action="store_true", help=f"add {LOW_CAPACITY}")
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per graph (after warm-up)")
    parser.add_argument("--timing-model", default="pico",
                        help="model whose graphs are timed (pico: the evaluated checkpoint; others: random weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--track-zoom", type=open_share, default=None,
                        help="track small objects on a window that follows them (StreamingTracker(track_zoom=S))")
    parser.add_argument("--data", default=None, help="cache of generated sets (default: <out folder>/data)")
    parser.add_argument("--out", default="out/bench/memory_bank.json")
    parser.add_argument("--plot", default="out/bench/memory_bank.png")
    return parser.parse_args(argv)


def configs(args) -> list[str]:
    """The baseline first, then the requested configurations in order, each once (checked before any work)."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.memory.synthesis import RULES
    from mixqsam2.memory.tracker import check_capacity

    requested = args.configs.split(",") + (LOW_CAPACITY.split(",") if args.low_capacity else [])
    keys = list(dict.fromkeys([BASELINE, *(c.strip() for c in requested if c.strip())]))
    for key in keys:
        if not re.fullmatch(r"[a-z-]+@[1-9][0-9]*(:pool([2-9]|[1-9][0-9]+))?", key) or split(key)[0] not in RULES:
            raise UserInputError(f"bad configuration {key!r}: policy@K or policy@K:poolB (B >= 2) with a policy "
                                 f"of {', '.join(RULES)}")
        check_capacity(split(key)[1], split(key)[0])
    return keys


def check_pooling(keys: list[str], models) -> None:
    """Every configuration's pooling divides the memory grid of every model it runs or is costed on."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.models.graphs import check_memory_pool

    for key in keys:
        for model in models:
            try:
                check_memory_pool(split(key)[2], model.sam_image_embedding_size)
            except UserInputError as error:
                raise UserInputError(f"configuration {key!r}: {error}") from None


def split(key: str) -> tuple[str, int, int]:
    """``policy@K[:poolB]`` -> (policy, K, B).

    >>> split("fifo@6:pool2"), split("sis@3")
    (('fifo', 6, 2), ('sis', 3, 1))
    """
    policy, setting_ = key.split("@")
    return policy, *read_setting(setting_)


def setting(key: str) -> str:
    """How a configuration reads the bank: ``K`` or ``K:poolB`` (what its cost depends on)."""
    return key.split("@")[1]


def read_setting(setting_: str) -> tuple[int, int]:
    """``K[:poolB]`` -> (K, B).

    >>> read_setting("6:pool2"), read_setting("3")
    ((6, 2), (3, 1))
    """
    k, _, pool = setting_.partition(":pool")
    return int(k), int(pool or 1)


# ---------------------------------------------------------------------- data and quality
def load_videos(args) -> list:
    """Both generators' videos, named ``<generator>/seed<S>/vid0000`` (names repeat across sets)."""
    from mixqsam2.data.heldout import cached_heldout_set
    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.data.synth import cached_set

    root = Path(args.data) if args.data else Path(args.out).parent / "data"
    videos = []
    for generator, make in {"train-gen": cached_set, "heldout": cached_heldout_set}.items():
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for video in open_video_set(make(root, "videos", num=args.videos, frames=args.frames, seed=seed)):
                video.name = f"{generator}/seed{seed}/{video.name}"
                videos.append(video)
    return videos


def per_object(result: dict) -> dict[str, float]:
    """``{"<video>#<object>": J&F}`` of an evaluation."""
    return {f"{name}#{obj}": (s["J"] + s["F"]) / 2
            for name, video in result["per_video"].items() for obj, s in video["per_object"].items()}


def evaluate(model, videos, key: str, track_zoom: float | None = None) -> dict:
    """One configuration: its scores per object, overall J and F, per-stage latency, bank bytes."""
    from mixqsam2.eval.videos import evaluate_videos

    policy, k, pool = split(key)
    result = evaluate_videos(model, videos, memory=policy, capacity=k, track_zoom=track_zoom, memory_pool=pool)
    return {"memory": policy, "capacity": k, "memory_pool": pool, "J": result["J"], "F": result["F"], "JF": result["JF"],
            "objects": result["objects"], "memory_bank_bytes": result["memory_bank_bytes"],
            "latency_ms": result["latency_ms"], "per_object": per_object(result)}


def strata(baseline: dict[str, float]) -> dict[str, set[str]]:
    """Objects overall, where FIFO@6 keeps the track (J&F >= 0.5), and where it loses it."""
    working = {u for u, s in baseline.items() if s >= WORKING}
    return {"all": set(baseline), "working": working, "lost": set(baseline) - working}


def compare(scores: dict[str, float], reference: dict[str, float], units: set[str]) -> dict | None:
    """Paired bootstrap of scores - reference over ``units`` (None without units)."""
    from mixqsam2.eval.paired import paired_difference

    a = {u: s for u, s in scores.items() if u in units}
    return paired_difference(a, reference) if a else None


def summarize(scores: dict[str, float], groups: dict[str, set[str]], references: dict[str, dict]) -> dict:
    """Per stratum: mean J&F, objects and the paired difference to each reference
    (``vs_<name>``); the mean J&F per generator."""
    out = {}
    for stratum, units in groups.items():
        values = [s for u, s in scores.items() if u in units]
        out[stratum] = {"JF": float(np.mean(values)) if values else None, "objects": len(values),
                        **{f"vs_{name}": compare(scores, ref, units) for name, ref in references.items()}}
    out["by_generator"] = {g: float(np.mean([scores[u] for u in units]))
                           for g, units in sorted(generators(scores).items())}
    return out


def generators(units) -> dict[str, set[str]]:
    """Objects per generator, the first part of an object's name.

    >>> sorted((g, sorted(u)) for g, u in generators(["heldout/s1/v0#1", "train-gen/s1/v0#1", "heldout/s1/v1#1"]).items())
    [('heldout', ['heldout/s1/v0#1', 'heldout/s1/v1#1']), ('train-gen', ['train-gen/s1/v0#1'])]
    """
    out: dict[str, set[str]] = {}
    for unit in units:
        out.setdefault(unit.split("/")[0], set()).add(unit)
    return out


def summaries(runs: dict, first_mask: dict[str, float]) -> dict:
    """Stratified summaries of every configuration (against FIFO@6, and merging policies
    against FIFO at their K too) and of the first-mask floor."""
    baseline = runs[BASELINE]["per_object"]
    groups = strata(baseline)
    out = {}
    for key, run in runs.items():
        same_k = f"fifo@{run['capacity']}"
        references = {name: runs[name]["per_object"] for name in (BASELINE, same_k) if name in runs and name != key}
        out[key] = summarize(run["per_object"], groups, references)
    out["first-mask"] = summarize(first_mask, groups, {BASELINE: baseline})
    return out


# ---------------------------------------------------------------------- cost
def attention_inputs(config, capacity: int, rng) -> dict[str, np.ndarray]:
    """Memory-attention inputs for one object with a full bank and every pointer valid."""
    hw, mem, hidden, pointers = config.memory_tokens, config.mem_dim, config.hidden_dim, config.pointer_slots(capacity)
    return {
        "image_embed": rng.standard_normal((1, hidden, *config.feature_size), np.float32),
        "cond_features": rng.standard_normal((1, 1, hw, mem), np.float32),
        "bank_features": rng.standard_normal((1, capacity, hw, mem), np.float32),
        "bank_valid": np.ones((1, capacity), bool),
        "bank_slot": np.minimum(np.arange(capacity), config.num_maskmem - 2)[None].astype(np.int64),
        "pointers": rng.standard_normal((1, pointers, hidden), np.float32),
        "pointer_valid": np.ones((1, pointers), bool),
        "pointer_tpos": rng.uniform(0, 1, (1, pointers)).astype(np.float32),
    }


def update_inputs(config, capacity: int, rng) -> dict[str, np.ndarray]:
    """Bank-update inputs for one object: a full bank (so every policy does its full-bank work)."""
    hw, mem, hidden = config.memory_tokens, config.mem_dim, config.hidden_dim
    return {
        "bank_features": rng.standard_normal((1, capacity, hw, mem), np.float32),
        "bank_pointers": rng.standard_normal((1, capacity, hidden), np.float32),
        "bank_positions": np.arange(capacity, dtype=np.float32)[None],
        "bank_scores": rng.standard_normal((1, capacity), np.float32),
        "bank_counts": np.ones((1, capacity), np.float32),
        "bank_valid": np.ones((1, capacity), bool),
        "new_features": rng.standard_normal((1, hw, mem), np.float32),
        "new_pointer": rng.standard_normal((1, hidden), np.float32),
        "new_position": np.array([capacity], np.float32),
        "new_score": np.ones(1, np.float32),
    }


def attention_settings(keys: list[str]) -> list[str]:
    """Memory attention's settings to cost: K = 1 ... the largest K, then the pooled ones of ``keys``."""
    largest = max(split(key)[1] for key in keys)
    return [str(k) for k in range(1, largest + 1)] + sorted({setting(k) for k in keys if split(k)[2] > 1})


def timing_names(keys: list[str]) -> list[str]:
    """What is timed: memory attention in every :func:`attention_settings`, and each policy's bank
    update at its K (``sis_update.<policy>@<K>``; pooling does not change the update)."""
    updates = dict.fromkeys(f"sis_update.{split(key)[0]}@{split(key)[1]}" for key in keys)
    return [f"memory_attention@{s}" for s in attention_settings(keys)] + list(updates)


def timing_jobs(model, keys: list[str]) -> dict:
    """``{name: (graphs, graph, inputs)}`` for every :func:`timing_names` entry."""
    from mixqsam2.models.graphs import TorchGraphs

    rng, graphs, jobs = np.random.default_rng(0), {}, {}
    for name in timing_names(keys):
        graph, setting_ = name.split("@")  # "memory_attention", "sis_update.<policy>"
        k, pool = read_setting(setting_)
        if setting_ not in graphs:
            graphs[setting_] = TorchGraphs(model, k, pool)
        make_inputs = attention_inputs if graph == "memory_attention" else update_inputs
        jobs[name] = (graphs[setting_], graph, make_inputs(graphs[setting_].config, k, rng))
    return jobs


def time_graphs(model, keys: list[str], repeats: int, warmup: int = 5) -> dict:
    """Median and quartiles (ms) of every job, all jobs interleaved round-robin (the order
    rotates each round), and memory attention by setting relative to K=6."""
    jobs = timing_jobs(model, keys)
    names = list(jobs)
    samples = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            graphs, graph, inputs = jobs[name]
            start = time.perf_counter()
            graphs.run(graph, inputs)
            if round_ >= warmup:
                samples[name].append(1000 * (time.perf_counter() - start))
    ms = {name: dict(zip(("q1_ms", "median_ms", "q3_ms"), np.percentile(v, [25, 50, 75]).tolist()))
          for name, v in samples.items()}
    base = ms[f"memory_attention@{setting(BASELINE)}"]["median_ms"]
    ratio = {name.split("@")[1]: v["median_ms"] / base for name, v in ms.items() if name.startswith("memory_attention")}
    return {"repeats": repeats, "warmup": warmup, "objects": 1, "ms": ms, "memory_attention_ratio": ratio}


def timing_model(name: str, pico):
    """The model whose graphs are timed: the evaluated pico, or another built with random weights."""
    from mixqsam2.models import build_model

    if name == "pico":
        return pico
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(name)


def graph_flops(module, inputs: dict[str, np.ndarray], role: str) -> dict:
    """FLOPs of one forward of a graph on meta tensors: ``{"gflop", "by_op"}``. sdpa runs its
    math path: the CPU's fused kernel is invisible to the counter."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from mixqsam2.models.graph_config import GRAPH_IO

    module = module.eval().to("meta")
    tensors = [torch.from_numpy(inputs[name]).to("meta") for name in GRAPH_IO[role][0]]
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(*tensors)
    by_op = {str(op): n / 1e9 for op, n in counter.get_flop_counts()["Global"].items()}
    return {"gflop": counter.get_total_flops() / 1e9, "by_op": by_op}


def count_flops(name: str, settings: list[str]) -> dict:
    """Memory attention in every setting (``K`` or ``K:poolB``; fit a + b K over the plain ones)
    and the image encoder of a model, in GFLOP per frame and object. The model is built for
    counting only (random weights where none ship)."""
    from mixqsam2.models import build_model
    from mixqsam2.models.graphs import ImageEncoderGraph, MemoryAttentionGraph, graph_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(name)
    config, rng = graph_config(model), np.random.default_rng(0)
    # every graph is built before any is counted: counting moves the shared model to "meta"
    shapes = {s: read_setting(s) for s in settings}
    attention_graphs = {s: MemoryAttentionGraph(model, k, pool) for s, (k, pool) in shapes.items()}
    encoder_graph = ImageEncoderGraph(model)
    attention = {s: graph_flops(graph, attention_inputs(config, shapes[s][0], rng), "memory_attention")
                 for s, graph in attention_graphs.items()}
    image = {"image": np.zeros((1, 3, config.image_size, config.image_size), np.float32)}
    encoder = graph_flops(encoder_graph, image, "image_encoder")
    plain = [s for s in settings if shapes[s][1] == 1]
    slope, intercept = np.polyfit([shapes[s][0] for s in plain], [attention[s]["gflop"] for s in plain], 1)
    return {"image_size": config.image_size, "image_encoder": encoder, "memory_attention": attention,
            "memory_attention_fit": {"a": float(intercept), "b": float(slope)}}


# ---------------------------------------------------------------------- report
def goal(summary: dict, timing: dict) -> dict:
    """Issue 14's targets: ``{"configs": {key: verdicts}, "sis_not_below_fifo_3": bool | None}``
    for every configuration other than the baseline and the first-mask floor."""
    verdicts = {}
    for key in (k for k in summary if k not in (BASELINE, "first-mask")):
        diff = summary[key]["working"][f"vs_{BASELINE}"]
        quality = bool(diff and diff["mean"] >= -TOLERANCE and diff["high"] >= 0)
        ratio = timing["memory_attention_ratio"][setting(key)]
        verdicts[key] = {"working_ok": quality, "time_ratio": ratio, "time_ok": ratio <= TIME_TARGET,
                         "met": quality and ratio <= TIME_TARGET}
    sis = summary.get("sis@3", {}).get("all", {}).get("vs_fifo@3")
    return {"configs": verdicts, "timing_model": timing.get("model", "pico"),
            "sis_not_below_fifo_3": sis["high"] >= 0 if sis else None}


def _diff(d: dict | None) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "-"


def _jf(row: dict, stratum: str, versus: str = f"vs_{BASELINE}") -> str:
    s, d = row[stratum], row[stratum].get(versus)
    return "-" if s["JF"] is None else f"{s['JF']:.3f}" + (f" ({_diff(d)})" if d else "")


def table(result: dict) -> str:
    """Markdown: J&F by stratum with paired differences, and the cost of every configuration."""
    summary, timing = result["summary"], result["timing"]
    n = {s: summary[BASELINE][s]["objects"] for s in ("all", "working", "lost")}
    zoom = result["spec"].get("track_zoom")
    lines = [f"objects: {n['all']} ({n['working']} working, {n['lost']} lost under {BASELINE}); "
             f"differences vs {BASELINE} [95% CI]" + (f"; track zoom {zoom}" if zoom else ""),
             "", f"| policy@K | J&F all | working J&F | lost J&F | all vs fifo@K | mem-attn time / K=6 "
             f"({timing.get('model', 'pico')}) | update ms |",
             "|---|---|---|---|---|---|---|"]
    for key, row in summary.items():
        policy, k, _ = split(key) if "@" in key else (None, None, None)
        same_k = row["all"].get(f"vs_fifo@{k}") if k != split(BASELINE)[1] else None
        ratio = f"{timing['memory_attention_ratio'][setting(key)]:.2f}" if k else "-"
        timed = timing["ms"].get(f"sis_update.{policy}@{k}")  # a cost run of other configs lacks some
        update = f"{timed['median_ms']:.2f}" if timed else "-"
        lines.append(f"| {key} | {_jf(row, 'all')} | {_jf(row, 'working')} | {_jf(row, 'lost')} | {_diff(same_k)} | "
                     f"{ratio} | {update} |")
    return "\n".join(lines + ["", *cost_lines(result), "", *goal_lines(result["goal"])]) + "\n"


def cost_lines(result: dict) -> list[str]:
    """Markdown: memory-attention time and GFLOP by K, the fitted a + b K, the encoders."""
    timing, flops = result["timing"], result["flops"]
    lines = [f"| setting | {timing.get('model', 'pico')} mem-attn ms (median [q1, q3]) | time / K=6 |"
             + "".join(f" {m} mem-attn GFLOP |" for m in flops), "|---|---|---|" + "---|" * len(flops)]
    for k, ratio in timing["memory_attention_ratio"].items():
        ms = timing["ms"][f"memory_attention@{k}"]
        gflop = "".join(f" {f['memory_attention'][k]['gflop']:.2f} |" if k in f["memory_attention"] else " - |"
                        for f in flops.values())
        lines.append(f"| {k} | {ms['median_ms']:.2f} [{ms['q1_ms']:.2f}, {ms['q3_ms']:.2f}] | {ratio:.2f} |{gflop}")
    for name, f in flops.items():
        fit = f["memory_attention_fit"]
        lines.append(f"\n{name} at {f['image_size']} px: memory attention {fit['a']:.4g} + {fit['b']:.4g} K GFLOP "
                     f"per frame and object, image encoder {f['image_encoder']['gflop']:.4g} GFLOP")
    return lines


def goal_lines(goal_: dict) -> list[str]:
    """The verdicts of :func:`goal`, one line each."""
    lines = [f"goal: working J&F >= {BASELINE} - {TOLERANCE} (interval reaching 0) at <= {TIME_TARGET}x its "
             f"memory-attention time ({goal_['timing_model']})"]
    for key, g in goal_["configs"].items():
        lines.append(f"- {key}: quality {'ok' if g['working_ok'] else 'no'}, time {g['time_ratio']:.2f}x "
                     f"{'ok' if g['time_ok'] else 'no'}: {'MET' if g['met'] else 'missed'}")
    lines.append(f"- sis@3 >= fifo@3 (interval reaching 0): {goal_['sis_not_below_fifo_3']}")
    return lines


def plot(result: dict, path: str) -> None:
    """Top: per-object J&F of each configuration against FIFO@6. Bottom: differences to
    FIFO@6 by stratum; memory-attention cost by K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixqsam2.fileio import write_figure_atomic

    scattered = [k for k in result["summary"] if k in result["runs"] and k != BASELINE]
    fig = plt.figure(figsize=(max(11, 3.6 * len(scattered)), 8.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    for ax, key in zip(np.atleast_1d(top.subplots(1, len(scattered))) if scattered else (), scattered):
        _scatter(ax, result["runs"], key)
    diff_ax, cost_ax = bottom.subplots(1, 2)
    _differences(diff_ax, result["summary"])
    _cost(cost_ax, result)
    write_figure_atomic(path, fig)


def _scatter(ax, runs: dict, key: str) -> None:
    base = runs[BASELINE]["per_object"]
    for generator, colour in (("train-gen", "tab:blue"), ("heldout", "tab:orange")):
        units = [u for u in runs[key]["per_object"] if u.startswith(generator + "/") and u in base]
        ax.scatter([base[u] for u in units], [runs[key]["per_object"][u] for u in units], s=14, alpha=0.7,
                   color=colour, label=generator)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.axvline(WORKING, color="grey", ls=":", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{BASELINE} J&F (per object)", ylabel=f"{key} J&F", title=key)
    ax.legend(loc="lower right", fontsize=8)


def _differences(ax, summary: dict) -> None:
    keys = [k for k in summary if k not in (BASELINE, "first-mask")]
    for offset, (stratum, colour) in zip((-0.2, 0, 0.2), (("all", "black"), ("working", "tab:green"),
                                                           ("lost", "tab:red"))):
        points = [(i + offset, summary[k][stratum][f"vs_{BASELINE}"]) for i, k in enumerate(keys)]
        points = [(x, d) for x, d in points if d]
        if points:
            x, d = zip(*points)
            mean = np.array([v["mean"] for v in d])
            err = [mean - [v["low"] for v in d], [v["high"] for v in d] - mean]
            ax.errorbar(x, mean, yerr=err, fmt="o", color=colour, capsize=3,
                        label=f"{stratum} ({summary[BASELINE][stratum]['objects']} objects)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(-TOLERANCE, color="tab:green", ls=":", lw=0.8)
    ax.set_xticks(range(len(keys)), keys, rotation=20)
    ax.set(ylabel=f"J&F - {BASELINE} (paired, 95% CI)", title="difference to SAM2's FIFO at 6")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _cost(ax, result: dict) -> None:
    """Plain K as lines, pooled settings as single points at their K."""
    timing = result["timing"]
    curves = {f"{timing.get('model', 'pico')} time (measured)": (timing["memory_attention_ratio"], "o", "-")}
    for name, f in result["flops"].items():
        gflop = {s: v["gflop"] for s, v in f["memory_attention"].items()}
        label = f"{name} FLOPs ({gflop['6']:.3g} GFLOP at K=6, encoder {f['image_encoder']['gflop']:.3g})"
        curves[label] = ({s: g / gflop["6"] for s, g in gflop.items()}, "s", "--")
    for label, (ratio, marker, style) in curves.items():
        plain = {int(s): r for s, r in ratio.items() if ":" not in s}
        line = ax.plot(list(plain), list(plain.values()), marker=marker, ls=style, label=label)[0]
        for s, r in ((s, r) for s, r in ratio.items() if ":" in s):
            k = read_setting(s)[0]
            ax.plot(k, r, marker="*", ms=11, color=line.get_color(), ls="")
            ax.annotate(s, (k, r), textcoords="offset points", xytext=(6, -3), fontsize=7)
    ax.axhline(TIME_TARGET, color="tab:red", ls=":", lw=0.8, label=f"target {TIME_TARGET}")
    ax.set(xlabel="bank capacity K", ylabel="memory attention / K=6", title="memory-attention cost per frame")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


# ---------------------------------------------------------------------- main
def load_result(path: Path, spec: dict) -> dict:
    """The results of an earlier run with the same settings, or a fresh record."""
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import read_json

    if not path.is_file():
        return {"spec": spec, "runs": {}}
    result = read_json(path, f"{path} not found")
    if result.get("spec") != spec:
        raise UserInputError(f"{path} holds results of other settings ({result.get('spec')}); give another --out")
    return result


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(run, parse_args(argv))  # bad input: one line on stderr, exit 2


def run(args) -> int:
    import torch

    from mixqsam2.eval.videos import first_mask_baseline
    from mixqsam2.fileio import write_bytes_atomic, write_json_atomic
    from mixqsam2.models import build_model, get_spec

    torch.set_num_threads(args.threads)
    keys, out = configs(args), Path(args.out)
    checkpoint = str(args.checkpoint or get_spec("pico").checkpoint)
    spec = {"model": "pico", "checkpoint": checkpoint, "videos_per_set": args.videos, "frames": args.frames,
            "seeds": list(range(args.first_seed, args.first_seed + args.seeds)), "generators": ["train-gen", "heldout"],
            **({"track_zoom": args.track_zoom} if args.track_zoom else {})}
    result = load_result(out, spec)
    result["machine"] = f"{platform.machine()}, {torch.get_num_threads()} threads, python {platform.python_version()}"
    model = build_model("pico", checkpoint)
    timed = timing_model(args.timing_model, model)
    check_pooling(keys, [model, timed])  # the FLOP models' grids are multiples of pico's
    videos = load_videos(args)
    settings = attention_settings(keys)
    flops = result.get("flops", {})
    if any(not set(settings) <= set(flops.get(name, {}).get("memory_attention", {})) for name in FLOP_MODELS):
        result["flops"] = {name: count_flops(name, settings) for name in FLOP_MODELS}
    timing = result.get("timing", {})
    if set(timing.get("ms", {})) != set(timing_names(keys)) or timing.get("model", "pico") != args.timing_model:
        result["timing"] = {**time_graphs(timed, keys, args.repeats),
                            "model": args.timing_model}
    write_json_atomic(out, result)
    for key in keys:
        if key not in result["runs"]:
            result["runs"][key] = evaluate(model, videos, key, args.track_zoom)
            write_json_atomic(out, result)
            print(f"{key}: J&F {result['runs'][key]['JF']:.4f}", flush=True)
    result["first_mask"] = per_object(first_mask_baseline(videos))
    result["summary"] = summaries({k: result["runs"][k] for k in keys}, result["first_mask"])
    result["goal"] = goal(result["summary"], result["timing"])
    result["table"] = table(result)
    write_json_atomic(out, result)
    write_bytes_atomic(out.with_suffix(".md"), result["table"].encode())
    plot(result, args.plot)
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
