"""benchmarks/replicates.py: model A against its same-seed control B, over several training seeds."""

import doctest
import json

import pytest


def _quality(name: str, heldout_jf: dict, box: dict) -> dict:
    """A pico_quality.py result of one checkpoint (what replicates.py reads of it)."""
    return {"results": {name: {"heldout": {"per_object": heldout_jf, "per_image": box}}}}


# seed 1: A wins x by 0.2; seed 2: A loses x by 0.1 and wins y by 0.3; z is scored by seed 1 only
SEED1 = (_quality("a", {"x": 0.6, "y": 0.5, "z": 0.9}, {"0": 0.8}), _quality("b", {"x": 0.4, "y": 0.5, "z": 0.1}, {"0": 0.7}))
SEED2 = (_quality("a", {"x": 0.3, "y": 0.7}, {"0": 0.6}), _quality("b", {"x": 0.4, "y": 0.4}, {"0": 0.7}))


def test_the_docstring_examples_hold(replicates):
    result = doctest.testmod(replicates)
    assert result.attempted > 0 and result.failed == 0


def test_differences_are_averaged_per_unit_over_the_seed_pairs(replicates):
    rows = replicates.replicated_difference([SEED1, SEED2])
    jf = rows["heldout/JF"]
    assert jf["units"] == 2  # z: one seed only
    assert jf["pooled"]["mean"] == pytest.approx(((0.2 - 0.1) / 2 + (0.0 + 0.3) / 2) / 2)
    assert [d["mean"] for d in jf["per_pair"]] == pytest.approx([0.1, 0.1])
    assert rows["heldout/box_miou"]["pooled"]["mean"] == pytest.approx(0.0)
    assert "heldout/JF_track_zoom" not in rows  # neither result has it


def test_the_command_writes_json_and_table_and_refuses_a_result_of_two_checkpoints(replicates, tmp_path, capsys):
    paths = []
    for i, result in enumerate([*SEED1, *SEED2]):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(result))
    out = tmp_path / "rep.json"
    assert replicates.main(["--pair", str(paths[0]), str(paths[1]), "--pair", str(paths[2]), str(paths[3]),
                            "--out", str(out)]) == 0
    assert json.loads(out.read_text())["differences"]["heldout/JF"]["units"] == 2
    assert "| heldout/JF | 2 | **+0.100" in out.with_suffix(".md").read_text()
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps({"results": {**SEED1[0]["results"], **SEED1[1]["results"]}}))
    capsys.readouterr()
    assert replicates.main(["--pair", str(merged), str(paths[1]), "--out", str(tmp_path / "no.json")]) == 2
    assert "exactly one checkpoint" in capsys.readouterr().err and not (tmp_path / "no.json").exists()
