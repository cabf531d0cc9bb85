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
    bank = {"against": {"jf": {"fifo@6": against}}, "runs": {"fifo@6": {"per_object": per_object}}}
    box = lambda mean: {"box_miou": _interval(mean, mean - 0.01, mean + 0.01, 200)}
    quality = {"checkpoints": {"bundled": "b.pt", "cand": "c.pt"},
               "results": {"cand": {"heldout": {"box_miou": 0.45, "box_fill_miou": 0.39}}},
               "comparisons": {"cand-bundled/heldout": box(box_held), "cand-bundled/train-gen": box(box_gen3)}}
    scores = lambda m, a: {"results": {"m": {"present": 200, "missed": m, "absent": 100,
                                             "scored_absent_when_absent": a}}}
    return bank, quality, scores(10, 40), scores(missed, absent_called)


def _run(bundle_gate, tmp_path, inputs):
    paths = []
    for name, value in zip(("bank", "quality", "bundled_scores", "candidate_scores"), inputs):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(value))
    out = tmp_path / "gate.json"
    code = bundle_gate.main(["--bank", str(paths[0]), "--quality", str(paths[1]), "--object-scores", str(paths[2]),
                             str(paths[3]), "--out", str(out)])
    return code, out


def test_the_docstring_examples_hold(bundle_gate):
    result = doctest.testmod(bundle_gate)
    assert result.attempted > 0 and result.failed == 0


def test_a_candidate_that_passes_every_criterion_ships(bundle_gate, tmp_path):
    code, out = _run(bundle_gate, tmp_path, _inputs())
    result = json.loads(out.read_text())
    assert code == 0 and result["ship"] and all(c["pass"] for c in result["gate"])
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


def test_a_quality_result_without_the_candidate_is_refused_in_one_line(bundle_gate, tmp_path, capsys):
    bank, quality, bundled, candidate = _inputs()
    quality["checkpoints"] = {"bundled": "b.pt"}
    code, out = _run(bundle_gate, tmp_path, (bank, quality, bundled, candidate))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "two checkpoints" in err
    assert not out.exists() and not out.with_suffix(".md").exists()
