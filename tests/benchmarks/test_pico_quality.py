"""benchmarks/pico_quality.py: --merge compares checkpoints scored in separate runs as in one;
what it counts after each video's prompt frame."""

import json
from pathlib import Path

import numpy as np
import pytest

from mixqsam2.errors import UserInputError
from mixqsam2.eval.paired import paired_difference

SETS = ("train-gen", "heldout")


def _scores(offset: float) -> dict:
    """One set's scores as pico_quality.evaluate writes them with box and track zoom."""
    images = {str(i): 0.3 + 0.05 * i + offset for i in range(4)}
    objects = {f"seed9003/vid000{i}#1": 0.2 + 0.1 * i + offset for i in range(3)}
    by_area = {"0-1000": {"instances": 4, "box_miou": 0.5, "fill": 0.4}}
    return {"box_miou": 0.5 + offset, "box_fill_miou": 0.4, "instances": 4, "per_image": images,
            "per_image_fill": {k: 0.3 + 0.02 * i for i, k in enumerate(images)},
            "box_miou_by_area": by_area, "JF": 0.3 + offset, "first_mask_JF": 0.1, "objects": 3, "lost": 3,
            "per_object": objects, "ms_per_frame": 50.0, "absent_share": 0.2, "empty_when_absent": 0.1,
            "box_miou_zoom": 0.6 + offset, "per_image_zoom": {k: v + 0.1 for k, v in images.items()},
            "box_miou_zoom_by_area": by_area, "JF_track_zoom": 0.35 + offset,
            "per_object_track_zoom": {k: v + 0.05 for k, v in objects.items()}, "lost_track_zoom": 3,
            "ms_per_frame_track_zoom": 70.0, "iou_by_frames_since_prompt": {"1": 0.5 + offset, "2-5": 0.4},
            "empty_when_present": 0.05, "first_mask_iou_by_frames": {"1": 0.8, "2-5": 0.6}}


def _run(name: str, offset: float) -> dict:
    return {"machine": "x86_64, 1 threads", "checkpoints": {name: f"{name}.pt"}, "frames": 120, "video_seeds": [9003],
            "box_zoom": 0.3, "track_zoom": 0.3, "figure": f"{name}.png",
            "results": {name: {set_name: _scores(offset) for set_name in SETS}}}


def _write(path: Path, run) -> str:
    path.write_text(json.dumps(run))
    return str(path)


