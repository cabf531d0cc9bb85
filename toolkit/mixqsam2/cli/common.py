"""What the entry points share: the bad-input contract and argument groups.

Bad input (:class:`~mixqsam2.errors.UserInputError`) prints one line on stderr and exits
with code 2; so do usage errors (:class:`Parser`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable

from mixqsam2.errors import UserInputError


class Parser(argparse.ArgumentParser):
    """argparse with the bad-input contract: a usage error is one line on stderr, exit 2
    (argparse's own prints the usage first); sub-command parsers are of this class too.

    >>> Parser(prog="tool").parse_args(["--nope"])
    Traceback (most recent call last):
    SystemExit: 2
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run_cli(command: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        return command(args) or 0
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def named_file(text: str) -> tuple[str, str]:
    """``NAME=PATH`` of an existing file, e.g. ``--checkpoint v2=pico.pt``.

    >>> named_file(f"mine={__file__}")[0]
    'mine'
    >>> named_file("pico.pt")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: give NAME=PATH, got 'pico.pt'
    """
    name, equals, path = text.partition("=")
    if not (equals and name and path):
        raise argparse.ArgumentTypeError(f"give NAME=PATH, got {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{name}: no file {path}")
    return name, path


def distinct_names(parser: argparse.ArgumentParser, named: list[tuple[str, str]], option: str) -> dict[str, str]:
    """``{name: path}`` of the ``NAME=PATH`` values of ``option``; a name given twice is a usage error."""
    names = [name for name, _ in named]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        parser.error(f"{option}: each needs its own NAME; {', '.join(repeated)} is given more than once")
    return dict(named)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_box_zoom_arg(parser) -> None:
    parser.add_argument("--box-zoom", type=open_share, metavar="SHARE",
                        help="segment a box prompt smaller than SHARE of the frame (e.g. 0.3) on a zoomed view in "
                             "which it spans SHARE: better masks of small objects, one more image-encoder pass each")


def add_track_zoom_arg(parser) -> None:
    parser.add_argument("--track-zoom", type=open_share, metavar="SHARE",
                        help="track an object smaller than SHARE of the frame (e.g. 0.3) on a window that follows "
                             "it, in which it spans SHARE: small objects kept at a size the model sees; one "
                             "image-encoder pass per distinct view and frame")


def open_share(text: str) -> float:
    """A share strictly between 0 and 1 (argparse type)."""
    value = float(text)
    if not 0.0 < value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, help="pico (bundled) or an official config, e.g. sam2.1_hiera_t")
    group.add_argument("--checkpoint", help="sam2-format checkpoint ({'model': state_dict}); pico has a default")


def add_ort_kernels_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ort-kernels", choices=("exact", "fast"), default="exact",
                        help="ort backend: exact runs a plan as written (TensorRT's arithmetic; default); fast uses "
                             "ONNX Runtime's integer kernels and int8 attention products in memory attention "
                             "(faster on x86 CPUs, masks move slightly: BENCHMARKS.md)")


def add_memory_args(parser: argparse.ArgumentParser) -> None:
    from mixqsam2.memory.synthesis import RULES

    group = parser.add_argument_group("memory bank")
    group.add_argument("--memory", default="fifo", choices=sorted(RULES),
                       help="full-bank policy: fifo (SAM2), prune, sis (the paper), sis-pair (ours)")
    group.add_argument("--capacity", type=positive_int, help="non-conditioning memories kept (default num_maskmem-1 = 6)")
    add_memory_pool_arg(group)


def add_memory_pool_arg(parser, default: int | None = None) -> None:
    """``--memory-pool B``; ``default`` None where graphs may come from a folder (which has its own)."""
    parser.add_argument("--memory-pool", type=positive_int, default=default, metavar="B",
                        help="memory attention reads the bank's older memories (all but the newest) B x B "
                             "average-pooled: their attention products cost 1/B^2 (default 1: sam2's attention"
                             + ("; an export or engine folder has its own)" if default is None else ")"))


def check_device(name: str) -> None:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``, ...)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"unknown device '{name}'; use cpu or cuda") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise UserInputError(f"device '{name}' is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise UserInputError(f"unsupported device '{name}'; use cpu or cuda")
