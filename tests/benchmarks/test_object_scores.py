"""benchmarks/object_scores.py: what the object score decides on held-out videos."""

import json

import numpy as np
import pytest



def test_missed_targets_recoveries_and_the_longest_miss_are_counted(object_scores):
    locked = (np.array([1.0, -0.03, -0.03, -0.03, 2.0, -0.5]), np.array([True, True, True, True, True, False]))
    clean = (np.array([3.0, 0.0, 4.0]), np.array([True, True, True]))  # a score of exactly 0 is absent, as in sam2
    got = object_scores.summary([locked, clean])
    assert (got["present"], got["missed"], got["absent"], got["scored_absent_when_absent"]) == (8, 4, 1, 1)
    assert (got["recoveries"], got["longest_miss"]) == (2, 3)
    assert got["missed_score_median"] == pytest.approx(-0.03)
    assert object_scores.summary([(np.array([1.0]), np.array([False]))])["missed_score_median"] is None


def test_a_run_on_held_out_videos_counts_every_annotated_pair_after_the_prompt(object_scores, tmp_path, capsys):
    from mixqsam2.data.heldout import cached_heldout_set
    from mixqsam2.data.loaders import open_video_set
    from mixqsam2.models import get_spec

    out = tmp_path / "scores.json"
    args = ["--checkpoint", f"pico={get_spec('pico').checkpoint}", "--videos", "1", "--frames", "4",
            "--video-seeds", "9003", "--data", str(tmp_path), "--out", str(out)]
    assert object_scores.main(args) == 0
    video = open_video_set(cached_heldout_set(tmp_path, "videos", num=1, frames=4, seed=9003))[0]
    truths = [video.annotation(name) for name in video.frame_names[1:]]
    objects = len(video.prompt_masks())
    result = json.loads(out.read_text())["results"]["pico"]
    assert result["present"] + result["absent"] == objects * sum(t is not None for t in truths)
    assert 0 <= result["missed"] <= result["present"]
    assert "| pico | " in capsys.readouterr().out


@pytest.mark.parametrize("checkpoints, message", [
    (["pico.pt"], "give NAME=PATH"),
    (["a=no/such.pt"], "a: no file no/such.pt"),
    ([f"a={__file__}", f"a={__file__}"], "a is given more than once"),
])
def test_bad_checkpoints_are_one_line_usage_errors_before_any_data_is_made(object_scores, tmp_path, capsys,
                                                                        checkpoints, message):
    args = [a for c in checkpoints for a in ("--checkpoint", c)] + ["--data", str(tmp_path), "--out", str(tmp_path / "s.json")]
    with pytest.raises(SystemExit) as exited:
        object_scores.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and message in err[0]
    assert list(tmp_path.iterdir()) == []