def test_merged_runs_pair_against_the_first(pico_quality, tmp_path, capsys):
    runs = {"base": _run("base", 0.0), "better": _run("better", 0.02)}
    paths = [_write(tmp_path / f"{name}.json", run) for name, run in runs.items()]
    out = tmp_path / "merged.json"
    assert pico_quality.main(["--merge", *paths, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["checkpoints"] == {"base": "base.pt", "better": "better.pt"}
    assert merged["merged_from"][paths[1]] == {"machine": "x86_64, 1 threads", "figure": "better.png"}
    pairs = {"box_miou": "per_image", "JF": "per_object", "box_miou_zoom": "per_image_zoom",
             "JF_track_zoom": "per_object_track_zoom"}
    for set_name in SETS:
        a, b = (runs[name]["results"][name][set_name] for name in ("better", "base"))
        diff = merged["comparisons"][f"better-base/{set_name}"]
        assert diff == {key: paired_difference(a[units], b[units]) for key, units in pairs.items()}
        assert diff["box_miou"]["mean"] == pytest.approx(0.02)
    printed = capsys.readouterr().out
    assert "| better-base/heldout | +0.020" in printed
    for name, offset in (("base", 0.0), ("better", 0.02)):
        scores = runs[name]["results"][name]["heldout"]
        diff = merged["against_fill"][f"{name}-fill/heldout"]
        assert diff["box_miou"] == paired_difference(scores["per_image"], scores["per_image_fill"])
        assert diff["box_miou"]["mean"] == pytest.approx(0.045 + offset)  # the mean of 0.03 i + offset, i = 0..3
        assert diff["box_miou_zoom"]["mean"] == pytest.approx(0.145 + offset)
    assert "| better-fill/heldout | +0.065" in printed
    assert "| better | heldout | 5.0% | 0.520 | 0.400 | - | - | - |" in printed
    assert "| the prompt mask, repeated | heldout | - | 0.800 | 0.600 | - | - | - |" in printed


class _Video:
    """One object: present in frames 0, 1 and 4, absent in 2; frame 3 unannotated."""

    name, frame_names = "v", ["f0", "f1", "f2", "f3", "f4"]

    def annotation(self, frame):
        square = np.zeros((4, 4), bool)
        square[:2, :2] = True
        return {"f0": {1: square}, "f1": {1: square}, "f2": {1: np.zeros((4, 4), bool)}, "f4": {1: square}}.get(frame)


def test_runs_without_fill_per_image_are_paired_with_the_fill_of_a_run_that_kept_it(pico_quality, tmp_path):
    older, new = _run("older", 0.05), _run("new", 0.0)  # older: written before fill-the-box was kept per image
    for scores in older["results"]["older"].values():
        del scores["per_image_fill"]
    paths = [_write(tmp_path / "older.json", older), _write(tmp_path / "new.json", new)]
    assert pico_quality.main(["--merge", *paths, "--out", str(tmp_path / "merged.json")]) == 0
    fill = json.loads((tmp_path / "merged.json").read_text())["against_fill"]
    assert sorted(fill) == ["new-fill/heldout", "new-fill/train-gen", "older-fill/heldout", "older-fill/train-gen"]
    older_scores, fills = older["results"]["older"]["heldout"], new["results"]["new"]["heldout"]["per_image_fill"]
    assert fill["older-fill/heldout"]["box_miou"] == paired_difference(older_scores["per_image"], fills)
    assert pico_quality.against_fill(older["results"]) == {}  # no run kept it: no comparison


def test_after_the_prompt_it_counts_absent_pairs_empty_answers_and_iou_by_frames_since(pico_quality):
    """f1 (1 frame after the prompt) is answered with half the object, f4 (3 after) with nothing."""
    after = pico_quality.AfterPrompt([_Video()])
    half = np.zeros((4, 4), bool)
    half[:2, :1] = True
    for frame in _Video.frame_names:  # the prompt frame and the unannotated frame count nowhere
        after(("v", 1, frame), half if frame == "f1" else np.zeros((4, 4), bool))
    assert (after.pairs, after.absent, after.empty, after.empty_present) == (3, 1, 1, 1)
    assert after.iou_by_frames() == {"1": 0.5, "2-5": 0.0}


@pytest.mark.parametrize("set_name", SETS)
@pytest.mark.parametrize("units", ["per_image", "per_image_zoom", "per_object", "per_object_track_zoom"])
def test_merge_refuses_runs_on_other_units(pico_quality, tmp_path, set_name, units):
    other = _run("other", 0.0)
    scored = other["results"]["other"][set_name][units]
    scored.pop(next(iter(scored)))
    paths = [_write(tmp_path / "base.json", _run("base", 0.0)), _write(tmp_path / "other.json", other)]
    with pytest.raises(UserInputError, match=f"scored other {set_name} "):
        pico_quality.merged_runs(paths)


@pytest.mark.parametrize("setting, value", [("frames", 60), ("video_seeds", [9004]), ("box_zoom", 0.2),
                                            ("track_zoom", 0.4)])
def test_merge_refuses_runs_with_other_settings(pico_quality, tmp_path, setting, value):
    other = dict(_run("other", 0.0), **{setting: value})
    paths = [_write(tmp_path / "base.json", _run("base", 0.0)), _write(tmp_path / "other.json", other)]
    with pytest.raises(UserInputError, match=f"other {setting} than"):
        pico_quality.merged_runs(paths)


def test_merge_refuses_a_repeated_name(pico_quality, tmp_path):
    paths = [_write(tmp_path / f"{i}.json", _run("base", 0.01 * i)) for i in range(2)]
    with pytest.raises(UserInputError, match="appears twice"):
        pico_quality.merged_runs(paths)


def _without_heldout_lost(run):
    del run["results"]["base"]["heldout"]["lost"]
    return run


@pytest.mark.parametrize("content, message", [
    ([1, 2], "is not a pico_quality result"),
    ({"a": 1}, "is not a pico_quality result"),
    (dict(_run("base", 0.0), results={}), "is not a pico_quality result"),
    (dict(_run("base", 0.0), checkpoints={}), "lacks its path"),
    (_without_heldout_lost(_run("base", 0.0)), "lacks heldout/lost"),
    (dict(_run("base", 0.0), results={"base": {"train-gen": _scores(0.0)}}), "lacks heldout/box_miou"),
])
def test_bad_merge_input_is_one_line_exit_2_and_writes_nothing(pico_quality, tmp_path, capsys, content, message):
    bad = _write(tmp_path / "bad.json", content)
    good = _write(tmp_path / "good.json", _run("good", 0.0))
    out = tmp_path / "merged.json"
    for order in ([bad, good], [good, bad]):
        assert pico_quality.main(["--merge", *order, "--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        assert not out.exists()


def test_a_missing_result_file_is_one_line(pico_quality, tmp_path, capsys):
    assert pico_quality.main(["--merge", str(tmp_path / "missing.json"), "--out", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: no pico_quality result at {tmp_path / 'missing.json'}"]


@pytest.mark.parametrize("option", [["--checkpoint", f"x={__file__}"], ["--box-zoom", "0.3"], ["--frames", "60"],
                                    ["--figure", "f.png"], ["--images", "20"], ["--no-baselines"]])
def test_merge_refuses_evaluation_options(pico_quality, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pico_quality.parse_args(["--merge", "a.json", *option])
    assert exit_info.value.code == 2
    assert f"it takes no {option[0]}" in capsys.readouterr().err


def test_merge_refuses_data_of_another_generator_version(pico_quality, tmp_path):
    data = {"heldout": ["heldout-images-num200-seed9001-v2"], "train-gen": ["images-num200-seed9001-gen3"]}
    base = dict(_run("base", 0.0), data=data)
    other = dict(_run("other", 0.0), data={**data, "train-gen": ["images-num200-seed9001-gen4"]})
    old = _run("old", 0.0)  # results written before the data folders were recorded
    paths = [_write(tmp_path / f"{run['figure']}.json", run) for run in (base, other, old)]
    with pytest.raises(UserInputError, match="other data"):
        pico_quality.merged_runs(paths[:2])
    merged = pico_quality.merged_runs([paths[0], paths[2]])
    assert list(merged["results"]) == ["base", "old"] and merged["data"] == data  # kept for a later merge


def _grabcut(offset: float = -0.1) -> dict:
    """GrabCut's scores of a set as pico_quality.baselines writes them, ``offset`` from _scores(0)."""
    images = {str(i): 0.3 + 0.05 * i + offset for i in range(4)}
    objects = {f"seed9003/vid000{i}#1": 0.2 + 0.1 * i + offset for i in range(3)}
    return {"grabcut_miou": 0.4, "per_image": images, "by_area": {"0-1000": {"instances": 4, "box_miou": 0.4, "fill": 0.4}},
            "grabcut_track_JF": 0.2, "per_object": objects}


def test_merged_runs_pair_every_checkpoint_against_grabcut(pico_quality, tmp_path, capsys):
    base = dict(_run("base", 0.0), baselines={s: _grabcut() for s in SETS})
    older = _run("older", 0.05)  # written before GrabCut was scored: the first run's scores serve
    paths = [_write(tmp_path / "older.json", older), _write(tmp_path / "base.json", base)]
    out = tmp_path / "merged.json"
    assert pico_quality.main(["--merge", *paths, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["baselines"] == base["baselines"]
    for name, offset in (("older", 0.05), ("base", 0.0)):
        diff = merged["against_grabcut"][f"{name}-GrabCut/heldout"]
        assert diff["box_miou"]["mean"] == pytest.approx(0.1 + offset)
        assert diff["box_miou_zoom"]["mean"] == pytest.approx(0.2 + offset)
        assert diff["JF"]["mean"] == pytest.approx(0.1 + offset)
        assert diff["JF_track_zoom"]["mean"] == pytest.approx(0.15 + offset)
    printed = capsys.readouterr().out
    assert "| GrabCut | heldout | 0.400 / 0.400 (n=4) |" in printed
    assert "| heldout | 0.400 | 0.200 |" in printed
    assert "| older-GrabCut/heldout | +0.150" in printed


@pytest.mark.parametrize("units, named", [("per_image", "images"), ("per_object", "video objects")])
def test_merge_refuses_grabcut_scores_of_other_units(pico_quality, tmp_path, units, named):
    grabcut = _grabcut()
    grabcut[units].pop(next(iter(grabcut[units])))
    run = dict(_run("base", 0.0), baselines={"train-gen": _grabcut(), "heldout": grabcut})
    with pytest.raises(UserInputError, match=f"the GrabCut scores of .*base.json scored other heldout {named}"):
        pico_quality.merged_runs([_write(tmp_path / "base.json", run)])


@pytest.mark.parametrize("baselines", [[], {"heldout": _grabcut()}, {s: {"per_image": {}} for s in SETS}])
def test_merge_refuses_malformed_grabcut_scores(pico_quality, tmp_path, baselines):
    run = dict(_run("base", 0.0), baselines=baselines)
    with pytest.raises(UserInputError, match="GrabCut scores .* lack a set or a score"):
        pico_quality.merged_runs([_write(tmp_path / "base.json", run)])


def test_grabcut_is_scored_on_the_units_a_checkpoint_is(pico_quality, tmp_path):
    from argparse import Namespace

    from mixqsam2.models import build_model

    sets = pico_quality.data_sets(tmp_path, Namespace(images=2, videos=1, frames=5, video_seeds=[7]))
    grabcut = pico_quality.score_grabcut(*sets["heldout"])
    ours = pico_quality.evaluate(build_model("pico"), *sets["heldout"])
    assert set(grabcut) == set(pico_quality.BASELINE_SCORES)
    assert set(grabcut["per_image"]) == set(ours["per_image"]) and set(grabcut["per_object"]) == set(ours["per_object"])
    assert set(ours["per_image_fill"]) == set(ours["per_image"])
    assert all(0 < v <= 1 for v in ours["per_image_fill"].values())
    assert 0 < grabcut["grabcut_miou"] <= 1 and 0 < grabcut["grabcut_track_JF"] <= 1


def test_no_baselines_runs_without_grabcut(pico_quality, tmp_path, monkeypatch):
    def refuse(*_):
        raise AssertionError("GrabCut scored despite --no-baselines")

    monkeypatch.setattr(pico_quality, "score_grabcut", refuse)
    out = tmp_path / "run.json"
    assert pico_quality.main(["--images", "2", "--videos", "1", "--frames", "5", "--video-seeds", "7",
                              "--no-baselines", "--out", str(out), "--figure", str(tmp_path / "f.png")]) == 0
    run = json.loads(out.read_text())
    assert "baselines" not in run and run["against_grabcut"] == {} and list(run["results"]) == ["shipped"]
