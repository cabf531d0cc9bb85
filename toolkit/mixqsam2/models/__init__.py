"""Build SAM2 models from the real ``sam2`` package: official configs or the bundled pico.

Every model is built with sam2's own ``build_sam2_video_predictor`` (so it carries exactly
the settings sam2's video predictor uses; pico then answers with its single-mask token, see
:func:`keep_single_mask`) and loaded from a checkpoint in sam2's format,
``{"model": state_dict}``. Checkpoint problems become one clear :class:`UserInputError`.

>>> from mixqsam2.models import model_info
>>> model_info()["pico"]["image_size"]
256
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from mixqsam2.errors import UserInputError

_HERE = Path(__file__).resolve().parent
PICO_CONFIG = _HERE / "configs" / "pico.yaml"
PICO_CHECKPOINT = _HERE / "weights" / "pico.pt"
PICO_RANDOM_SEED = 0
PICO_EMBED = 32  # pico.yaml's trunk width; wider picos are the same config with pico_overrides

_OFFICIAL = {
    **{f"sam2.1_hiera_{s}": f"configs/sam2.1/sam2.1_hiera_{s}.yaml" for s in ("t", "s", "b+", "l")},
    **{f"sam2_hiera_{s}": f"configs/sam2/sam2_hiera_{s}.yaml" for s in ("t", "s", "b+", "l")},
}


@dataclass(frozen=True)
class ModelSpec:
    """Where a named model's config and default checkpoint live."""

    name: str
    config_path: Path | None  # absolute path of the YAML (None: sam2 not installed)
    checkpoint: Path | None  # default checkpoint, if one ships

    @property
    def hydra_name(self) -> str:
        # hydra's compose() reads an absolute file path when it starts with "//"
        return "/" + str(self.config_path)

    @property
    def image_size(self) -> int | None:
        if self.config_path is None:
            return None
        return int(yaml.safe_load(self.config_path.read_text())["model"]["image_size"])


def _sam2_package_dir() -> Path | None:
    spec = importlib.util.find_spec("sam2")
    return Path(spec.origin).parent if spec and spec.origin else None


def model_names() -> list[str]:
    return ["pico", *_OFFICIAL]


def get_spec(name: str) -> ModelSpec:
    """Look up a model by name; unknown names raise :class:`UserInputError`."""
    if name == "pico":
        return ModelSpec("pico", PICO_CONFIG, PICO_CHECKPOINT if PICO_CHECKPOINT.exists() else None)
    if name not in _OFFICIAL:
        raise UserInputError(f"unknown model '{name}'; known models: {', '.join(model_names())}")
    sam2_dir = _sam2_package_dir()
    return ModelSpec(name, sam2_dir / _OFFICIAL[name] if sam2_dir else None, None)


def pico_overrides(embed: int, image_size: int = 256) -> list[str]:
    """Hydra overrides turning pico.yaml into the variant of trunk width ``embed`` (channels
    per stage ``embed * 2**i``) and input size ``image_size`` (RoPE feature sizes follow).

    >>> pico_overrides(48)[:2]
    ['++model.image_encoder.trunk.embed_dim=48', '++model.image_encoder.neck.backbone_channel_list=[384,192,96,48]']
    """
    side = image_size // 16
    return [
        f"++model.image_encoder.trunk.embed_dim={embed}",
        f"++model.image_encoder.neck.backbone_channel_list=[{8 * embed},{4 * embed},{2 * embed},{embed}]",
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{side},{side}]",
    ]


def pico_width(state_dict: dict) -> int | None:
    """The trunk width of a pico state dict (None: not a Hiera trunk's).

    >>> import torch
    >>> pico_width({"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(48, 3, 7, 7)})
    48
    """
    weight = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    return None if weight is None else int(weight.shape[0])


def checkpoint_overrides(name: str, state_dict: dict | None) -> list[str]:
    """The overrides a checkpoint of ``name`` needs: a pico trained wider than pico.yaml
    (``train-pico --embed``) is built at its own trunk width; every other model as configured.

    >>> checkpoint_overrides("sam2.1_hiera_t", {})
    []
    """
    width = pico_width(state_dict or {}) if name == "pico" else None
    return [] if width in (None, PICO_EMBED) else pico_overrides(width)


