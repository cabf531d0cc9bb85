"""SIS synthesis: hand-made banks with known answers, the bank invariants, torch == NumPy."""

import numpy as np
import pytest
import torch

from mixqsam2.errors import UserInputError
from mixqsam2.memory.bank import MemoryBank, MemoryEntry, make_policy
from mixqsam2.memory.prompts import Prompt
from mixqsam2.memory.synthesis import RULES, empty_bank, entry, select_merge, sis_update
from mixqsam2.memory.tracker import StreamingTracker
from mixqsam2.data.loaders import open_video_set


def _numpy_bank(vectors, scores=None, rule="sis"):
    """Feed 1-token memories (frame t = row t) through sis_update; capacity = len - 1."""
    vectors = np.asarray(vectors, np.float32)
    scores = np.full(len(vectors), 4.0) if scores is None else scores
    bank = empty_bank(len(vectors) - 1, tokens=1, channels=vectors.shape[1], pointer_dim=2)
    for t, (v, s) in enumerate(zip(vectors, scores)):
        bank = sis_update(bank, entry([v], [t, -t], position=t, score=s), RULES[rule])
    return bank


def test_paper_sis_merges_the_three_most_similar_to_the_newest_with_softmax_weights():
    # candidates (frames 0..3) and the reference (frame 4) = [1, 0]
    vectors = [[1, 0], [0, 1], [1, 1], [1, 0.5], [1, 0]]
    bank = _numpy_bank(vectors)
    sims = np.array([1.0, 0.0, 1 / np.sqrt(2), 1 / np.sqrt(1.25)])  # cos to [1, 0]
    chosen = [0, 2, 3]  # frame 1 (orthogonal) is the distinct memory that survives
    weights = np.exp(sims[chosen]) / np.exp(sims[chosen]).sum()
    expected_features = sum(w * np.array(vectors[c]) / 1.0 for w, c in zip(weights, chosen))
    # slot layout: merged -> slot 0 (oldest selected), frame 1 stays in slot 1,
    # slots 2 and 3 freed, the reference goes into slot 2
    assert bank.valid.tolist() == [True, True, True, False]
    np.testing.assert_allclose(bank.features[0, 0], expected_features, atol=1e-6)
    np.testing.assert_allclose(bank.positions[:3], [np.dot(weights, chosen), 1, 4], atol=1e-6)
    np.testing.assert_allclose(bank.pointers[0], [np.dot(weights, chosen), -np.dot(weights, chosen)], atol=1e-6)
    assert bank.counts[:3].tolist() == [3.0, 1.0, 1.0]
    np.testing.assert_array_equal(bank.features[2, 0], vectors[4])


def test_paper_sis_temperature_sharpens_the_weights():
    gram = np.array([[1, 0, 0.9], [0, 1, 0.5], [0.9, 0.5, 1]], np.float32)
    _, flat = select_merge(gram, np.zeros(2), np.ones(2), RULES["sis"])
    sharp_rule = RULES["sis"].__class__("sis-t", "topk-to-newest", top_k=3, temperature=0.1)
    _, sharp = select_merge(gram, np.zeros(2), np.ones(2), sharp_rule)
    np.testing.assert_allclose(flat, np.exp([0.9, 0.5]) / np.exp([0.9, 0.5]).sum(), rtol=1e-6)
    assert sharp[0] > flat[0] > 0.5


def test_ours_merges_the_closest_pair_weighted_by_frames_and_confidence():
    # frames 0 and 2 are near-duplicates; frame 1 distinct; frame 3 is the newest (reference)
    vectors = [[1, 0], [0, 1], [1, 0.05], [0.7, 0.7]]
    scores = np.array([4.0, 4.0, -4.0, 4.0])  # the object was hidden on frame 2
    bank = _numpy_bank(vectors, scores, rule="sis-pair")
    conf = 1 / (1 + np.exp(-scores[[0, 2]])) + 1e-3
    weights = conf / conf.sum()
    assert bank.valid.all()  # a pair merge keeps every slot in use
    np.testing.assert_allclose(bank.features[0, 0], weights @ np.array([vectors[0], vectors[2]]), atol=1e-6)
    np.testing.assert_allclose(bank.positions.tolist(), [weights @ [0, 2], 1, 3], atol=1e-6)
    assert bank.counts.tolist() == [2.0, 1.0, 1.0]
    assert weights[0] > 0.98  # the memory with the object visible dominates


