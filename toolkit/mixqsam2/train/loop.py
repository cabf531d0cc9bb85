"""Train pico, or fine-tune any SAM2 model's memory, with sam2's own training model and losses.

The model is sam2's ``training.model.sam2.SAM2Train`` built from the model's config (it samples
point/box prompts and correction clicks from the ground truth, and tracks clips with memory
and object pointers); the loss is sam2's ``MultiStepMultiMasksAndIous`` (focal + dice on the
best of the multimask outputs, IoU head, object-score head). The first
``image_only_fraction`` of the steps are image (SAM) steps, as sam2 trains SAM before video;
then image and video steps alternate. Everything random is seeded from ``(seed, step)``, so
a run is reproducible and a resumed run continues where it stopped, to float round-off
(multi-threaded CPU reductions are not bitwise repeatable). With ``bank_policies`` the model
is :class:`~mixqsam2.train.banked.BankedSAM2Train` (the deployed memory bank in the loop);
with ``videos`` the clips come from the user's DAVIS/SA-V folder (``mixqsam2 finetune``).

Files for ``--out pico.pt``: ``pico.pt`` (sam2 format, fp16), ``pico.pt.state`` (optimizer,
step, history: what ``--resume`` reads) and ``pico.pt.curve.png``.

>>> cfg = TrainConfig(steps=2, image_batch=1, video_batch=1)  # doctest: +SKIP
>>> history = train(cfg, "/tmp/pico.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import signal
import sys
import time
import warnings
from contextlib import closing
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from mixqsam2.errors import UserInputError
from mixqsam2.fileio import check_output_file, write_bytes_atomic
from mixqsam2.train.config import TrainConfig
from mixqsam2.train.data import VideoFolderClips, image_batch, video_batch

LOSS_WEIGHTS = {"loss_mask": 20.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0}  # sam2.1 recipe

# SAM2Train prompt sampling (names as in sam2's training configs)
PROMPT_SAMPLING = {
    "prob_to_use_pt_input_for_train": 0.5,  # video clips: points/box vs. a mask prompt
    "prob_to_use_box_input_for_train": 0.5,
    "num_frames_to_correct_for_train": 2,
    "rand_frames_to_correct_for_train": True,
    "num_init_cond_frames_for_train": 2,
    "rand_init_cond_frames_for_train": True,
    "num_correction_pt_per_frame": 4,
    "prob_to_sample_from_gt_for_train": 0.1,
}


def step_kind(cfg: TrainConfig, step: int) -> str:
    """Image steps only for the first ``image_only_fraction`` of the schedule, then a video
    step every ``video_every``-th step (video steps only when fine-tuning on the user's videos).

    >>> "".join(step_kind(TrainConfig(steps=8, image_only_fraction=0.0, video_every=3), s)[0] for s in range(8))
    'iiviivii'
    """
    if cfg.videos:
        return "video"
    if step < cfg.image_only_fraction * cfg.steps or step % cfg.video_every != cfg.video_every - 1:
        return "image"
    return "video"


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_train_model(cfg: TrainConfig):
    """sam2's ``SAM2Train`` with the model's architecture (``BankedSAM2Train`` when a bank
    policy is in the loop: one prompted frame per clip), seeded init or ``init_checkpoint``
    (a pico half as wide as ``cfg.embed`` is widened first, computing what it computed)."""
    import sam2  # noqa: F401  (importing sam2 initializes hydra)
    import torch
    from hydra import compose
    from hydra.utils import instantiate

    from mixqsam2.models import (PICO_EMBED, get_spec, load_state_dict_checked, pico_overrides, pico_width,
                                 read_checkpoint)
    from mixqsam2.models.widen import widened_state_dict

    init = read_checkpoint(cfg.init_checkpoint) if cfg.init_checkpoint else None
    width = pico_width(init) if init is not None and cfg.model == "pico" else None
    if width is not None and cfg.embed not in (width, 2 * width):
        raise UserInputError(f"--init {cfg.init_checkpoint} is a pico {width} wide, not {cfg.embed}: "
                             f"give --embed {width} (or {2 * width} to widen it)")
    sampling = dict(PROMPT_SAMPLING)
    target = "training.model.sam2.SAM2Train"
    if cfg.bank_policies:
        target = "mixqsam2.train.banked.BankedSAM2Train"
        sampling.update(num_init_cond_frames_for_train=1, rand_init_cond_frames_for_train=False)
    overrides = [f"++model._target_={target}"] + [f"++model.{k}={v}" for k, v in sampling.items()]
    if cfg.model == "pico" and cfg.embed != PICO_EMBED:
        overrides += pico_overrides(cfg.embed)
    config = compose(config_name=get_spec(cfg.model).hydra_name, overrides=overrides)
    torch.manual_seed(cfg.seed)
    model = instantiate(config.model, _recursive_=True)
    if width is not None and cfg.embed == 2 * width:
        init = widened_state_dict(model, init, seed=cfg.seed)
    if init is not None:
        load_state_dict_checked(model, init, cfg.init_checkpoint)
    return model.train()


def draw_bank(cfg: TrainConfig, step: int) -> tuple[str, int, int]:
    """The bank policy, capacity and memory pool of video step ``step`` (a function of seed and
    step). Policy and capacity do not depend on the pools: the pool is drawn after them, and
    only when there are several (a value given twice is drawn twice as often).

    >>> cfg = TrainConfig(bank_policies=("fifo", "sis"), bank_memory_pools=(1, 4))
    >>> draw_bank(cfg, 3) == draw_bank(cfg, 3) and draw_bank(cfg, 3)[2] in (1, 4)
    True
    """
    rng = np.random.default_rng([cfg.seed, step, 3])
    policy = cfg.bank_policies[int(rng.integers(len(cfg.bank_policies)))]
    capacity = int(rng.integers(cfg.bank_capacities[0], cfg.bank_capacities[1] + 1))
    pools = cfg.bank_memory_pools
    return policy, capacity, pools[int(rng.integers(len(pools)))] if len(pools) > 1 else pools[0]


def _optimizer(model, cfg: TrainConfig):
    """AdamW over the ``trainable`` parameters (the others are frozen); no weight decay on
    biases and norms; the image encoder at ``image_encoder_lr_scale``."""
    import torch

    groups = {}
    for name, param in model.named_parameters():
        if cfg.trainable and not name.startswith(cfg.trainable):
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        scale = cfg.image_encoder_lr_scale if name.startswith("image_encoder.") else 1.0
        decay = cfg.weight_decay if param.ndim > 1 else 0.0
        groups.setdefault((scale, decay), []).append(param)
    return torch.optim.AdamW(
        [{"params": p, "lr_scale": scale, "weight_decay": decay} for (scale, decay), p in groups.items()],
        lr=cfg.lr, betas=(0.9, 0.999),
    )


def loss_function():
    """sam2's training loss with the sam2.1 recipe's weights (:data:`LOSS_WEIGHTS`)."""
    from training.loss_fns import MultiStepMultiMasksAndIous

    return MultiStepMultiMasksAndIous(
        weight_dict=dict(LOSS_WEIGHTS), supervise_all_iou=True, iou_use_l1_loss=True,
        pred_obj_scores=True, focal_gamma_obj_score=0.0, focal_alpha_obj_score=-1.0,
    )


def _mean_iou(outputs, masks) -> float:
    """Mean IoU of the final masks over (frame, object) pairs where the object is visible."""
    ious = []
    for frame_out, gt in zip(outputs, masks):
        pred = frame_out["pred_masks_high_res"][:, 0] > 0
        present = gt.flatten(1).any(1)
        inter = (pred & gt).flatten(1).sum(1).float()
        union = (pred | gt).flatten(1).sum(1).float().clamp(min=1)
        ious.extend((inter / union)[present].tolist())
    return float(np.mean(ious)) if ious else float("nan")


def generated_batch(cfg: TrainConfig, step: int, image_size: int):
    """The batch of ``step`` from the scene generators (image or video, see :func:`step_kind`)."""
    if step_kind(cfg, step) == "image":
        return image_batch(cfg.seed, step, cfg.image_batch, image_size, cfg.recolor, cfg.small_objects,
                           cfg.large_objects, cfg.clutter)
    return video_batch(cfg.seed, step, cfg.video_batch, image_size, *cfg.video_frames, recolor=cfg.recolor,
                       small=cfg.small_objects, large=cfg.large_objects, absent=cfg.absent_targets,
                       clutter=cfg.clutter)


class _StepBatches:
    """The batches of steps ``start``, ``start + 1``, ... as a dataset, for worker processes."""

    def __init__(self, batches, cfg: TrainConfig, start: int, image_size: int):
        self.batches, self.cfg, self.start, self.image_size = batches, cfg, start, image_size

    def __len__(self) -> int:
        return self.cfg.steps - self.start

    def __getitem__(self, index: int):
        try:
            return self.batches(self.cfg, self.start + index, self.image_size)
        except UserInputError as exc:  # from a worker, it would arrive wrapped in its traceback
            return _Refused(str(exc))


class _Refused:
    """A batch that could not be made, and the user's error that says why."""

    def __init__(self, message: str):
        self.message = message


def _as_is(batch):
    return batch


def _checked(batch):
    if isinstance(batch, _Refused):
        raise UserInputError(batch.message)
    return batch


def step_batches(batches, cfg: TrainConfig, start: int, image_size: int, workers: int = 0):
    """The batches of steps ``start`` to ``cfg.steps - 1`` in order; with ``workers`` > 0 made by
    that many processes ahead of the model (every batch is a function of seed and step, so the
    run is the same either way). The workers start with the first batch asked for; close the
    batches when done with them (``contextlib.closing``) to end the workers at once.

    >>> cfg = TrainConfig(steps=3, image_batch=1, video_batch=1)
    >>> [b.img_batch.shape[1] for b in step_batches(generated_batch, cfg, 1, 64)]
    [1, 1]
    """
    dataset = _StepBatches(batches, cfg, start, image_size)
    if workers == 0:
        return (_checked(dataset[i]) for i in range(len(dataset)))
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is, prefetch_factor=2,
                        worker_init_fn=_leave_signals_to_the_main_process)
    return _loaded(loader)


