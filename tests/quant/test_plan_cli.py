"""The precision plan: calibration end to end, round trip, mismatches, the CLI contract."""

import json
import re
import shutil

import pytest
import torch

from mixqsam2.cli.main import main
from mixqsam2.data.loaders import CocoImages, open_video_set
from mixqsam2.errors import UserInputError
from mixqsam2.quant.calibrate import CalibrationConfig, calibrate, make_forward_loop, target_layers
from mixqsam2.quant.plan import SCHEMA, PrecisionPlan, apply_plan

_PLAN_FIELDS = {"schema": SCHEMA, "model": "pico", "model_sha256": "0" * 64, "budget_bits": 8, "effective_bits": 8.0,
                "solver": "ilp", "calibration": {}}


@pytest.fixture(scope="module")
def plan_and_data(pico, image_set, video_set):
    images = list(CocoImages.from_dir(image_set))
    videos = open_video_set(video_set)
    config = CalibrationConfig(budget_bits=6.0, block_size=32)
    plan = calibrate(pico, make_forward_loop(images, videos, max_frames=4), config, model_name="pico")
    return plan, images, videos


def test_plan_covers_every_target_layer_within_the_budget(pico, plan_and_data):
    plan, _, _ = plan_and_data
    assert list(plan.layers) == list(target_layers(pico))
    assert plan.effective_bits <= 6.0 + 1e-9 and plan.deployable
    formats = {layer["format"] for layer in plan.layers.values()}
    assert formats <= {"fp16", "int8", "int4"} and len(formats) >= 2
    for name, layer in plan.layers.items():
        if layer["kind"] == "conv":
            assert layer["format"] != "int4", name
        if layer["format"] == "int8":
            assert layer["act_amax"] > 0
    assert sum(layer["score"] for layer in plan.layers.values()) == pytest.approx(1.0)
    assert not any(name.startswith("sam_prompt_encoder") for name in plan.layers)


def test_plan_round_trips_through_json(plan_and_data, tmp_path):
    plan, _, _ = plan_and_data
    plan.save(tmp_path / "plan.json")
    again = PrecisionPlan.load(tmp_path / "plan.json")
    assert again == plan
    assert json.loads((tmp_path / "plan.json").read_text())["schema"] == "mixqsam2.plan/1"


def test_plan_on_other_weights_or_another_model_is_refused(plan_and_data):
    from mixqsam2.models import build_model

    plan, _, _ = plan_and_data
    other = build_model("pico")
    with torch.no_grad():
        other.sam_mask_decoder.iou_prediction_head.layers[0].weight.add_(1.0)
    with pytest.raises(UserInputError, match="calibrated on weights"):
        apply_plan(other, plan)
    broken = PrecisionPlan(**{**plan.__dict__, "layers": {"no.such.layer": next(iter(plan.layers.values()))}})
    with pytest.raises(UserInputError, match="not in it"):
        apply_plan(other, broken)


def test_applied_plan_changes_the_model_and_has_quantizers(plan_and_data):
    from mixqsam2.models import build_model
    from mixqsam2.quant.fake import quant_summary

    plan, images, _ = plan_and_data
    model = build_model("pico")
    before = model.image_encoder.trunk.blocks[2].mlp.layers[0].weight.clone()
    apply_plan(model, plan)
    summary = quant_summary(model)
    assert summary.count("\n") + 1 == len(plan.layers)
    name = "image_encoder.trunk.blocks.2.mlp.layers.0"
    if plan.layers[name]["format"] != "fp16":
        assert not torch.equal(before, model.image_encoder.trunk.blocks[2].mlp.layers[0].weight)


def test_greedy_solver_at_the_same_budget(pico, plan_and_data):
    plan, images, videos = plan_and_data
    greedy = calibrate(pico, make_forward_loop(images, videos, max_frames=4),
                       CalibrationConfig(budget_bits=6.0, block_size=32, solver="greedy"), model_name="pico")
    assert greedy.effective_bits <= 6.0 + 1e-9
    total = lambda p: sum(layer["score"] * layer["error"] for layer in p.layers.values())  # noqa: E731
    assert total(plan) <= total(greedy) + 1e-12  # the exact solver is never worse on its objective


