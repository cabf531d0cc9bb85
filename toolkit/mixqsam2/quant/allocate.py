"""Choose one format per layer under a budget of effective weight bits.

The problem is a multiple-choice knapsack: layer l takes option f with cost
``params_l * bits_lf`` and error ``e_lf``; minimize sum e_lf subject to
sum cost <= budget * sum params. :func:`solve_exact` solves it as an integer linear program
(scipy's ``milp``, HiGHS); :func:`solve_greedy` is the paper's procedure (rank by
importance, assign bit buckets, lower the least important layer while over budget, then
raise the layer with the largest importance x params while budget remains).

>>> layers = [LayerOptions("a", 100, 1.0, {"int4": (4.0, 0.5), "int8": (8.0, 0.1)}),
...           LayerOptions("b", 100, 0.1, {"int4": (4.0, 0.3), "int8": (8.0, 0.2)})]
>>> solve_exact(layers, budget_bits=6.0)
{'a': 'int8', 'b': 'int4'}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixqsam2.errors import UserInputError


@dataclass(frozen=True)
class LayerOptions:
    """A layer's allowed formats: name -> (effective bits, expected error)."""

    name: str
    params: int
    importance: float
    options: dict[str, tuple[float, float]]


def _total_params(layers: list[LayerOptions]) -> int:
    return sum(layer.params for layer in layers)


def min_budget(layers: list[LayerOptions]) -> float:
    """The smallest feasible budget: every layer in its cheapest allowed format."""
    cost = sum(layer.params * min(bits for bits, _ in layer.options.values()) for layer in layers)
    return cost / _total_params(layers)


def effective_bits(layers: list[LayerOptions], choice: dict[str, str]) -> float:
    """Parameter-weighted mean bits of ``choice``."""
    cost = sum(layer.params * layer.options[choice[layer.name]][0] for layer in layers)
    return cost / _total_params(layers)


def check_feasible(layers: list[LayerOptions], budget_bits: float) -> None:
    """A budget below :func:`min_budget` is a user error that names the minimum."""
    floor = min_budget(layers)
    if budget_bits < floor - 1e-9:
        raise UserInputError(
            f"budget of {budget_bits:g} effective bits is infeasible: the allowed formats need at least "
            f"{floor:.4f} (pinned layers and TensorRT's rules included)"
        )


def solve_exact(layers: list[LayerOptions], budget_bits: float) -> dict[str, str]:
    """Minimum total error within the budget (integer linear program, HiGHS)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    check_feasible(layers, budget_bits)
    index = [(layer.name, fmt) for layer in layers for fmt in layer.options]
    errors = np.array([dict(layer.options)[fmt][1] for layer in layers for fmt in layer.options])
    costs = np.array([layer.params * layer.options[fmt][0] for layer in layers for fmt in layer.options])
    one_each = np.zeros((len(layers), len(index)))
    column = 0
    for row, layer in enumerate(layers):
        one_each[row, column : column + len(layer.options)] = 1
        column += len(layer.options)
    budget = budget_bits * _total_params(layers) * (1 + 1e-12)
    constraints = [LinearConstraint(one_each, 1, 1), LinearConstraint(costs[None, :], -np.inf, budget)]
    result = milp(errors, constraints=constraints, integrality=np.ones(len(index)), bounds=Bounds(0, 1))
    if result.x is None:
        raise RuntimeError(f"HiGHS found no solution: {result.message}")
    return {name: fmt for (name, fmt), x in zip(index, result.x) if x > 0.5}


def solve_greedy(layers: list[LayerOptions], budget_bits: float) -> dict[str, str]:
    """The paper's greedy allocation (no optimality guarantee), over each layer's allowed formats."""
    check_feasible(layers, budget_bits)
    ladders = {layer.name: sorted(layer.options, key=lambda f: layer.options[f][0]) for layer in layers}
    levels = sorted({bits for layer in layers for bits, _ in layer.options.values()}, reverse=True)
    ranked = sorted(layers, key=lambda layer: -layer.importance)
    level = {}
    for rank, layer in enumerate(ranked):  # equal buckets, most important -> highest bits
        target = levels[min(rank * len(levels) // len(ranked), len(levels) - 1)]
        ladder = ladders[layer.name]
        fitting = [i for i, f in enumerate(ladder) if layer.options[f][0] <= target]
        level[layer.name] = fitting[-1] if fitting else 0

    def bits() -> float:
        return effective_bits(layers, {name: ladders[name][i] for name, i in level.items()})

    for layer in reversed(ranked):  # least important first, one step at a time, while over budget
        while bits() > budget_bits + 1e-12 and level[layer.name] > 0:
            level[layer.name] -= 1
    while True:  # raise the largest importance x params that still fits
        room = [layer for layer in ranked if level[layer.name] + 1 < len(ladders[layer.name])]
        room = [layer for layer in room if _raised_bits(layers, ladders, level, layer) <= budget_bits + 1e-12]
        if not room:
            break
        best = max(room, key=lambda layer: layer.importance * layer.params)
        level[best.name] += 1
    return {name: ladders[name][i] for name, i in level.items()}


def _raised_bits(layers, ladders, level, layer) -> float:
    trial = dict(level)
    trial[layer.name] += 1
    return effective_bits(layers, {name: ladders[name][i] for name, i in trial.items()})