def _loaded(loader):
    """The workers' batches, checked; the workers are shut down as soon as the batches end, fail
    or are closed (each finishes the batch it is making). They ignore SIGTERM, so workers still
    running at interpreter exit would hang it: the exit ends its children with SIGTERM."""
    batches = iter(loader)  # forks the workers
    try:
        for batch in batches:
            yield _checked(batch)
    finally:
        batches._shutdown_workers()  # what the iterator's __del__ does, but now, not at some later GC


def _leave_signals_to_the_main_process(worker_id: int) -> None:
    """A worker ignores SIGINT/SIGTERM, which a Ctrl-C sends to the whole process group: a
    forked worker holds a copy of the run's stop handler, so it would warn on its own and die
    of a second signal, failing the run's next batch, instead of leaving the stop to the main
    process, which shuts the workers down (:func:`_loaded`)."""
    from mixqsam2.runtime.stopping import StopOnSignal

    for signum in StopOnSignal.SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _missed_share(outputs, masks) -> float:
    """Share of the (frame, object) pairs whose object is in the ground truth but was scored
    absent by the object-score head in any of the frame's prediction steps (the first and
    sam2's correction clicks), NaN when no object is. sam2 fills such a step's mask with
    constant -1024 logits (``NO_OBJ_SCORE``): its focal loss is hundreds of times the usual and
    carries no gradient, so these frames make the spikes of the loss curve."""
    import torch

    missed = present = 0
    for frame_out, gt in zip(outputs, masks):
        visible = gt.flatten(1).any(1)
        steps = torch.stack([s[:, 0] for s in frame_out["multistep_object_score_logits"]])
        scored_absent = (steps <= 0).any(0)  # sam2's gate: shown where the score is > 0
        missed += int((visible & scored_absent).sum())
        present += int(visible.sum())
    return missed / present if present else float("nan")


