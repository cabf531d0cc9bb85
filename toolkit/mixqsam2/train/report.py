"""Training curves as PNGs: one run's loss, running IoU and share of present targets scored
absent per step (image and video steps apart), or several runs' IoU side by side.

>>> history = [{"step": s, "kind": "image" if s % 2 == 0 else "video", "loss": 1.0, "iou": 0.5}
...            for s in range(10)]
>>> import tempfile, pathlib
>>> plot_curve(history, pathlib.Path(tempfile.mkdtemp()) / "curve.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixqsam2.fileio import write_figure_atomic


def _running(values: np.ndarray, window: int, statistic) -> np.ndarray:
    """``statistic`` (``np.mean``, ``np.median``) of each run of ``window`` consecutive
    ``values`` (of all of them when there are fewer)."""
    window = max(1, min(window, len(values)))
    return statistic(np.lib.stride_tricks.sliding_window_view(values, window), axis=1)


def _smoothed(rows: list[dict], key: str, window: int, median: bool = False) -> tuple[list[int], np.ndarray]:
    """(steps, running mean, or ``median``, of ``key`` over ``window`` steps) of the ``rows``
    that recorded ``key`` as a number (NaN: a step with nothing to measure, left out).

    >>> _smoothed([{"step": s, "loss": v} for s, v in enumerate([1.0, 900.0, 2.0])], "loss", 3, median=True)
    ([2], array([2.]))
    """
    rows = [r for r in rows if not np.isnan(r.get(key, np.nan))]
    if not rows:
        return [], np.array([])
    values = np.array([r[key] for r in rows], float)
    values = _running(values, window, np.median if median else np.mean)
    return [r["step"] for r in rows][len(rows) - len(values):], values


def plot_curve(history: list[dict], path: str | Path, window: int = 50) -> None:
    """Write ``path`` (PNG) against the step: the loss's running median (left; its mean would
    follow the steps whose frames with a target scored absent add sam2's constant -1024 mask
    fill, a loss hundreds of times the usual without gradient), the running IoU (middle) and
    the running share of present targets scored absent (right; runs since 2026-12-06)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_iou, ax_missed) = plt.subplots(1, 3, figsize=(15, 4))
    for kind, color in (("image", "tab:blue"), ("video", "tab:orange")):
        rows = [r for r in history if r["kind"] == kind]
        for ax, key, median in ((ax_loss, "loss", True), (ax_iou, "iou", False), (ax_missed, "missed", False)):
            steps, values = _smoothed(rows, key, window // 2, median)
            if steps:
                ax.plot(steps, values, color=color, label=f"{kind} steps")
    ax_loss.set(xlabel="step", ylabel="loss (sam2 weights)", yscale="log", title="training loss, running median")
    ax_iou.set(xlabel="step", ylabel="IoU of final masks", ylim=(0, 1), title="running IoU (train batches)")
    ax_missed.set(xlabel="step", ylabel="share of (frame, object) pairs", ylim=(0, 1),
                  title="present targets scored absent")
    if not ax_missed.lines:
        ax_missed.text(0.5, 0.5, "not recorded by this run", ha="center", transform=ax_missed.transAxes)
    for ax in (ax_loss, ax_iou, ax_missed):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


def _x_positions(name: str, history: list[dict], hours: bool) -> dict[int, float]:
    """Where each step of a run goes on the x axis: the step, or the training hours so far."""
    if not hours:
        return {r["step"]: r["step"] for r in history}
    if any("wall" not in r for r in history):
        raise ValueError(f"run {name!r} has no step times (recorded since 2026-11-26): plot it by step")
    return dict(zip((r["step"] for r in history), np.cumsum([r["wall"] for r in history]) / 3600))


def plot_runs(runs: dict[str, list[dict]], path: str | Path, window: int = 50, hours: bool = False) -> None:
    """Write ``path`` (PNG): smoothed IoU against the step of several runs (``{name: history}``),
    image steps left, video steps right; with ``hours``, against the run's training hours so
    far (the sum of its steps' ``wall``), to compare runs of other step costs at equal time.

    >>> import tempfile, pathlib
    >>> plot_runs({"a": [{"step": 0, "kind": "image", "iou": 0.5}]}, pathlib.Path(tempfile.mkdtemp()) / "runs.png")
    >>> plot_runs({"a": [{"step": 0, "kind": "image", "iou": 0.5, "wall": 3.0}]},
    ...           pathlib.Path(tempfile.mkdtemp()) / "runs.png", hours=True)
    >>> plot_runs({"old": [{"step": 0, "kind": "image", "iou": 0.5}]}, "never-written.png", hours=True)
    Traceback (most recent call last):
    ValueError: run 'old' has no step times (recorded since 2026-11-26): plot it by step
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = {name: _x_positions(name, history, hours) for name, history in runs.items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("image", "video")):
        for name, history in runs.items():
            rows = [r for r in history if r["kind"] == kind]
            if rows:
                steps, iou = _smoothed(rows, "iou", window // 2)
                ax.plot([x[name][step] for step in steps], iou, label=name)
        ax.set(xlabel="training hours" if hours else "step", ylabel="IoU of final masks", ylim=(0, 1),
               title=f"running IoU, {kind} steps")
        ax.grid(alpha=0.3)
        if ax.get_lines():  # a panel without steps of its kind stays empty, without a legend
            ax.legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)
