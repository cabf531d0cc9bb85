"""Formats, fake quantization, WAIS, allocation and the precision plan."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from mixqsam2.errors import UserInputError
from mixqsam2.quant.allocate import LayerOptions, effective_bits, min_budget, solve_exact, solve_greedy
from mixqsam2.quant.fake import quantize_layer, quantize_weight
from mixqsam2.quant.formats import allowed_formats, get_format
from mixqsam2.quant.observers import InputObserver
from mixqsam2.quant.scores import format_error, wais_score


def _numpy_fake_quant(x, amax, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = np.maximum(amax, 1e-12) / qmax
    return np.clip(np.round(x / scale), -qmax, qmax) * scale  # numpy rounds half to even, like TensorRT


def test_int8_per_channel_weights_equal_a_numpy_reference():
    w = torch.randn(16, 40)
    ref = _numpy_fake_quant(w.numpy(), np.abs(w.numpy()).max(axis=1, keepdims=True), 8)
    np.testing.assert_allclose(quantize_weight(w, 8).numpy(), ref, rtol=0, atol=1e-6)


def test_int4_blockwise_weights_equal_a_numpy_reference():
    w = torch.randn(8, 256)
    blocks = w.numpy().reshape(8, 2, 128)
    scale = (np.abs(blocks).max(axis=2, keepdims=True) / 7).astype(np.float16).astype(np.float32)  # as exported
    ref = (np.clip(np.round(blocks / scale), -7, 7) * scale).reshape(8, 256)
    got = quantize_weight(w, 4, block_size=128).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert len(np.unique(got[0, :128])) <= 15  # 4-bit symmetric: at most 15 levels per block


def test_int8_layer_quantizes_its_input_per_tensor_with_the_calibrated_amax():
    layer = nn.Linear(4, 3, bias=False)
    x = torch.tensor([[0.3, -1.7, 2.5, 0.01]])
    expected_w = quantize_weight(layer.weight.data.clone(), 8)
    quantize_layer(layer, get_format("int8"), act_amax=2.0, block_size=128)
    x_q = torch.from_numpy(_numpy_fake_quant(x.numpy(), 2.0, 8)).float()
    torch.testing.assert_close(layer(x), x_q @ expected_w.T)
    assert "8 bit, per-tensor, amax=2.0000" in repr(layer.input_quantizer)


def test_tensorrt_rules_int4_only_on_linear_with_whole_blocks():
    candidates = ["fp16", "int8", "int4"]
    assert allowed_formats("conv", 256, 128, candidates) == ["fp16", "int8"]
    assert allowed_formats("linear", 96, 128, candidates) == ["fp16", "int8"]
    assert allowed_formats("linear", 256, 128, candidates) == candidates
    assert not get_format("w4a4").deployable and get_format("int4").effective_bits(128) == 4.125
    with pytest.raises(UserInputError, match="unknown format"):
        get_format("int3")


def test_wais_is_mean_of_weight_magnitude_times_channel_l2_energy():
    layer = nn.Linear(2, 2, bias=False)
    layer.weight.data = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    obs = InputObserver(channel_axis=-1)
    obs.update(torch.tensor([[3.0, 0.0], [4.0, 1.0]]))  # A = [5, 1]
    assert wais_score(layer, obs) == pytest.approx((1 * 5 + 2 * 1 + 0.5 * 5 + 0) / 4)
    assert wais_score(layer, obs, rms=True) == pytest.approx((5 + 2 + 2.5) / np.sqrt(2) / 4)


def test_wais_of_a_depthwise_conv_pairs_each_kernel_with_its_channel():
    conv = nn.Conv2d(2, 2, 3, groups=2, bias=False)
    conv.weight.data = torch.stack([torch.full((1, 3, 3), 1.0), torch.full((1, 3, 3), 2.0)])
    obs = InputObserver(channel_axis=1)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 1] = 1.0  # only channel 1 has energy: sqrt(16) = 4
    obs.update(x)
    assert wais_score(conv, obs) == pytest.approx((1 * 0 + 2 * 4) / 2)


def test_format_error_orders_formats_by_precision():
    layer = nn.Linear(128, 32)
    obs = InputObserver(channel_axis=-1)
    obs.update(torch.randn(500, 128))
    errors = {f: format_error(layer, obs, get_format(f), obs.amax("max"), 128) for f in ("fp16", "int8", "int4")}
    assert 0 < errors["fp16"] < errors["int8"] < errors["int4"] < 1


def test_observer_percentile_clips_an_outlier_and_mse_minimizes_the_error():
    obs = InputObserver(channel_axis=-1)
    obs.update(torch.cat([torch.randn(20000, 1), torch.tensor([[80.0]])]))
    assert obs.amax("max") == pytest.approx(80.0, rel=1e-3)
    assert obs.amax("percentile") < 6
    heavy = InputObserver(channel_axis=-1)
    for _ in range(4):  # streaming: the histogram range grows across updates
        heavy.update(torch.distributions.Laplace(0.0, 1.0).sample((20000, 2)))
    best = heavy.amax("mse", 4)
    assert best < 0.6 * heavy.amax("max")
    grid = np.linspace(0.5, heavy.amax("max"), 50)
    assert heavy.quant_mse(best, 4) <= 1.001 * min(heavy.quant_mse(a, 4) for a in grid)


def _random_instance(rng, layers=5):
    out = []
    for i in range(layers):
        formats = ["fp16", "int8", "int4"][: rng.integers(1, 4)]
        bits = {"fp16": 16.0, "int8": 8.0, "int4": 4.125}
        out.append(LayerOptions(f"l{i}", int(rng.integers(1, 100)), float(rng.random()),
                                {f: (bits[f], float(rng.random()) / bits[f]) for f in formats}))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_exact_solver_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    layers = _random_instance(rng)
    budget = float(rng.uniform(min_budget(layers), 16))
    best = None
    for combo in itertools.product(*[list(layer.options) for layer in layers]):
        choice = {layer.name: f for layer, f in zip(layers, combo)}
        if effective_bits(layers, choice) <= budget + 1e-9:
            err = sum(layer.options[choice[layer.name]][1] for layer in layers)
            best = err if best is None else min(best, err)
    got = solve_exact(layers, budget)
    assert effective_bits(layers, got) <= budget + 1e-9
    assert sum(layer.options[got[layer.name]][1] for layer in layers) == pytest.approx(best, abs=1e-9)


def test_greedy_follows_the_paper_procedure_on_a_hand_made_case():
    bits = {"w3a3": 3.0, "w4a4": 4.0, "w5a5": 5.0}
    opts = {f: (b, 0.0) for f, b in bits.items()}
    layers = [LayerOptions("a", 10, 0.9, opts), LayerOptions("b", 10, 0.6, opts),
              LayerOptions("c", 10, 0.3, opts), LayerOptions("d", 30, 0.1, opts)]
    # 1. rank by importance and split into 3 equal buckets (rank * 3 // 4): a, b -> 5 bits, c -> 4, d -> 3
    #    mean = (50 + 50 + 40 + 90) / 60 = 3.83 <= 4: nothing to lower
    # 2. raise the largest importance x params that still fits: raising c (4 -> 5) gives exactly 4.0,
    #    raising d (3 -> 4) would give 4.33, so c is raised; then nothing fits
    choice = solve_greedy(layers, budget_bits=4.0)
    assert choice == {"a": "w5a5", "b": "w5a5", "c": "w5a5", "d": "w3a3"}
    assert effective_bits(layers, choice) == pytest.approx(4.0)
    # over budget (3.5): the least important layer is lowered first: d is at the bottom, c 4 -> 3 (3.67),
    # then b 5 -> 4 (3.5); afterwards no single raise fits
    low = solve_greedy(layers, budget_bits=3.5)
    assert low == {"a": "w5a5", "b": "w4a4", "c": "w3a3", "d": "w3a3"}


def test_infeasible_budget_names_the_minimum():
    layers = [LayerOptions("conv", 100, 1.0, {"fp16": (16.0, 0.0), "int8": (8.0, 1.0)})]
    with pytest.raises(UserInputError, match="at least 8.0000"):
        solve_exact(layers, 6.0)
    with pytest.raises(UserInputError, match="infeasible"):
        solve_greedy(layers, 6.0)


def test_layers_that_compute_in_fp16_return_fp16_outputs_as_the_exported_graph_does():
    torch.manual_seed(0)
    for name in ("fp16", "int4"):
        layer = nn.Linear(128, 8)
        quantize_layer(layer, get_format(name), act_amax=None, block_size=64)
        out = layer(torch.randn(4, 128))
        torch.testing.assert_close(out, out.half().float(), atol=0, rtol=0)
    layer = nn.Linear(128, 8)
    quantize_layer(layer, get_format("int8"), act_amax=3.0, block_size=64)
    out = layer(torch.randn(4, 128))
    assert not torch.equal(out, out.half().float())  # int8 layers keep an fp32 output
