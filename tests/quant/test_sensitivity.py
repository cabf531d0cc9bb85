"""Measured sensitivity: the output distortion of quantizing one layer in one format, and
its use as the allocator's objective."""

import pytest
import torch

from mixqsam2.data.loaders import CocoImages, open_video_set
from mixqsam2.quant.calibrate import CalibrationConfig, calibrate, make_forward_loop, target_layers
from mixqsam2.quant.fake import layer_quantized
from mixqsam2.quant.formats import get_format
from mixqsam2.quant.sensitivity import OutputDistortion, measure_format_errors

PICKED = ["image_encoder.trunk.blocks.1.proj", "memory_attention.layers.0.self_attn.q_proj",
          "memory_encoder.fuser.layers.0.pwconv1", "sam_mask_decoder.conv_s0"]


@pytest.fixture(scope="module")
def sensitivity_loop(image_set, video_set):
    return make_forward_loop(list(CocoImages.from_dir(image_set))[:2], open_video_set(video_set)[:1], max_frames=4,
                             progress=False)


def _candidates(names, formats=("int8",)):
    return {name: {fmt: 4.0 for fmt in formats} for name in names}


def test_the_unquantized_model_has_no_distortion(pico, sensitivity_loop):
    distortion = OutputDistortion(pico, sensitivity_loop)
    assert distortion.measure(pico) == 0.0
    assert len(distortion.per_call(pico)) == len(distortion.reference) > 2


def test_a_layer_quantized_alone_distorts_and_coarser_formats_distort_more(pico, sensitivity_loop):
    layers = {name: module for name, module in target_layers(pico).items() if name in PICKED}
    assert list(layers) == PICKED
    before = {k: v.clone() for k, v in pico.state_dict().items()}
    name = "image_encoder.trunk.blocks.1.proj"
    errors = measure_format_errors(pico, {name: layers[name]}, {name: {"fp16": None, "w8a8": 4.0, "w4a8": 4.0,
                                                                      "w2a8": 4.0}}, 32, sensitivity_loop)[name]
    assert errors["fp16"] == 0.0  # the reference every format is weighed against
    assert 0 < errors["w8a8"] < errors["w4a8"] < errors["w2a8"]
    all_errors = measure_format_errors(pico, layers, _candidates(PICKED), 32, sensitivity_loop)
    assert all(all_errors[n]["int8"] > 0 for n in PICKED)
    assert all(torch.equal(before[k], v) for k, v in pico.state_dict().items())  # restored exactly
    assert not any(hasattr(m, "input_quantizer") for m in layers.values())
    assert OutputDistortion(pico, sensitivity_loop).measure(pico) == 0.0  # no hook left behind


def test_layers_the_data_never_reaches_cost_nothing(pico, image_set):
    images_only = make_forward_loop(list(CocoImages.from_dir(image_set))[:2], [], progress=False)
    layers = {name: module for name, module in target_layers(pico).items() if name in PICKED}
    errors = measure_format_errors(pico, layers, _candidates(PICKED), 32, images_only)
    assert errors["memory_attention.layers.0.self_attn.q_proj"]["int8"] == 0.0
    assert errors["memory_encoder.fuser.layers.0.pwconv1"]["int8"] == 0.0
    assert errors["image_encoder.trunk.blocks.1.proj"]["int8"] > 0


def test_layer_quantized_restores_the_layer(pico):
    layer = target_layers(pico)["image_encoder.trunk.blocks.1.proj"]
    x = torch.randn(3, layer.in_features)
    clean = layer(x)
    with layer_quantized(layer, get_format("int8"), 1.0, 32):
        assert not torch.equal(layer(x), clean)
    assert torch.equal(layer(x), clean)


def test_measured_objective_drives_the_allocation(pico, image_set, video_set, sensitivity_loop):
    images, videos = list(CocoImages.from_dir(image_set)), open_video_set(video_set)
    loop = make_forward_loop(images, videos, max_frames=3, progress=False)
    config = CalibrationConfig(budget_bits=6.0, block_size=32, importance="measured")
    plan = calibrate(pico, loop, config, "pico", sensitivity_loop=sensitivity_loop)
    wais = calibrate(pico, loop, CalibrationConfig(budget_bits=6.0, block_size=32), "pico")
    assert plan.calibration["config"]["importance"] == "measured"
    assert [l["format"] for l in wais.layers.values()] != [l["format"] for l in plan.layers.values()]
    for name in ("image_encoder.trunk.blocks.1.proj", "sam_mask_decoder.conv_s0"):
        fmt = plan.layers[name]["format"]
        layer = target_layers(pico)[name]
        expected = measure_format_errors(pico, {name: layer}, {name: {fmt: plan.layers[name]["act_amax"]}}, 32,
                                         sensitivity_loop)[name][fmt]
        assert plan.layers[name]["error"] == pytest.approx(expected, rel=1e-6)
    assert all(l["score"] == pytest.approx(w["score"]) for l, w in zip(plan.layers.values(), wais.layers.values()))
    assert plan.effective_bits <= 6.0 + 1e-9
