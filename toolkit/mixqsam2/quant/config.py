"""What defines a calibration run, and every default of it, in one place.

No heavy imports: the library (:class:`CalibrationConfig`), the recipes
(:mod:`mixqsam2.quant.recipe`) and ``mixqsam2 calibrate --help`` all read the defaults from
here. Settings are keyed by ``calibrate``'s long option names with underscores.

>>> CalibrationConfig(budget_bits=6.0).formats
('fp16', 'int8', 'int4')
>>> DEFAULTS["block_size"], DEFAULTS["max_images"], DEFAULTS["budget_bits"]
(128, 32, None)
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields

from mixqsam2.errors import UserInputError
from mixqsam2.quant.formats import get_format

SOLVERS = ("ilp", "greedy")  # exact (scipy milp) or the paper's greedy procedure
AMAX_METHODS = ("max", "percentile", "mse")  # the int8 activation range of an observer
WAIS_VARIANTS = ("l2", "rms")  # "l2" (the paper) or "rms" (the reimplementation)
IMPORTANCES = ("wais", "measured")  # the objective: WAIS x NSR, or measured output distortion


@dataclass(frozen=True)
class CalibrationConfig:
    """How layers are scored and formats allocated under ``budget_bits`` effective bits."""

    budget_bits: float
    solver: str = "ilp"
    formats: tuple[str, ...] = ("fp16", "int8", "int4")  # the candidates
    block_size: int = 128  # int4 block along the input dimension
    observer: str = "percentile"
    wais: str = "l2"
    importance: str = "wais"
    keep_fp16: tuple[str, ...] = ()  # regular expressions of layer names pinned to fp16
    keep_first_last: bool = False

    @classmethod
    def from_settings(cls, settings: dict) -> CalibrationConfig:
        """The config in a settings dict (a budget in MiB is converted later: 0 bits until then)."""
        return cls(**{f.name: settings[f.name] for f in fields(cls)} | {"budget_bits": settings["budget_bits"] or 0.0})

    def validate(self) -> None:
        for name, value, allowed in (("solver", self.solver, SOLVERS), ("observer", self.observer, AMAX_METHODS),
                                     ("WAIS variant", self.wais, WAIS_VARIANTS),
                                     ("importance", self.importance, IMPORTANCES)):
            if value not in allowed:
                raise UserInputError(f"unknown {name} '{value}'; use one of {', '.join(allowed)}")
        if self.block_size < 1:
            raise UserInputError(f"block size must be positive, got {self.block_size}")
        for name in self.formats:
            get_format(name)


@dataclass(frozen=True)
class CalibrationData:
    """How much of the calibration data a run uses."""

    max_images: int = 32
    max_videos: int = 8
    max_frames: int = 16  # frames per calibration video
    sensitivity_images: int = 8  # the measured objective's subset
    sensitivity_videos: int = 2
    sensitivity_frames: int = 8


def _config_defaults() -> dict:
    return {f.name: f.default for f in fields(CalibrationConfig) if f.default is not MISSING}


# every calibrate setting; None: no default (model, data and budget come from the user or a recipe)
DEFAULTS = {"model": None, "checkpoint": None, "images": None, "videos": None, "budget_bits": None,
            "budget_mb": None, **_config_defaults(), **asdict(CalibrationData())}
