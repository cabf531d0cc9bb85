"""benchmarks/replicates.py: model A against its same-seed control B, over several training seeds."""

import doctest
import json

import numpy as np
import pytest

from mixqsam2.eval.paired import paired_difference


def _quality(name: str, heldout_jf: dict, box: dict, frames: int = 120) -> dict:
    """A pico_quality.py result of one checkpoint (what replicates.py reads of it)."""
    return {"frames": frames, "video_seeds": [9003, 9004], "box_zoom": 0.3, "track_zoom": 0.3,
            "results": {name: {"heldout": {"per_object": heldout_jf, "per_image": box}}}}


# seed 1: A wins x by 0.2; seed 2: A loses x by 0.1 and wins y by 0.3; z is scored by seed 1 only
SEED1 = (_quality("a", {"x": 0.6, "y": 0.5, "z": 0.9}, {"0": 0.8}), _quality("b", {"x": 0.4, "y": 0.5, "z": 0.1}, {"0": 0.7}))
SEED2 = (_quality("a", {"x": 0.3, "y": 0.7}, {"0": 0.6}), _quality("b", {"x": 0.4, "y": 0.4}, {"0": 0.7}))


def _written(tmp_path, results) -> list[str]:
    paths = []
    for i, result in enumerate(results):
        paths.append(str(tmp_path / f"r{i}.json"))
        (tmp_path / f"r{i}.json").write_text(json.dumps(result))
    return paths


def test_the_docstring_examples_hold(replicates):
    result = doctest.testmod(replicates)
    assert result.attempted > 0 and result.failed == 0


def test_differences_are_averaged_per_unit_over_the_seed_pairs(replicates):
    rows = replicates.replicated_differences([SEED1, SEED2])
    jf = rows["heldout/JF"]
    assert (jf["units"], jf["dropped"]) == (2, 1)  # z: one seed only
    averaged = {"x": (0.2 - 0.1) / 2, "y": (0.0 + 0.3) / 2}
    assert jf["units_only"] == pytest.approx(paired_difference(averaged, {"x": 0.0, "y": 0.0}))
    assert [d["mean"] for d in jf["per_pair"]] == pytest.approx([0.1, 0.1]) and jf["agree"]
    assert rows["heldout/box_miou"]["units_only"]["mean"] == pytest.approx(0.0)
    assert "heldout/JF_track_zoom" not in rows  # neither result has it


def test_seeds_that_disagree_widen_the_two_level_interval_only(replicates):
    units = [f"g/o{i}" for i in range(40)]
    noise = np.random.default_rng(0).normal(0, 0.01, size=(2, 40))
    bank = lambda scores: {"spec": {}, "runs": {"fifo@6": {"per_object": dict(zip(units, scores))}}}
    up = (bank(0.5 + 0.1 + noise[0]), bank(np.full(40, 0.5)))  # A ahead by 0.1 at seed 1
    down = (bank(0.5 - 0.06 + noise[1]), bank(np.full(40, 0.5)))  # behind by 0.06 at seed 2
    row = replicates.replicated_differences([up, down])["g/fifo@6"]
    assert row["units_only"]["low"] > 0  # over units alone, A looks ahead
    assert row["pairs_and_units"]["low"] < -0.05 and row["pairs_and_units"]["high"] > 0.09
    assert not row["agree"]


def test_the_command_writes_json_and_table(replicates, tmp_path):
    a1, b1, a2, b2 = _written(tmp_path, [*SEED1, *SEED2])
    out = tmp_path / "rep.json"
    assert replicates.main(["--pair", a1, b1, "--pair", a2, b2, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["differences"]["heldout/JF"]["units"] == 2
    assert "| heldout/JF | 2 | **+0.100" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("bad, message", [
    ("two checkpoints", "exactly one checkpoint"),
    ("other frames", "other settings"),
    ("same file twice", "given twice"),
    ("not a result", "not a result of"),
])
def test_bad_results_are_refused_with_one_line(replicates, tmp_path, capsys, bad, message):
    a1, b1, a2, b2 = _written(tmp_path, [*SEED1, *SEED2])
    if bad == "two checkpoints":
        (tmp_path / "r0.json").write_text(json.dumps({**SEED1[0], "results": {**SEED1[0]["results"],
                                                                                 **SEED1[1]["results"]}}))
    elif bad == "other frames":
        (tmp_path / "r3.json").write_text(json.dumps(_quality("b", {"x": 0.4}, {"0": 0.7}, frames=60)))
    elif bad == "same file twice":
        b2 = b1
    else:
        (tmp_path / "r2.json").write_text("[1, 2]")
    capsys.readouterr()
    assert replicates.main(["--pair", a1, b1, "--pair", a2, b2, "--out", str(tmp_path / "no.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "no.json").exists()
