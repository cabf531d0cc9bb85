"""What a spike in a training curve is made of: replay chosen steps of a ``train-pico`` run.

Each step's batch, bank policy and random draws are remade from the run's settings, and the
step's forward pass runs with the weights the run saved last (not those it had at that step;
the recorded loss is printed beside it). Per step: the loss terms, the gradient norm of the
weighted focal mask loss and of the whole loss before clipping, and the share of present
targets that the object-score head scored absent (sam2 fills their masks with -1024 logits,
a constant: a large loss without gradient). Without ``--steps``: the ``--spikes`` video steps
with the largest recorded focal mask loss, each with the next video step. Replays run on the
CPU: a run trained on a GPU draws other random numbers there, and its replayed losses differ
from the recorded ones by more than the weights explain.

    python benchmarks/replay_steps.py out/train/run.pt --steps 2543,2547 --out out/bench/replay.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv=None):
    from mixqsam2.cli.common import Parser, positive_int

    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run's checkpoint path (its training state is saved beside it)")
    parser.add_argument("--steps", type=step_numbers,
                        help="comma-separated step numbers (default: the largest spikes and their neighbours)")
    parser.add_argument("--spikes", type=positive_int, default=3, help="how many spikes to replay without --steps")
    parser.add_argument("--out", required=True, help="result JSON")
    return parser.parse_args(argv)


def step_numbers(text: str) -> list[int]:
    """``--steps``: step numbers, e.g. ``2543,2547``."""
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give step numbers separated by commas, got {text!r}") from None
    if min(steps) < 0:
        raise argparse.ArgumentTypeError(f"step numbers start at 0, got {text!r}")
    return steps


def chosen_steps(history: list[dict], spikes: int) -> list[int]:
    """The ``spikes`` video steps with the largest focal mask loss, each followed by the next
    video step (an ordinary one to compare with, unless it spiked too).

    >>> chosen_steps([{"step": s, "kind": "video", "loss_mask": m} for s, m in enumerate([0.1, 9.0, 0.2, 5.0])], 1)
    [1, 2]
    """
    video = [r for r in history if r["kind"] == "video"]
    largest = sorted(range(len(video)), key=lambda i: -video[i]["loss_mask"])[:spikes]
    return sorted({video[j]["step"] for i in largest for j in (i, i + 1) if j < len(video)})


def gradient_norm(model, loss) -> float:
    """The norm of the gradient of ``loss`` over ``model``'s parameters (the graph is kept)."""
    import torch

    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)))


def replay(run: str, steps: list[int] | None, spikes: int) -> list[dict]:
    from tqdm import tqdm

    from mixqsam2.errors import UserInputError
    from mixqsam2.train.loop import LOSS_WEIGHTS, generated_batch, loss_function, saved_run, step_forward

    cfg, model, history = saved_run(run)
    if cfg.videos:
        raise UserInputError(f"{run} trained on video folders; this replays generated batches only")
    recorded = {r["step"]: r for r in history}
    steps = steps or chosen_steps(history, spikes)
    if not steps:
        raise UserInputError(f"{run} recorded no video step; give --steps")
    unknown = [s for s in steps if s not in recorded]
    if unknown:
        raise UserInputError(f"{run} recorded no step {unknown[0]} (it has steps 0-{len(history) - 1})")
    loss_fn, rows = loss_function(), []
    for step in tqdm(steps, desc="replay", unit="step"):
        losses, record = step_forward(model, loss_fn, cfg, step, generated_batch(cfg, step, model.image_size))
        rows.append({**record, "recorded_loss": recorded[step]["loss"],
                     "mask_loss_grad_norm": gradient_norm(model, LOSS_WEIGHTS["loss_mask"] * losses["loss_mask"]),
                     "grad_norm": gradient_norm(model, losses["core_loss"])})
    return rows


def _pooled(record: dict) -> str:
    """``:poolB`` for a step that read its bank B x B pooled (as ``--configs`` names it), else nothing."""
    return f":pool{record['pool']}" if record.get("pool", 1) > 1 else ""


def table(rows: list[dict]) -> str:
    lines = ["| step | kind | policy@capacity | loss (recorded) | 20 x focal mask loss | its grad norm | "
             "grad norm, whole loss | present targets scored absent |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['kind']} | {r.get('policy', '-')}@{r.get('capacity', '-')}{_pooled(r)} | {r['loss']:.2f} "
              f"({r['recorded_loss']:.2f}) | {20 * r['loss_mask']:.1f} | {r['mask_loss_grad_norm']:.1f} | "
              f"{r['grad_norm']:.1f} | {r['missed']:.0%} |" for r in rows]
    return "\n".join(lines) + "\n"


def replay_run(args) -> int:
    from mixqsam2.errors import UserInputError
    from mixqsam2.fileio import check_output_file, write_json_atomic

    out = check_output_file(args.out).resolve()
    if out in {Path(args.run).resolve(), Path(f"{args.run}.state").resolve()}:
        raise UserInputError(f"--out {args.out} is the run's checkpoint or state; give another file")
    rows = replay(args.run, args.steps, args.spikes)
    write_json_atomic(args.out, {"run": args.run, "steps": rows})
    print(table(rows))
    return 0


def main(argv=None) -> int:
    from mixqsam2.cli.common import run_cli

    return run_cli(replay_run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
