"""Merge-aware training: the bank in sam2's training loop is sam2's memory under FIFO, and
merged memories carry gradients back to the memory encoder."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mixqsam2.memory.synthesis import RULES
from mixqsam2.models import get_spec
from mixqsam2.train.config import PICO_V2, TrainConfig
from mixqsam2.train.data import video_batch
from mixqsam2.train.loop import (build_train_model, draw_bank, generated_batch, loss_function, step_forward,
                                 step_kind, train)

FRAMES = 17  # > max_obj_ptrs_in_encoder: sam2's pointer window is then the stream's, as BankedSAM2Train's


def _models():
    """sam2's SAM2Train and BankedSAM2Train with the shipped pico weights, in eval mode
    (mask prompt on frame 0, no dropout, no sampled clicks)."""
    init = str(get_spec("pico").checkpoint)
    plain = build_train_model(TrainConfig(init_checkpoint=init)).eval()
    banked = build_train_model(replace(PICO_V2, init_checkpoint=init)).eval()
    return plain, banked


def _final_masks(model, batch):
    with torch.no_grad():
        return torch.stack([out["pred_masks_high_res"] for out in model(batch)])


def test_fifo_at_six_is_sams_own_memory_selection():
    plain, banked = _models()
    batch = video_batch(seed=11, step=0, num_videos=2, image_size=plain.image_size,
                        min_frames=FRAMES, max_frames=FRAMES)
    banked.bank_rule, banked.bank_capacity = RULES["fifo"], plain.num_maskmem - 1
    expected, got = _final_masks(plain, batch), _final_masks(banked, batch)
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()  # seen: 1.7e-5 on logits up to 25
    assert ((expected > 0) == (got > 0)).float().mean() > 0.9999
    # a smaller bank is another memory: the test above is not vacuous
    banked.bank_capacity = 2
    assert not torch.allclose(expected, _final_masks(banked, batch), atol=2e-3)


def test_training_reads_the_bank_pooled_as_the_deployed_graph_does():
    """bank_memory_pool: the training graph is the deployed pooled memory attention."""
    _, banked = _models()
    banked.bank_rule, banked.bank_capacity = RULES["fifo"], 6
    batch = video_batch(seed=11, step=0, num_videos=1, image_size=banked.image_size, min_frames=8, max_frames=8)
    whole = _final_masks(banked, batch)
    banked.bank_memory_pool = 2
    pooled = _final_masks(banked, batch)
    attention = banked._graphs[("attention", (6, 2))]
    assert attention.memory_pool == 2 and attention.whole == 2
    assert not torch.allclose(whole, pooled, atol=2e-3)  # another memory read: the flag reached the graph


@pytest.mark.parametrize("policy, capacity, pool", [("sis", 2, 1), ("sis-pair", 3, 1), ("prune", 6, 1), ("fifo", 6, 2)])
def test_bank_updates_pass_finite_gradients_to_the_memory_encoder(policy, capacity, pool):
    """Merged memories carry gradients; empty slots (a bank not yet full) give zero, not NaN;
    nor do pooled reads."""
    _, banked = _models()
    banked.train()
    banked.bank_rule, banked.bank_capacity, banked.bank_memory_pool = RULES[policy], capacity, pool
    batch = video_batch(seed=11, step=1, num_videos=1, image_size=banked.image_size,
                        min_frames=FRAMES, max_frames=FRAMES)
    banked.rng = np.random.default_rng(0)
    outputs = banked(batch)
    loss = sum(out["pred_masks_high_res"].sigmoid().mean() for out in outputs[3:])  # frames with a full bank
    loss.backward()
    grads = [p.grad for p in banked.memory_encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(p.grad).all() for p in banked.parameters() if p.grad is not None)


def test_bank_policy_and_capacity_are_drawn_per_video_step_and_logged(tmp_path):
    cfg = replace(PICO_V2, steps=2, image_batch=1, video_batch=1, video_frames=(4, 4), warmup_steps=1,
                  init_checkpoint=str(get_spec("pico").checkpoint))
    history = train(cfg, tmp_path / "v2.pt")
    video = [r for r in history if r["kind"] == "video"]
    assert video and (video[0]["policy"], video[0]["capacity"], video[0]["pool"]) == draw_bank(cfg, video[0]["step"])
    assert all(np.isfinite(r["loss"]) for r in history)
    draws = {draw_bank(cfg, step) for step in range(200)}
    assert {p for p, _, _ in draws} == set(cfg.bank_policies) and {k for _, k, _ in draws} == set(range(2, 7))
    assert {b for _, _, b in draws} == {1}


def test_pools_drawn_per_video_step_reach_the_model_and_leave_policy_and_capacity_draws_alone(tmp_path):
    """``--memory-pool 1 2 4``: each video step reads the bank at its own drawn pool (the
    training graph of that pool is built and used), and a run's policies and capacities are
    those it drew before pools were drawn (an older run resumes onto the same steps)."""
    cfg = replace(PICO_V2, steps=8, image_batch=1, video_batch=1, video_frames=(4, 4), warmup_steps=1,
                  video_every=1, bank_memory_pools=(1, 2, 4), init_checkpoint=str(get_spec("pico").checkpoint))
    draws = [draw_bank(cfg, step) for step in range(300)]
    assert {b for _, _, b in draws} == {1, 2, 4}
    assert [d[:2] for d in draws] == [draw_bank(replace(cfg, bank_memory_pools=(1,)), s)[:2] for s in range(300)]
    history = train(cfg, tmp_path / "pooled.pt")
    pools = [r["pool"] for r in history if r["kind"] == "video"]
    assert pools == [draw_bank(cfg, r["step"])[2] for r in history if r["kind"] == "video"]
    assert len(set(pools)) > 1 and all(np.isfinite(r["loss"]) for r in history)
    model, loss_fn = build_train_model(cfg), loss_function()
    for pool in (4, 2):  # the step's pool is the attention graph its frames read through
        step = next(s for s in range(cfg.steps) if step_kind(cfg, s) == "video" and draw_bank(cfg, s)[2] == pool)
        _, capacity, _ = draw_bank(cfg, step)
        assert ("attention", (capacity, pool)) not in model._graphs
        step_forward(model, loss_fn, cfg, step, generated_batch(cfg, step, model.image_size))
        assert ("attention", (capacity, pool)) in model._graphs and model.bank_memory_pool == pool


@pytest.mark.parametrize("pools", [(), (0,), (2, 1.5)])
def test_a_config_without_a_whole_pool_to_draw_is_refused(pools):
    with pytest.raises(ValueError, match="bank_memory_pools must be whole numbers >= 1"):
        TrainConfig(bank_memory_pools=pools)


@pytest.mark.parametrize("argv, message", [
    (["--memory-pool", "1", "3"], "must divide the memory grid's side (16 tokens)"),
    (["--preset", "v1", "--memory-pool", "2"], "trains with sam2's own memory, not a bank"),
])
def test_train_pico_refuses_pools_it_cannot_train(tmp_path, capsys, argv, message):
    from mixqsam2.cli.main import main

    out = tmp_path / "run.pt"
    assert main(["train-pico", "--out", str(out), "--steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_banked_training_needs_one_prompted_frame():
    _, banked = _models()
    with pytest.raises(ValueError, match="one conditioning frame"):
        banked._updated_banks({"cond_frame_outputs": {0: {}, 3: {}}, "non_cond_frame_outputs": {}}, 5)