def test_ours_weights_a_synthesized_entry_by_the_frames_it_holds():
    gram = np.eye(3, dtype=np.float32)
    gram[0, 1] = gram[1, 0] = 0.9
    _, weights = select_merge(gram, np.zeros(2), np.array([3.0, 1.0]), RULES["sis-pair"])
    np.testing.assert_allclose(weights, [0.75, 0.25], rtol=1e-6)


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
@pytest.mark.parametrize("capacity", [2, 3, 6])
def test_capacity_is_never_exceeded_and_the_newest_memory_is_kept_raw(policy, capacity):
    rng = np.random.default_rng(capacity)
    bank = MemoryBank(capacity, make_policy(policy))
    arrays = empty_bank(capacity, tokens=4, channels=3, pointer_dim=2)
    for t in range(30):
        features = rng.normal(size=(4, 3)).astype(np.float32)
        bank.add(MemoryEntry(features, float(t), 1.0, obj_ptr=np.zeros(2, np.float32)))
        arrays = sis_update(arrays, entry(features, [0, 0], t, 1.0), RULES[policy])
        assert len(bank.entries) <= capacity and arrays.valid.sum() <= capacity
        newest = bank.entries[-1]
        assert newest.temporal_pos == t and newest.frames == 1.0
        assert sum(e.frames for e in bank.entries) == arrays.counts[arrays.valid].sum() == t + 1


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
def test_sis_behaves_like_fifo_until_the_bank_is_full(policy):
    fifo, sis = MemoryBank(4, make_policy("fifo")), MemoryBank(4, make_policy(policy))
    for t in range(4):
        features = np.full((2, 2), t, np.float32)
        fifo.add(MemoryEntry(features, float(t), 0.0))
        sis.add(MemoryEntry(features, float(t), 0.0))
        assert fifo.entries == sis.entries


def test_sis_needs_a_capacity_of_two():
    with pytest.raises(UserInputError, match="at least 2 with memory policy 'sis'"):
        MemoryBank(1, make_policy("sis"))


def _torch_and_numpy_banks(memories, capacity, policy):
    bank = MemoryBank(capacity, make_policy(policy))
    arrays = empty_bank(capacity, *memories[0][0].shape, pointer_dim=memories[0][1].size)
    for t, (features, pointer, score) in enumerate(memories):
        bank.add(MemoryEntry(torch.from_numpy(features), float(t), float(score), obj_ptr=torch.from_numpy(pointer)))
        arrays = sis_update(arrays, entry(features, pointer, t, score), RULES[policy])
    return bank, arrays


def _assert_same_bank(bank, arrays):
    order = np.lexsort((np.arange(arrays.valid.size), arrays.positions))
    order = order[arrays.valid[order]]
    assert len(bank.entries) == order.size
    for e, slot in zip(bank.entries, order):
        np.testing.assert_allclose(e.features.numpy(), arrays.features[slot], atol=1e-5)
        np.testing.assert_allclose(e.obj_ptr.numpy(), arrays.pointers[slot], atol=1e-5)
        np.testing.assert_allclose([e.temporal_pos, e.object_score, e.frames],
                                   [arrays.positions[slot], arrays.scores[slot], arrays.counts[slot]], atol=1e-5)


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
def test_torch_and_numpy_give_the_same_bank_on_random_memories(policy):
    rng = np.random.default_rng(7)
    base = rng.normal(size=(64, 8)).astype(np.float32)
    memories = [
        ((base + rng.normal(scale=rng.uniform(0.1, 2.0), size=base.shape)).astype(np.float32),
         rng.normal(size=16).astype(np.float32), float(rng.normal(scale=3)))
        for _ in range(40)
    ]
    bank, arrays = _torch_and_numpy_banks(memories, capacity=4, policy=policy)
    _assert_same_bank(bank, arrays)
    assert max(e.frames for e in bank.entries) > 2  # merges happened, and were compared


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
def test_torch_and_numpy_give_the_same_bank_on_tracker_memories(pico, video_set, policy):
    video = open_video_set(video_set)[1]
    tracker = StreamingTracker(pico, capacity=100, storage_dtype=torch.float32)  # keeps every memory
    for index, rgb in enumerate(video.frames()):
        tracker.step(rgb, {1: Prompt(mask=video.prompt_masks()[1])} if index == 0 else None)
    memories = [
        (e.features[0].flatten(1).T.numpy(), e.obj_ptr[0].numpy(), e.object_score)
        for e in tracker.objects[1].bank.entries
    ]
    bank, arrays = _torch_and_numpy_banks(memories, capacity=3, policy=policy)
    _assert_same_bank(bank, arrays)
    assert max(e.frames for e in bank.entries) > 1


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
def test_tracker_with_sis_never_merges_the_conditioning_memory(pico, video_set, policy):
    video = open_video_set(video_set)[0]
    tracker = StreamingTracker(pico, memory=policy, capacity=2)
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    cond_before = None
    for index, rgb in enumerate(video.frames()):
        result = tracker.step(rgb, prompts if index == 0 else None)
        if index == 0:
            cond_before = {k: s.cond[0][1].clone() for k, s in tracker.objects.items()}
        assert set(result.masks) == set(prompts)
    for obj_id, state in tracker.objects.items():
        assert len(state.cond) == 1 and torch.equal(state.cond[0][1], cond_before[obj_id])
        assert len(state.bank.entries) == 2
        assert all(e.temporal_pos >= 1 for e in state.bank.entries)  # frame 0 never entered the bank
        assert sum(e.frames for e in state.bank.entries) == len(video.frame_paths) - 1