def step_forward(model, loss_fn, cfg: TrainConfig, step: int, batch) -> tuple[dict, dict]:
    """Step ``step``'s forward pass on its batch as training runs it (the step's bank policy,
    capacity and memory pool, dropout and prompt draws): ``(losses, record)``, sam2's losses with their graph
    and the step's record for the history, less what the optimizer adds."""
    import torch

    kind = step_kind(cfg, step)
    batch = batch.to(model.device)
    record = {"step": step, "kind": kind}
    if cfg.bank_policies and kind == "video":
        from mixqsam2.memory.synthesis import RULES

        policy, model.bank_capacity, model.bank_memory_pool = draw_bank(cfg, step)
        model.bank_rule = RULES[policy]
        record.update(policy=policy, capacity=model.bank_capacity, pool=model.bank_memory_pool)
    torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout (sam2's memory attention; not the banked graph)
    model.rng = np.random.default_rng([cfg.seed, step, 2])  # SAM2Train's prompt sampler
    outputs = model(batch)
    losses = loss_fn(outputs, batch.masks)
    record.update(loss=float(losses["core_loss"].detach()), iou=_mean_iou(outputs, batch.masks),
                  missed=_missed_share(outputs, batch.masks))
    record.update({k: float(v.detach()) for k, v in losses.items() if k in LOSS_WEIGHTS})
    return losses, record


def train_step(model, loss_fn, optimizer, cfg: TrainConfig, step: int, batch) -> dict:
    """One optimizer step of step ``step`` on its batch; returns its record for the history."""
    import torch

    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
    losses, record = step_forward(model, loss_fn, cfg, step, batch)
    optimizer.zero_grad(set_to_none=True)
    losses["core_loss"].backward()
    finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
    if finite:  # a non-finite step is logged and skipped, never applied
        optimizer.step()
    record["skipped"] = not finite
    return record


def recent_summary(recent: list[dict]) -> dict[str, str]:
    """What the progress bar and the end-of-run line show of the ``recent`` steps: the median
    loss (a mean follows the few steps with a target scored absent, see :func:`_missed_share`),
    the mean IoU and the share of present targets scored absent (runs from before 2026-12-06
    did not record it).

    >>> recent_summary([{"loss": 1.0, "iou": 0.5, "missed": 0.0}, {"loss": 900.0, "iou": 0.3, "missed": 0.5},
    ...                 {"loss": 2.0, "iou": 0.4}])
    {'loss': '2.000', 'iou': '0.400', 'missed': '0.250'}
    """
    with warnings.catch_warnings():  # all NaN (no target present, or not recorded) prints nan
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"loss": f"{np.nanmedian([r['loss'] for r in recent]):.3f}",
                "iou": f"{np.nanmean([r['iou'] for r in recent]):.3f}",
                "missed": f"{np.nanmean([r.get('missed', np.nan) for r in recent]):.3f}"}


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def _save(model, optimizer, cfg: TrainConfig, history: list, seconds: float, out: Path) -> None:
    import torch

    from mixqsam2.models import save_checkpoint

    buf = io.BytesIO()
    state = {"config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": history, "seconds": seconds}
    torch.save(state, buf)
    write_bytes_atomic(_state_path(out), buf.getvalue())
    save_checkpoint(model, out, half=cfg.save_half)


