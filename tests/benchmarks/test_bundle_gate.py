"""benchmarks/bundle_gate.py: a candidate replaces the bundled pico only if every criterion passes."""

import doctest
import json

import pytest


def _interval(mean, low, high, units=40):
    return {"mean": mean, "low": low, "high": high, "units": units}


def _inputs(held=(0.05, 0.01, 0.09), gen3=-0.01, box_held=0.0, box_gen3=0.0, missed=10, absent_called=40):
    """The three kinds of result the gate reads, shaped as the benchmark scripts write them;
    the defaults pass every criterion (bundled: 10 of 200 present missed, 40 of 100 absent called)."""
    against = {"heldout": _interval(*held), "train-gen": _interval(gen3, gen3 - 0.04, gen3 + 0.04)}
    per_object = {"heldout/s/v0#1": 0.3, "heldout/s/v1#1": 0.5, "train-gen/s/v0#1": 0.9}
    bank = {"spec": {"checkpoint": "c.pt", "frames": 200, "seeds": [9141, 9142]},
            "against": {"checkpoint": "b.pt", "jf": {"fifo@6": against}},
            "runs": {"fifo@6": {"per_object": per_object}}}
    box = lambda mean: {"box_miou": _interval(mean, mean - 0.01, mean + 0.01, 200)}
    quality = {"checkpoints": {"bundled": "b.pt", "cand": "c.pt"},
               "results": {"cand": {"heldout": {"box_miou": 0.45, "box_fill_miou": 0.39}}},
               "comparisons": {"cand-bundled/heldout": box(box_held), "cand-bundled/train-gen": box(box_gen3)}}
    scores = lambda path, m, a: {"checkpoints": {"m": path}, "data": ["heldout-videos-seed9003"],
                                 "results": {"m": {"present": 200, "missed": m, "absent": 100,
                                                   "scored_absent_when_absent": a}}}
    return bank, quality, scores("b.pt", 10, 40), scores("./c.pt", missed, absent_called)


def _run(bundle_gate, tmp_path, inputs, options=()):
    paths = []
    for name, value in zip(("bank", "quality", "bundled_scores", "candidate_scores"), inputs):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(value))
    out = tmp_path / "gate.json"
    code = bundle_gate.main(["--bank", str(paths[0]), "--quality", str(paths[1]), "--object-scores", str(paths[2]),
                             str(paths[3]), "--out", str(out), *options])
    return code, out


def test_the_docstring_examples_hold(bundle_gate):
    result = doctest.testmod(bundle_gate)
    assert result.attempted > 0 and result.failed == 0


def test_a_candidate_that_passes_every_criterion_ships(bundle_gate, tmp_path):
    code, out = _run(bundle_gate, tmp_path, _inputs())
    result = json.loads(out.read_text())
    assert code == 0 and result["ship"] and all(c["pass"] for c in result["gate"])
    assert (result["inputs"]["bundled"], result["inputs"]["candidate"]) == ("b.pt", "c.pt")
    floors = {c["criterion"]: c for c in result["floors"]}
    assert floors["J&F, held out, 200 frames, FIFO@6"]["value"] == pytest.approx(0.4)  # held-out objects only
    assert floors["box mIoU over fill-the-box, held out"]["pass"] and not floors["box mIoU, held out"]["pass"]


@pytest.mark.parametrize("change, failing", [
    ({"held": (0.04, 0.0, 0.08)}, "long videos, held out"),         # an interval that reaches 0 is not a gain
    ({"gen3": -0.03}, "long videos, generator 3"),
    ({"box_held": -0.02}, "boxes, held out"),
    ({"box_gen3": -0.02}, "boxes, generator 3"),
    ({"missed": 16}, "present scored absent"),                      # 8 % against the bundled 5 % x 1.5
    ({"absent_called": 20}, "absent scored absent"),                # a model that stops saying "absent"
])
def test_one_failed_criterion_stops_the_candidate(bundle_gate, tmp_path, change, failing):
    code, out = _run(bundle_gate, tmp_path, _inputs(**change))
    result = json.loads(out.read_text())
    assert code == 1 and not result["ship"]
    assert [c["criterion"] for c in result["gate"] if not c["pass"]] == [failing]


def _without_candidate(bank, quality, bundled, candidate):
    quality["checkpoints"] = {"bundled": "b.pt"}


def _swapped_scores(bank, quality, bundled, candidate):
    bundled["checkpoints"], candidate["checkpoints"] = candidate["checkpoints"], bundled["checkpoints"]


def _bank_against_another_model(bank, quality, bundled, candidate):
    bank["against"]["checkpoint"] = "v2.pt"


def _missing_interval_end(bank, quality, bundled, candidate):
    bank["against"]["jf"]["fifo@6"]["heldout"]["low"] = None


def _scores_on_other_videos(bank, quality, bundled, candidate):
    candidate["data"] = ["heldout-videos-seed9005"]


@pytest.mark.parametrize("spoil, message", [
    (_without_candidate, "two checkpoints"),
    (_swapped_scores, "disagree on the bundled model"),
    (_bank_against_another_model, "disagree on the bundled model"),
    (_missing_interval_end, "is not a number"),
    (_scores_on_other_videos, "other videos"),
])
def test_inputs_that_do_not_describe_the_two_models_are_refused_in_one_line(bundle_gate, tmp_path, capsys,
                                                                            spoil, message):
    inputs = _inputs()
    spoil(*inputs)
    code, out = _run(bundle_gate, tmp_path, inputs)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists() and not out.with_suffix(".md").exists()


def test_bad_thresholds_and_output_names_are_refused(bundle_gate, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _run(bundle_gate, tmp_path, _inputs(), ["--absent-ratio", "0"])
    assert exit_.value.code == 2
    (tmp_path / "gate.md").mkdir()  # where the table would go
    code, out = _run(bundle_gate, tmp_path, _inputs())
    assert code == 2 and "is a folder" in capsys.readouterr().err and not out.exists()
