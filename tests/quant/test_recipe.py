"""Calibration recipes (calib/recipes/*.yaml): parsing, precedence, generated data, the CLI."""

import json
from pathlib import Path

import pytest

from mixqsam2.cli.main import main
from mixqsam2.errors import UserInputError
from mixqsam2.models import model_names
from mixqsam2.quant.config import CalibrationConfig
from mixqsam2.quant.plan import PrecisionPlan
from mixqsam2.quant.recipe import Recipe

RECIPES = sorted((Path(__file__).parents[2] / "calib" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipes_are_valid(path):
    recipe = Recipe.load(path)
    settings = recipe.settings({})
    assert recipe.name == path.stem and recipe.description
    assert settings["model"] in model_names()
    assert (settings["budget_bits"] is None) != (settings["budget_mb"] is None)
    CalibrationConfig.from_settings(settings).validate()


def test_the_recipe_the_config_and_the_help_share_one_set_of_defaults():
    import argparse
    from dataclasses import fields

    from mixqsam2.cli.main import build_parser
    from mixqsam2.quant.config import DEFAULTS, CalibrationData

    settings = Recipe().settings({"budget_bits": 6.0})
    assert CalibrationConfig.from_settings(settings) == CalibrationConfig(budget_bits=6.0)
    assert all(settings[f.name] == f.default for f in fields(CalibrationData))
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in verbs.choices["calibrate"]._actions}
    for dest, value in DEFAULTS.items():
        if value not in (None, (), False):
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
            assert f"default {shown}" in helps[dest], dest


def test_there_is_a_runnable_default_and_device_profiles():
    assert {p.stem for p in RECIPES} >= {"pico-synthetic", "jetson-orin-nano", "jetson-agx-orin"}
    assert Recipe.load(RECIPES[0].parent / "pico-synthetic.yaml").synth  # needs no data from the user


def test_command_line_over_recipe_over_default(tmp_path):
    recipe = Recipe.from_mapping({"budget-bits": 6, "block-size": 64, "keep-fp16": ["decoder"], "images": "imgs"},
                                 base=tmp_path)
    settings = recipe.settings({"block_size": None, "solver": "greedy", "keep_fp16": ("encoder",)})
    assert settings["block_size"] == 64 and settings["solver"] == "greedy" and settings["observer"] == "percentile"
    assert settings["keep_fp16"] == ("decoder", "encoder")  # pins add up
    assert settings["images"] == str(tmp_path / "imgs")  # relative to the recipe's folder
    assert recipe.settings({"budget_mb": 3.0})["budget_bits"] is None  # a command-line budget replaces the recipe's


@pytest.mark.parametrize("mapping, message", [
    ({"budget-bitz": 6}, "unknown key 'budget-bitz'"),
    ({"block-size": "big"}, "'block-size' must be int"),
    ({"keep-first-last": "yes"}, "'keep-first-last' must be bool"),
    ({"formats": [8]}, "'formats' must be a list of strings"),
    ({"synth-images": {"num": 3}}, "synth-images needs integers num, seed"),
    ({"images": "x", "synth-images": {"num": 3, "seed": 1}}, "give 'images' or 'synth-images', not both"),
])
def test_bad_recipes_are_refused_by_key(mapping, message, tmp_path):
    with pytest.raises(UserInputError, match=message):
        Recipe.from_mapping(mapping, base=tmp_path)


def test_calibrate_from_a_recipe_with_generated_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("name: tiny\ndescription: test\nmodel: pico\nbudget-bits: 10\nblock-size: 32\n"
                      "synth-images: {num: 3, seed: 5}\nsynth-videos: {num: 1, frames: 5, seed: 6}\n")
    out = tmp_path / "plan.json"
    assert main(["calibrate", "--recipe", str(recipe), "--solver", "greedy", "--out", str(out)]) == 0
    plan = PrecisionPlan.load(out)
    assert plan.budget_bits == 10 and plan.solver == "greedy"
    assert plan.calibration["recipe"] == "tiny" and plan.calibration["images"] == 3 and plan.calibration["videos"] == 1
    assert plan.calibration["config"]["block_size"] == 32
    generated = sorted(p.name for p in (tmp_path / "cache" / "mixqsam2" / "synth").iterdir())
    assert generated == ["images-num3-seed5-gen3", "videos-num1-frames5-seed6-gen3"]
    stamp = (tmp_path / "cache" / "mixqsam2" / "synth" / generated[0]).stat().st_mtime_ns
    assert main(["calibrate", "--recipe", str(recipe), "--budget-bits", "12", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["budget_bits"] == 12
    assert (tmp_path / "cache" / "mixqsam2" / "synth" / generated[0]).stat().st_mtime_ns == stamp  # reused


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "missing.yaml"], "recipe not found"),
    (["--model", "pico", "--budget-bits", "6"], "no calibration images"),
    (["--images", "."], "no model"),
    (["--model", "pico", "--images", "."], "give exactly one budget"),
    (["--model", "pico", "--images", ".", "--budget-bits", "6", "--device", "cuda:7"], "is not available"),
    (["--model", "pico", "--images", ".", "--budget-bits", "6", "--device", "tpu"], "unknown device"),
    (["--model", "pico", "--images", ".", "--budget-bits", "6", "--device", "meta"], "unsupported device"),
])
def test_calibrate_needs_model_images_one_budget_and_a_real_device(argv, message, tmp_path, capsys):
    assert main(["calibrate", *argv, "--out", str(tmp_path / "p.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