def test_calibrate_cli_writes_plan_report_and_chart(image_set, video_set, tmp_path):
    out = tmp_path / "plan.json"
    argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--videos", str(video_set), "--max-frames", "3",
            "--budget-bits", "10", "--block-size", "32", "--keep", "fp16", "mask_decoder", "--out", str(out)]
    assert main(argv) == 0
    plan = PrecisionPlan.load(out)
    assert all(layer["format"] == "fp16" for name, layer in plan.layers.items() if "mask_decoder" in name)
    assert (tmp_path / "plan.md").read_text().startswith("# Precision plan: pico")
    assert (tmp_path / "plan.png").stat().st_size > 1000
    result = tmp_path / "r.json"
    assert main(["eval", "images", "--model", "pico", "--data", str(image_set), "--plan", str(out), "--out", str(result)]) == 0
    evaluated = json.loads(result.read_text())
    assert evaluated["plan"] == str(out)
    assert 0.5 < evaluated["agreement_with_unquantized"] <= 1.0  # the plan moved the masks a little, if at all
    assert main(["eval", "images", "--model", "pico", "--data", str(image_set), "--out", str(result)]) == 0
    assert "agreement_with_unquantized" not in json.loads(result.read_text())  # nothing to agree with


def test_budget_in_megabytes_is_met(image_set, video_set, tmp_path, pico):
    from mixqsam2.quant.calibrate import target_layers
    from mixqsam2.quant.formats import get_format

    out = tmp_path / "plan.json"
    params = sum(layer.weight.numel() for layer in target_layers(pico).values())
    megabytes = params * 6 / 8 / 2**20  # the size of a 6-bit budget
    argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--videos", str(video_set), "--max-frames", "3",
            "--budget-mb", f"{megabytes:.6f}", "--block-size", "32", "--out", str(out)]
    assert main(argv) == 0
    plan = PrecisionPlan.load(out)
    assert plan.budget_bits == pytest.approx(6.0, abs=1e-4)
    bits = sum(layer["params"] * get_format(layer["format"]).effective_bits(32) for layer in plan.layers.values())
    assert bits / 8 <= megabytes * 2**20 * (1 + 1e-9)  # int4 scales included


def test_images_only_calibration_keeps_the_memory_layers_fp16(image_set, tmp_path):
    out = tmp_path / "plan.json"
    argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--budget-bits", "8", "--block-size", "32"]
    with pytest.warns(UserWarning, match="give --videos"):
        assert main([*argv, "--out", str(out)]) == 0
    plan = PrecisionPlan.load(out)
    memory = {k: v for k, v in plan.layers.items() if k.startswith(("memory_attention", "memory_encoder"))}
    assert memory and all(v["format"] == "fp16" and "not reached" in v["reason"] for v in memory.values())
    assert plan.effective_bits <= 8


