"""benchmarks/memory_bank_combine.py --against: one model's configurations against another's, paired per
object, by stratum and by generator, and what a read costs each model against its own FIFO@6."""

import doctest
import json

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


@pytest.mark.parametrize("module", ["memory_bank_combine", "memory_bank"])
def test_the_docstring_examples_hold(memory_bank_combine, module):
    # memory_bank: the module memory_bank_combine imports (benchmarks/ is not a doctest path)
    result = doctest.testmod(memory_bank_combine if module == "memory_bank_combine" else memory_bank_combine.memory_bank)
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


def _bank_result(runs: dict, checkpoint: str, seed: int) -> dict:
    """A memory_bank.py result as it is written (one seed), with the cost of its graphs."""
    ms = {"q1_ms": 1.0, "median_ms": 1.0, "q3_ms": 1.0}
    return {**_result(runs, checkpoint), "spec": {"checkpoint": checkpoint, "frames": 200, "seeds": [seed]},
            "first_mask": dict.fromkeys(THIS["fifo@6"], 0.05), "flops": {},
            "timing": {"ms": {"memory_attention@6": ms, "memory_attention@6:pool4": ms, "memory_attention@3": ms},
                       "memory_attention_ratio": {"6": 1.0, "6:pool4": 0.5, "3": 0.6}}}


def _written(tmp_path, name: str, result: dict) -> str:
    (tmp_path / name).write_text(json.dumps(result))
    return str(tmp_path / name)


def test_the_command_keeps_the_comparison_in_its_json(memory_bank_combine, tmp_path):
    this = _written(tmp_path, "this.json", _bank_result(THIS, "this", 1))
    that = _written(tmp_path, "that.json", _bank_result(THAT, "that", 1))
    out = tmp_path / "combined.json"
    assert memory_bank_combine.main([this, "--against", that, "--out", str(out)]) == 0
    combined = json.loads(out.read_text())
    assert combined["against"]["read_cost"]["fifo@6:pool4"]["all"]["mean"] == pytest.approx(0.05)
    assert "read cost" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("bad", ["a config on other objects", "no fifo@6", "not a result"])
def test_bad_comparisons_are_refused_with_one_line(memory_bank_combine, tmp_path, capsys, bad):
    that = {**THAT, "fifo@6:pool4": {"a/1": 0.4}} if bad == "a config on other objects" else THAT
    if bad == "no fifo@6":
        that = {k: v for k, v in THAT.items() if k != "fifo@6"}
    this = _written(tmp_path, "this.json", _bank_result(THIS, "this", 1))
    result = [1, 2] if bad == "not a result" else _bank_result(that, "that", 1)
    out = tmp_path / "combined.json"
    capsys.readouterr()
    assert memory_bank_combine.main([this, "--against", _written(tmp_path, "that.json", result), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
