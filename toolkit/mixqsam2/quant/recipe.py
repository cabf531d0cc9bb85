"""Calibration recipes: a device profile's budget and settings plus the data to calibrate on,
in one YAML file (``calib/recipes/*.yaml``), used as ``mixqsam2 calibrate --recipe FILE``.

A recipe's keys are ``calibrate``'s long options (``budget-bits``, ``formats``,
``keep-fp16``, ``max-frames``, ...), plus ``name`` and ``description``, and for data either
folders (``images``, ``videos``; relative paths are read from the recipe's folder) or
generated sets (``synth-images: {num, seed}``, ``synth-videos: {num, frames, seed}``, made
once and cached). An option given on the command line wins over the recipe; the recipe wins
over the built-in default. Unknown keys and wrong types are refused with the key's name.

>>> recipe = Recipe.from_mapping({"name": "demo", "budget-bits": 6, "formats": "fp16,int8"}, base=".")
>>> recipe.settings(overrides={"budget_bits": 5.0, "solver": None})["budget_bits"], recipe.settings({})["formats"]
(5.0, ('fp16', 'int8'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mixqsam2.errors import UserInputError
from mixqsam2.quant.config import DEFAULTS

TYPES = {"budget_bits": float, "budget_mb": float, "block_size": int, "max_images": int, "max_videos": int,
         "max_frames": int, "sensitivity_images": int, "sensitivity_videos": int, "sensitivity_frames": int,
         "keep_first_last": bool}
LISTS = ("formats", "keep_fp16")
PATHS = ("images", "videos", "checkpoint")


@dataclass(frozen=True)
class Recipe:
    name: str = "command line"
    description: str = ""
    options: dict = field(default_factory=dict)
    synth: dict = field(default_factory=dict)  # "images": {num, seed}, "videos": {num, frames, seed}

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise UserInputError(f"recipe not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserInputError(f"cannot read recipe {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserInputError(f"recipe {path} is not a mapping of calibrate options")
        return cls.from_mapping(data, base=path.parent, source=str(path))

    @classmethod
    def from_mapping(cls, data: dict, base: str | Path, source: str = "recipe") -> Recipe:
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        synth = {kind: _synth_spec(data.pop(f"synth_{kind}"), kind, source)
                 for kind in ("images", "videos") if f"synth_{kind}" in data}
        name, description = str(data.pop("name", Path(source).stem)), str(data.pop("description", ""))
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise UserInputError(f"{source}: unknown key '{unknown[0].replace('_', '-')}' "
                                 f"(a recipe takes calibrate's long options)")
        options = {key: _typed(key, value, base, source) for key, value in data.items()}
        for kind in synth:
            if options.get(kind):
                raise UserInputError(f"{source}: give '{kind}' or 'synth-{kind}', not both")
        return cls(name=name, description=description, options=options, synth=synth)

    def settings(self, overrides: dict) -> dict:
        """Every calibrate option: the command line's (not None) over the recipe's over the
        default; ``keep_fp16`` pins add up."""
        given = {k: v for k, v in overrides.items() if k in DEFAULTS and v is not None and v not in ([], ())}
        settings = {**DEFAULTS, **self.options, **given}
        settings["keep_fp16"] = (*self.options.get("keep_fp16", ()), *given.get("keep_fp16", ()))
        if "budget_bits" in given or "budget_mb" in given:  # a budget on the command line replaces the recipe's
            settings.update({k: given.get(k) for k in ("budget_bits", "budget_mb")})
        return {k: tuple(v.split(",")) if k in LISTS and isinstance(v, str) else v for k, v in settings.items()}

    def data_folders(self, settings: dict) -> dict:
        """``images``/``videos`` folders: the settings' own, or the generated sets (made once,
        atomically, in the cache)."""
        folders = {kind: settings[kind] for kind in ("images", "videos")}
        for kind, spec in self.synth.items():
            if folders[kind] is None:
                folders[kind] = str(_generated(kind, spec))
        return folders


def _synth_spec(value, kind: str, source: str) -> dict:
    keys = ("num", "seed") if kind == "images" else ("num", "frames", "seed")
    if not isinstance(value, dict) or set(value) != set(keys) or not all(isinstance(value[k], int) for k in keys):
        raise UserInputError(f"{source}: synth-{kind} needs integers {', '.join(keys)}")
    return {k: value[k] for k in keys}


def _typed(key: str, value, base: str | Path, source: str):
    if key in LISTS:
        if isinstance(value, str):
            return tuple(value.split(","))
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise UserInputError(f"{source}: '{key.replace('_', '-')}' must be a list of strings")
    kind = TYPES.get(key, str)
    if kind is bool and not isinstance(value, bool) or kind is not bool and isinstance(value, bool):
        raise UserInputError(f"{source}: '{key.replace('_', '-')}' must be {kind.__name__}, got {value!r}")
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{source}: '{key.replace('_', '-')}' must be {kind.__name__}, got {value!r}") from None
    return str(Path(base) / value) if key in PATHS else value


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mixqsam2" / "synth"


def _generated(kind: str, spec: dict) -> Path:
    from mixqsam2.data.synth import cached_set

    return cached_set(_cache_dir(), kind, **spec)
