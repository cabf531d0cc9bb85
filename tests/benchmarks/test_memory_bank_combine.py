"""benchmarks/memory_bank_combine.py --against: one model's configurations against another's, paired per
object, by stratum and by generator, and what a read costs each model against its own FIFO@6."""

import doctest

import pytest

from mixqsam2.errors import UserInputError

# two generators, two objects each; under the reference's FIFO@6, "a/1" and "b/1" work and the others are lost
THIS = {"fifo@6": {"a/1": 0.9, "a/2": 0.3, "b/1": 0.7, "b/2": 0.2},
        "fifo@6:pool4": {"a/1": 0.8, "a/2": 0.3, "b/1": 0.7, "b/2": 0.1},
        "fifo@3": {"a/1": 0.5, "a/2": 0.2, "b/1": 0.6, "b/2": 0.2}}
THAT = {"fifo@6": {"a/1": 0.8, "a/2": 0.1, "b/1": 0.6, "b/2": 0.2},
        "fifo@6:pool4": {"a/1": 0.4, "a/2": 0.1, "b/1": 0.6, "b/2": 0.2}}


def _result(runs: dict, checkpoint: str) -> dict:
    return {"spec": {"checkpoint": checkpoint}, "runs": {k: {"capacity": 6, "per_object": v} for k, v in runs.items()}}


def test_the_docstring_examples_hold(memory_bank_combine):
    result = doctest.testmod(memory_bank_combine)
    assert result.attempted > 0 and result.failed == 0


def test_each_configuration_is_paired_with_the_other_models_fifo6_by_stratum_and_generator(memory_bank_combine):
    rows = memory_bank_combine.against(_result(THIS, "this"), _result(THAT, "that"))
    assert rows["objects"] == {"all": 4, "working": 2, "lost": 2, "a": 2, "b": 2}
    fifo3 = rows["jf"]["fifo@3"]
    assert fifo3["all"]["mean"] == pytest.approx((-0.3 + 0.1 + 0.0 + 0.0) / 4)
    assert fifo3["working"]["mean"] == pytest.approx((-0.3 + 0.0) / 2)  # a/1 and b/1, the reference's working tracks
    assert fifo3["a"]["mean"] == pytest.approx((-0.3 + 0.1) / 2)
    assert fifo3["b"]["units"] == 2 and fifo3["b"]["mean"] == pytest.approx(0.0)


def test_a_reads_cost_is_paired_across_the_two_models(memory_bank_combine):
    rows = memory_bank_combine.against(_result(THIS, "this"), _result(THAT, "that"))
    # pool4 costs this model -0.1 on a/1 and b/2, the other -0.4 on a/1: this one loses 0.3 less on a/1
    cost = rows["read_cost"]
    assert list(cost) == ["fifo@6:pool4"]  # fifo@3 ran on this model only
    assert cost["fifo@6:pool4"]["all"]["mean"] == pytest.approx((0.3 + 0.0 + 0.0 - 0.1) / 4)
    assert cost["fifo@6:pool4"]["working"]["mean"] == pytest.approx(0.3 / 2)
    assert cost["fifo@6:pool4"]["b"]["mean"] == pytest.approx(-0.1 / 2)
    table = memory_bank_combine.against_table(rows)
    assert "| fifo@6:pool4 | +0.050" in table and "a (2)" in table and "read cost" in table


def test_results_on_other_objects_are_refused(memory_bank_combine):
    other = _result({"fifo@6": {"a/1": 0.8}}, "that")
    with pytest.raises(UserInputError, match="other objects"):
        memory_bank_combine.against(_result(THIS, "this"), other)