def model_info() -> dict:
    """``{name: {"config", "checkpoint", "image_size"}}`` for every known model."""
    info = {}
    for name in model_names():
        spec = get_spec(name)
        info[name] = {
            "config": str(spec.config_path) if spec.config_path else None,
            "checkpoint": str(spec.checkpoint) if spec.checkpoint else None,
            "image_size": spec.image_size,
        }
    return info


def build_model(name: str, checkpoint: str | os.PathLike | None = None, device: str = "cpu"):
    """Build a SAM2 model (a ``SAM2VideoPredictor``, i.e. a ``SAM2Base``) in eval mode.

    ``checkpoint`` defaults to the shipped one (pico). Without any checkpoint the weights
    are random: pico's are seeded (``PICO_RANDOM_SEED``) so results are reproducible, and a
    loud warning says that accuracy numbers mean nothing.

    >>> model = build_model("pico")  # doctest: +SKIP
    >>> model.image_size  # doctest: +SKIP
    256
    """
    spec = get_spec(name)
    if spec.config_path is None:
        raise UserInputError(f"model '{name}' needs the sam2 package, which is not installed")
    checkpoint = Path(checkpoint) if checkpoint is not None else spec.checkpoint
    state_dict = read_checkpoint(checkpoint) if checkpoint is not None else None
    model = _build_from_config(spec.hydra_name, device, checkpoint_overrides(name, state_dict))
    if state_dict is None:
        warnings.warn(
            f"model '{name}' has RANDOM weights (no checkpoint): masks and accuracy numbers "
            "from it are meaningless",
            stacklevel=2,
        )
    else:
        load_state_dict_checked(model, state_dict, checkpoint)
    return (keep_single_mask(model) if name == "pico" else model).eval()


def keep_single_mask(model):
    """``model`` with its mask decoder's dynamic multimask fallback off, so that a box prompt
    and a tracked frame get the single-mask token's mask (token 0); returns ``model``.

    sam2's builders turn the fallback on for every model: where token 0's mask looks
    unstable, the best of tokens 1-3 by predicted IoU replaces it. Those three tokens are
    trained for ambiguous one-click prompts, and sam2 trains with the fallback off. Pico's
    token 0 is the better answer: v2's box mIoU +0.027 held out and +0.012 in distribution,
    its video J&F level; a continued checkpoint's held-out J&F +0.12 (BENCHMARKS.md, "Pico's
    single-mask token"). The official models keep sam2's setting (no weights here to measure
    them).

    >>> build_model("pico").sam_mask_decoder.dynamic_multimask_via_stability
    False
    """
    model.sam_mask_decoder.dynamic_multimask_via_stability = False
    return model


def build_pico_variant(embed: int = PICO_EMBED, image_size: int = 256, device: str = "cpu"):
    """pico's architecture at trunk width ``embed`` and input ``image_size``, with seeded
    random weights (load a checkpoint into it, or time it).

    >>> build_pico_variant(64).image_encoder.trunk.patch_embed.proj.weight.shape[0]
    64
    """
    model = _build_from_config(get_spec("pico").hydra_name, device, pico_overrides(embed, image_size))
    return keep_single_mask(model)


def _build_from_config(hydra_name: str, device: str, overrides: list[str]):
    """sam2's video predictor from a config; its random init seeded (``PICO_RANDOM_SEED``)
    without touching the caller's random state."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    # sam2 logs its "fill holes needs the CUDA extension" message on every frame otherwise
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PICO_RANDOM_SEED)
        return build_sam2_video_predictor(hydra_name, None, device=device, hydra_overrides_extra=overrides)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a sam2-format checkpoint's state dict; missing/corrupt files are user errors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise UserInputError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise UserInputError(f"checkpoint {path} is not in sam2's format {{'model': state_dict}}")
    return {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}


def load_state_dict_checked(model, state_dict: dict, source) -> None:
    """Load ``state_dict`` strictly; a mismatch names the missing/unexpected/reshaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    reshaped = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or reshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label} keys: {', '.join(keys[:3])}{more}")
        raise UserInputError(f"checkpoint {source} does not match the model config: {'; '.join(parts)}")
    model.load_state_dict(state_dict)


def save_checkpoint(model, path: str | os.PathLike, half: bool = False) -> None:
    """Save ``model`` in sam2's checkpoint format, atomically (fp16 storage with ``half``)."""
    import torch

    from mixqsam2.fileio import write_bytes_atomic

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"model": state}, buf)
    write_bytes_atomic(path, buf.getvalue())