def saved_config(saved: dict) -> dict:
    """A run's saved settings with the fields added since it started at their defaults (a new
    field's default is the behaviour from before it existed), so an older run still resumes;
    a run from before pools were drawn per step keeps its one pool.

    >>> saved_config({"seed": 0})["bank_policies"]
    ()
    >>> saved_config({"bank_memory_pool": 4})["bank_memory_pools"]
    (4,)
    """
    if "bank_memory_pool" in saved:
        saved = {**saved, "bank_memory_pools": (int(saved["bank_memory_pool"]),)}
    return {f.name: saved.get(f.name, f.default) for f in fields(TrainConfig)}


def _read_state(out: Path, why: str) -> tuple[dict, dict, dict, list, float]:
    """The training state saved beside ``out``: (settings, model state, optimizer state,
    history, seconds); a missing or damaged one is the user's error, prefixed with ``why``."""
    import torch

    path = _state_path(out)
    if not path.is_file():
        raise UserInputError(f"{why}: no training state at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        return (saved_config(dict(state["config"])), state["model"], state["optimizer"], list(state["history"]),
                float(state["seconds"]))
    except Exception as exc:  # torch raises many types for a damaged file
        raise UserInputError(f"{why}: cannot read the training state {path}: {type(exc).__name__}: {exc}"
                             .splitlines()[0]) from None


def saved_run(out: str | Path) -> tuple[TrainConfig, object, list[dict]]:
    """The run whose state is saved beside ``out``: its settings, its train model with the
    weights saved last, and its history (to replay its steps: :func:`step_forward`)."""
    from mixqsam2.models import load_state_dict_checked

    saved, model_state, _, history, _ = _read_state(Path(out), "cannot replay")
    try:
        cfg = TrainConfig(**saved)
    except ValueError as exc:
        raise UserInputError(f"cannot replay: the run at {_state_path(Path(out))} has bad settings: {exc}") from None
    model = build_train_model(replace(cfg, init_checkpoint=None))  # the saved weights replace the init
    load_state_dict_checked(model, model_state, _state_path(Path(out)))
    return cfg, model, history


