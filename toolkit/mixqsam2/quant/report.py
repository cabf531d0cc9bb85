"""A precision plan for people: a markdown table and a PNG chart along the network.

>>> from mixqsam2.quant.plan import PrecisionPlan
>>> plan = PrecisionPlan("pico", "0" * 64, 6.0, 6.0, "ilp", {}, {"a.fc": {"kind": "linear", "params": 10,
...     "format": "int8", "score": 0.5, "error": 1e-3, "act_amax": 2.0, "reason": "ilp"}})
>>> print(markdown_table(plan).splitlines()[2])
| a.fc | linear | 10 | int8 | 0.5000 | 1.00e-03 | 2.000 | ilp |
"""

from __future__ import annotations

from pathlib import Path

from mixqsam2.fileio import write_bytes_atomic, write_figure_atomic
from mixqsam2.quant.plan import PrecisionPlan

FORMAT_COLORS = {"fp32": "#444444", "fp16": "#4c72b0", "int8": "#55a868", "int4": "#dd8452"}


def error_label(plan: PrecisionPlan) -> str:
    """What the plan's ``error`` is: the expected NSR, or the measured output distortion."""
    measured = plan.calibration.get("config", {}).get("importance") == "measured"
    return "measured distortion" if measured else "expected NSR"


def markdown_table(plan: PrecisionPlan) -> str:
    lines = [f"| layer | kind | params | format | WAIS | {error_label(plan)} | act amax | reason |",
             "|---|---|---|---|---|---|---|---|"]
    for name, layer in plan.layers.items():
        amax = f"{layer['act_amax']:.3f}" if layer.get("act_amax") is not None else "-"
        lines.append(f"| {name} | {layer['kind']} | {layer['params']} | {layer['format']} | {layer['score']:.4f} | "
                     f"{layer['error']:.2e} | {amax} | {layer['reason']} |")
    return "\n".join(lines)


def write_report(plan: PrecisionPlan, markdown_path: str | Path, chart_path: str | Path) -> None:
    """``markdown_path``: summary + per-layer table; ``chart_path``: score and format per layer."""
    header = (f"# Precision plan: {plan.model}\n\nbudget {plan.budget_bits:g} effective bits, achieved "
              f"{plan.effective_bits:.3f}; solver {plan.solver}; deployable: {plan.deployable}\n\n")
    write_bytes_atomic(markdown_path, (header + markdown_table(plan) + "\n").encode())
    _chart(plan, chart_path)


def _chart(plan: PrecisionPlan, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(plan.layers)
    scores = [plan.layers[n]["score"] for n in names]
    floor = 0.5 * min((x for x in scores if x > 0), default=1.0)  # unscored layers (not reached) drawn hatched
    colors = [FORMAT_COLORS.get(plan.layers[n]["format"], "#c44e52") for n in names]
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.12), 4))
    bars = ax.bar(range(len(names)), [x if x > 0 else floor for x in scores], color=colors)
    for bar, score in zip(bars, scores):
        if score <= 0:
            bar.set_hatch("///")
            bar.set_alpha(0.4)
    ax.set(yscale="log", xlabel="layer (network order)", ylabel="WAIS score (normalized)",
           title=f"{plan.model}: {plan.effective_bits:.2f} effective bits ({plan.solver})")
    parts = sorted({n.split(".")[0] for n in names}, key=lambda p: names.index(next(n for n in names if n.startswith(p))))
    for part in parts:
        first = next(i for i, n in enumerate(names) if n.startswith(part + "."))
        ax.axvline(first - 0.5, color="gray", lw=0.5)
        ax.text(first, ax.get_ylim()[1], part, fontsize=7, va="top", rotation=90)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for f, c in FORMAT_COLORS.items()]
    ax.legend(handles, list(FORMAT_COLORS), loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure_atomic(path, fig)
