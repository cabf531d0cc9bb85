"""The benchmark scripts are not a package: their tests get them as modules loaded from their path."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pico_quality():
    return _load("pico_quality")


@pytest.fixture(scope="session")
def replay_steps():
    return _load("replay_steps")


@pytest.fixture(scope="session")
def object_scores():
    return _load("object_scores")