@pytest.mark.parametrize("extra,message", [
    (["--budget-bits", "3"], "infeasible"),
    (["--budget-bits", "6", "--solver", "magic"], "unknown solver"),
    (["--budget-bits", "6", "--formats", "int3"], "unknown format"),
])
def test_calibrate_bad_input_is_one_line_exit_2(image_set, tmp_path, capsys, extra, message):
    out = tmp_path / "plan.json"
    code = main(["calibrate", "--model", "pico", "--images", str(image_set), "--max-images", "1", *extra, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_calibrating_on_images_without_annotations_says_so(image_set, tmp_path, capsys):
    unannotated = tmp_path / "unannotated"
    shutil.copytree(image_set, unannotated)
    coco = json.loads((unannotated / "annotations.json").read_text())
    (unannotated / "annotations.json").write_text(json.dumps({**coco, "annotations": []}))
    out = tmp_path / "plan.json"
    code = main(["calibrate", "--model", "pico", "--images", str(unannotated), "--budget-bits", "6", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no annotated objects" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("budget", [["--budget-bits", "nan"], ["--budget-bits", "-1"], ["--budget-mb", "inf"]])
def test_calibrate_refuses_a_budget_that_is_no_positive_number(image_set, tmp_path, capsys, budget):
    with pytest.raises(SystemExit) as usage_error:
        main(["calibrate", "--model", "pico", "--images", str(image_set), *budget, "--out", str(tmp_path / "p.json")])
    assert usage_error.value.code == 2 and "must be a positive number" in capsys.readouterr().err


def test_calibrate_refuses_a_keep_pattern_that_is_no_regular_expression_before_calibrating(tmp_path, capsys):
    code = main(["calibrate", "--model", "pico", "--images", str(tmp_path / "never-read"), "--budget-bits", "6",
                 "--keep", "fp16", "(", "--out", str(tmp_path / "p.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a regular expression" in err[0]


def test_calibrate_never_replaces_a_file_that_is_not_its_own(image_set, tmp_path, capsys):
    argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--budget-bits", "6", "--out"]
    notes = tmp_path / "notes.md"
    notes.write_text("the user's notes")
    assert main([*argv, str(tmp_path / "notes.json")]) == 2  # its report would be notes.md
    assert "notes.md exists" in capsys.readouterr().err and notes.read_text() == "the user's notes"
    assert main([*argv, str(notes)]) == 2  # the plan itself would replace the notes
    assert "name the plan PLAN.json" in capsys.readouterr().err and notes.read_text() == "the user's notes"
    assert main([*argv, str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    data = tmp_path / "data.json"
    data.write_text('{"the user": "s data"}')
    assert main([*argv, str(data)]) == 2
    assert "is not a precision plan" in capsys.readouterr().err and data.read_text() == '{"the user": "s data"}'


@pytest.mark.parametrize("data, message", [
    ([], "schema None"),
    ({"schema": SCHEMA}, "'model' missing"),
    ({**_PLAN_FIELDS, "layers": []}, "'layers' missing or not an object"),
    ({**_PLAN_FIELDS, "layers": {"a": {"kind": "linear", "format": "int8"}}}, "layer 'a': 'params' missing"),
    ({**_PLAN_FIELDS, "layers": {"a": {"kind": "linear", "params": 4, "format": "int3"}}}, "unknown format 'int3'"),
    ({**_PLAN_FIELDS, "layers": {"a": {"kind": "linear", "params": 4, "format": "int8"}}}, "(int8): 'act_amax'"),
    ({**_PLAN_FIELDS, "layers": {"a": {"kind": "linear", "params": 4, "format": "int4"}}}, "(int4): 'block_size'"),
])
def test_a_malformed_plan_is_a_user_error(data, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        PrecisionPlan.from_json(data)


def test_eval_with_a_missing_plan_is_one_line_exit_2(image_set, tmp_path, capsys):
    code = main(["eval", "images", "--model", "pico", "--data", str(image_set), "--plan", str(tmp_path / "p.json"),
                 "--out", str(tmp_path / "r.json")])
    assert code == 2 and "plan not found" in capsys.readouterr().err


def test_calibrate_cli_with_the_measured_objective(image_set, video_set, tmp_path):
    out = tmp_path / "plan.json"
    argv = ["calibrate", "--model", "pico", "--images", str(image_set), "--videos", str(video_set), "--max-frames", "3",
            "--budget-bits", "14", "--block-size", "32", "--keep", "fp16", "^(image_encoder|memory_)",
            "--importance", "measured", "--sensitivity-images", "1", "--sensitivity-videos", "1",
            "--sensitivity-frames", "3", "--out", str(out)]
    assert main(argv) == 0
    plan = PrecisionPlan.load(out)
    assert plan.calibration["sensitivity"] == {"images": 1, "videos": 1, "frames": 3}
    assert plan.calibration["config"]["importance"] == "measured"
    decoder = [layer for name, layer in plan.layers.items() if name.startswith("sam_mask_decoder")]
    assert any(layer["format"] != "fp16" and layer["error"] > 0 for layer in decoder)  # measured, not modelled
    assert "measured distortion" in (tmp_path / "plan.md").read_text()
