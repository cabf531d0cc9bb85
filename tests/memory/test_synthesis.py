"""Bank updates: hand-made banks with known answers, the bank invariants, the torch graph == the NumPy spec."""

import numpy as np
import pytest
import torch

from mixqsam2.errors import UserInputError
from mixqsam2.memory.prompts import Prompt
from mixqsam2.memory.synthesis import RULES, MemoryArrays, empty_bank, entry, select_merge, sis_update
from mixqsam2.models.graph_config import BANK_FIELDS
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


@pytest.mark.parametrize("policy", sorted(RULES))
@pytest.mark.parametrize("capacity", [2, 3, 6])
def test_capacity_is_never_exceeded_and_the_newest_memory_is_kept_raw(policy, capacity):
    rng = np.random.default_rng(capacity)
    bank = empty_bank(capacity, tokens=4, channels=3, pointer_dim=2)
    dropped = 0
    for t in range(30):
        bank = sis_update(bank, entry(rng.normal(size=(4, 3)), [0, 0], t, 1.0), RULES[policy])
        newest = int(np.argmax(np.where(bank.valid, bank.positions, -1)))
        assert bank.valid.sum() <= capacity and bank.positions[newest] == t and bank.counts[newest] == 1
        dropped = t + 1 - bank.counts[bank.valid].sum()
    assert (dropped == 0) == RULES[policy].merges  # merges keep every frame, drops lose some


@pytest.mark.parametrize("policy", sorted(set(RULES) - {"fifo"}))
def test_every_policy_behaves_like_fifo_until_the_bank_is_full(policy):
    fifo = policy_bank = empty_bank(4, tokens=2, channels=2, pointer_dim=1)
    for t in range(4):
        new = entry(np.full((2, 2), t), [t], t, 0.0)
        fifo, policy_bank = sis_update(fifo, new, RULES["fifo"]), sis_update(policy_bank, new, RULES[policy])
        for name in ("features", "positions", "valid"):
            np.testing.assert_array_equal(getattr(fifo, name), getattr(policy_bank, name))


def test_fifo_drops_the_oldest_and_prune_the_most_similar_to_the_newest():
    vectors = [[1, 0], [0, 1], [1, 0.1], [1, 0.05]]  # frame 3 is closest to frame 2, then frame 0
    fifo, prune = _numpy_bank(vectors, rule="fifo"), _numpy_bank(vectors, rule="prune")
    assert sorted(fifo.positions.tolist()) == [1.0, 2.0, 3.0]
    assert sorted(prune.positions.tolist()) == [0.0, 1.0, 3.0]
    assert fifo.counts.tolist() == prune.counts.tolist() == [1.0, 1.0, 1.0]


def test_the_paper_rule_needs_two_memories_to_merge():
    with pytest.raises(ValueError, match="top_k must be at least 2"):
        RULES["sis"].__class__("sis-1", "topk-to-newest", top_k=1)


def test_capacity_below_the_policy_minimum_is_a_user_error(pico):
    with pytest.raises(UserInputError, match="at least 2 with memory policy 'sis'"):
        StreamingTracker(pico, memory="sis", capacity=1)
    with pytest.raises(UserInputError, match="unknown memory policy"):
        StreamingTracker(pico, memory="lru")


def _random_memories(rng, count, shape=(64, 8), pointer_dim=16):
    base = rng.normal(size=shape).astype(np.float32)
    return [
        ((base + rng.normal(scale=rng.uniform(0.1, 2.0), size=shape)).astype(np.float32),
         rng.normal(size=pointer_dim).astype(np.float32), float(rng.normal(scale=3)))
        for _ in range(count)
    ]


