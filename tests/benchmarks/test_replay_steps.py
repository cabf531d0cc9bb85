"""benchmarks/replay_steps.py: a run's steps remade exactly, and what they are made of."""

import json
from dataclasses import replace

import pytest

from mixqsam2.models import get_spec
from mixqsam2.train.config import TrainConfig
from mixqsam2.train.loop import train

PICO_CHECKPOINT = get_spec("pico").checkpoint
# lr 0: the weights saved last are those every step ran with, so a replay must give its loss
FROZEN = TrainConfig(seed=3, steps=4, image_batch=1, video_batch=1, warmup_steps=2, image_only_fraction=0.25, lr=0.0,
                     bank_policies=("fifo", "sis"), bank_capacities=(2, 3), init_checkpoint=str(PICO_CHECKPOINT))
# sam2's own memory (its memory attention has dropout, drawn per step)
FROZEN_SAM2_MEMORY = replace(FROZEN, bank_policies=())


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "frozen.pt"
    return out, train(FROZEN, out)


def _replayed(replay_steps, run, steps: str, tmp_path) -> list[dict]:
    assert replay_steps.main([str(run), "--steps", steps, "--out", str(tmp_path / "r.json")]) == 0
    return json.loads((tmp_path / "r.json").read_text())["steps"]


@pytest.mark.parametrize("memory", ["banked", "sam2"])
def test_a_replayed_step_is_the_step_the_run_made(replay_steps, frozen_run, tmp_path, capsys, memory):
    out, history = frozen_run
    if memory == "sam2":
        out = tmp_path / "sam2_memory.pt"
        history = train(FROZEN_SAM2_MEMORY, out)
    rows = _replayed(replay_steps, out, "1,2,3", tmp_path)
    for row in rows:
        recorded = history[row["step"]]
        assert row["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
        assert (row["kind"], row.get("policy"), row["missed"]) == (recorded["kind"], recorded.get("policy"), recorded["missed"])
        assert row["missed"] < 1 and row["mask_loss_grad_norm"] > 0
    assert [r["kind"] for r in rows] == ["video", "image", "video"]
    assert "| 1 | video | " in capsys.readouterr().out


def test_a_target_scored_absent_adds_a_large_mask_loss_without_gradient(replay_steps, tmp_path):
    """sam2 fills the mask of a target scored absent with constant -1024 logits: an untrained
    model scores every target absent, and its focal mask loss is large with a zero gradient."""
    untrained = replace(FROZEN, init_checkpoint=None)
    train(untrained, tmp_path / "untrained.pt")
    rows = _replayed(replay_steps, tmp_path / "untrained.pt", "1,2", tmp_path)
    for row in rows:
        assert row["missed"] == 1
        assert 20 * row["loss_mask"] > 100 and row["mask_loss_grad_norm"] == 0
        assert row["grad_norm"] > 0  # the object-score head's loss still trains it


def test_the_table_names_each_steps_bank_and_its_pool(replay_steps):
    row = {"step": 7, "kind": "video", "policy": "fifo", "capacity": 6, "loss": 3.0, "recorded_loss": 3.0,
           "loss_mask": 0.01, "mask_loss_grad_norm": 1.0, "grad_norm": 2.0, "missed": 0.0}
    lines = replay_steps.table([row, {**row, "pool": 1}, {**row, "pool": 4}]).splitlines()
    assert [line.split(" | ")[2] for line in lines[-3:]] == ["fifo@6", "fifo@6", "fifo@6:pool4"]


def test_without_steps_it_replays_the_largest_spikes_and_the_video_step_after_each(replay_steps):
    history = [{"step": s, "kind": "video" if s % 2 else "image", "loss_mask": m}
               for s, m in enumerate([50.0, 0.1, 0.2, 7.0, 0.3, 0.2, 0.1, 0.3])]
    assert replay_steps.chosen_steps(history, 1) == [3, 5]
    assert replay_steps.chosen_steps(history, 2) == [3, 5, 7]


def test_a_step_the_run_never_made_is_one_line_and_exit_2(replay_steps, frozen_run, tmp_path, capsys):
    out, _ = frozen_run
    assert replay_steps.main([str(out), "--steps", "1,9", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out} recorded no step 9 (it has steps 0-3)"]
    assert not (tmp_path / "r.json").exists()


def test_an_out_that_is_the_run_is_refused_and_the_run_kept(replay_steps, frozen_run, capsys):
    out, _ = frozen_run
    before = out.read_bytes()
    assert replay_steps.main([str(out), "--steps", "1", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert out.read_bytes() == before


def test_steps_that_are_not_numbers_are_a_usage_error(replay_steps, frozen_run, tmp_path, capsys):
    out, _ = frozen_run
    with pytest.raises(SystemExit) as exited:
        replay_steps.main([str(out), "--steps", "2543,x", "--out", str(tmp_path / "r.json")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give step numbers separated by commas" in err[0]