def _resume(model, optimizer, cfg: TrainConfig, out: Path) -> tuple[list, float]:
    saved, model_state, optimizer_state, history, seconds = _read_state(out, "--resume")
    if saved != asdict(cfg):
        diff = {k: (saved.get(k), v) for k, v in asdict(cfg).items() if saved.get(k) != v}
        raise UserInputError(f"--resume: the run at {_state_path(out)} used other settings (saved, now): {diff}")
    model.load_state_dict(model_state)
    optimizer.load_state_dict(optimizer_state)  # after _optimizer: the same (trainable) groups
    return history, seconds


def check_checkpoint_out(out: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Refuse an ``out`` that would replace the user's files unasked: a folder, the checkpoint
    the run starts from, or (without ``resume`` or ``overwrite``) an existing checkpoint or run state.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "mine.pt"; _ = out.write_bytes(b"weights")
    >>> check_checkpoint_out(out, TrainConfig(), resume=False, overwrite=False)
    Traceback (most recent call last):
    ...
    mixqsam2.errors.UserInputError: --out .../mine.pt exists (give --resume to continue its run or --overwrite to replace it)
    """
    check_output_file(out)
    if cfg.init_checkpoint and Path(cfg.init_checkpoint).resolve() == out.resolve():
        raise UserInputError(f"--out {out} is the checkpoint the run starts from; write to another file")
    existing = [p for p in (out, _state_path(out)) if p.exists()]
    if existing and not (resume or overwrite):
        raise UserInputError(f"--out {existing[0]} exists (give --resume to continue its run or --overwrite to "
                             "replace it)")


def train(cfg: TrainConfig, out: str | Path, minutes: float | None = None, resume: bool = False,
          save_every: int = 50, device: str = "cpu", batches=None, workers: int = 0,
          overwrite: bool = False) -> list[dict]:
    """Train (or resume) until ``cfg.steps`` or ``minutes`` of wall time; returns the history.
    Batches come from ``batches(cfg, step, image_size)`` (default: the scene generators, or
    :class:`VideoFolderClips` of ``cfg.videos`` when it is set), made by ``workers`` processes
    ahead of the model when ``workers`` > 0. An existing ``out`` is refused unless ``resume``
    or ``overwrite`` (:func:`check_checkpoint_out`). SIGINT/SIGTERM stop the run after the
    current step with its state saved, as ``minutes`` does (``resume`` continues it); a second
    one aborts at once (:class:`~mixqsam2.runtime.stopping.StreamAborted`; with ``workers``,
    once each has finished the batch it is making), keeping the state saved last."""
    import torch
    from tqdm import tqdm

    from mixqsam2.runtime.stopping import StopOnSignal
    from mixqsam2.train.report import plot_curve

    out = Path(out)
    check_checkpoint_out(out, cfg, resume, overwrite)
    model = build_train_model(cfg).to(device)
    optimizer = _optimizer(model, cfg)
    loss_fn = loss_function()
    if batches is None:
        batches = VideoFolderClips(cfg.videos, cfg.video_frames) if cfg.videos else generated_batch
    history, seconds = _resume(model, optimizer, cfg, out) if resume else ([], 0.0)
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    start_step, started = len(history), time.monotonic()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, desc=f"train {cfg.model}", unit="step")
    last = time.monotonic()
    ordered = step_batches(batches, cfg, start_step, model.image_size, workers)
    with StopOnSignal(unit="step") as stop, closing(ordered):  # closed: the workers end with the run
        for step, batch in zip(bar, ordered):
            history.append(train_step(model, loss_fn, optimizer, cfg, step, batch))
            # wall time since the last step ended: waiting for the batch, and any checkpoint save, included
            now = time.monotonic()
            history[-1]["wall"], last = now - last, now
            recent = history[-50:]
            bar.set_postfix(**recent_summary(recent))
            done = step + 1 == cfg.steps or time.monotonic() > deadline or stop.received is not None
            if done or (step + 1) % save_every == 0:
                with torch.no_grad():
                    _save(model, optimizer, cfg, history, seconds + time.monotonic() - started, out)
            if done:
                break
    if stop.received is not None:
        tqdm.write(f"stopped after step {len(history)}: the run's state is saved; add --resume to continue",
                   file=sys.stderr)
    plot_curve(history, out.with_name(out.name + ".curve.png"))
    return history