def _batched_graph_banks(memories_per_object, capacity, policy):
    """Feed each object's memories through BankUpdateGraph (all objects in one batch) and the spec."""
    from mixqsam2.models.graphs import BankUpdateGraph

    graph = BankUpdateGraph(RULES[policy])
    shape, pointer_dim = memories_per_object[0][0][0].shape, memories_per_object[0][0][1].size
    graph_banks = [empty_bank(capacity, *shape, pointer_dim) for _ in memories_per_object]
    spec_banks = list(graph_banks)
    for t in range(len(memories_per_object[0])):
        news = [entry(*memories[t][:2], t, memories[t][2]) for memories in memories_per_object]
        stacked = [torch.from_numpy(np.stack([getattr(b, f) for b in graph_banks])) for f in BANK_FIELDS]
        new = [torch.from_numpy(np.concatenate([getattr(n, f) for n in news])) for f in BANK_FIELDS[:4]]
        with torch.no_grad():
            out = graph(*stacked, *new)
        graph_banks = [MemoryArrays(*(o[i].numpy() for o in out)) for i in range(len(news))]
        spec_banks = [sis_update(b, n, RULES[policy]) for b, n in zip(spec_banks, news)]
    return graph_banks, spec_banks


def assert_same_bank(got, expected, atol=1e-5):
    np.testing.assert_array_equal(got.valid, expected.valid)
    for name in ("features", "pointers", "positions", "scores", "counts"):
        np.testing.assert_allclose(getattr(got, name)[got.valid], getattr(expected, name)[expected.valid], atol=atol)


@pytest.mark.parametrize("policy", sorted(RULES))
def test_the_graph_module_gives_the_spec_bank_on_random_memories(policy):
    rng = np.random.default_rng(7)
    objects = [_random_memories(rng, 30) for _ in range(3)]
    graph_banks, spec_banks = _batched_graph_banks(objects, capacity=4, policy=policy)
    for got, expected in zip(graph_banks, spec_banks):
        assert_same_bank(got, expected)
    if RULES[policy].merges:
        assert max(b.counts.max() for b in spec_banks) > 2  # merges happened, and were compared


def test_the_graph_module_breaks_ties_as_the_spec_does():
    """Identical memories: every similarity ties, so only the tie rules decide."""
    same = [(np.ones((4, 2), np.float32), np.full(3, t, np.float32), 1.0) for t in range(9)]
    for policy in RULES:
        graph_banks, spec_banks = _batched_graph_banks([same], capacity=3, policy=policy)
        assert_same_bank(graph_banks[0], spec_banks[0])


@pytest.mark.parametrize("policy", sorted(set(RULES) - {"fifo"}))
def test_the_graph_module_gives_the_spec_bank_on_tracker_memories(pico, video_set, policy):
    video = open_video_set(video_set)[1]
    tracker = StreamingTracker(pico, capacity=19)  # keeps every memory of the 20 frames
    for index, rgb in enumerate(video.frames()):
        tracker.step(rgb, {1: Prompt(mask=video.prompt_masks()[1])} if index == 0 else None)
    bank = tracker.objects[1].bank
    order = np.argsort(bank.positions)
    memories = [(bank.features[i], bank.pointers[i], float(bank.scores[i])) for i in order]
    graph_banks, spec_banks = _batched_graph_banks([memories], capacity=3, policy=policy)
    assert_same_bank(graph_banks[0], spec_banks[0])
    if RULES[policy].merges:
        assert spec_banks[0].counts.max() > 1


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
def test_tracker_with_sis_never_merges_the_conditioning_memory(pico, video_set, policy):
    video = open_video_set(video_set)[0]
    tracker = StreamingTracker(pico, memory=policy, capacity=2)
    prompts = {k: Prompt(mask=m) for k, m in video.prompt_masks().items()}
    cond_before = None
    for index, rgb in enumerate(video.frames()):
        result = tracker.step(rgb, prompts if index == 0 else None)
        if index == 0:
            cond_before = {k: s.cond_features.copy() for k, s in tracker.objects.items()}
        assert set(result.masks) == set(prompts)
    for obj_id, state in tracker.objects.items():
        np.testing.assert_array_equal(state.cond_features, cond_before[obj_id])
        assert state.bank.valid.sum() >= 1
        assert (state.bank.positions[state.bank.valid] >= 1).all()  # frame 0 never entered the bank
        assert state.bank.counts[state.bank.valid].sum() == len(video.frame_paths) - 1
