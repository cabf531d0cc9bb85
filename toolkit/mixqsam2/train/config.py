"""The settings that define a pico training run (no heavy imports: the CLI reads the defaults).

>>> TrainConfig(steps=10).steps
10
>>> PICO_V2.bank_policies
('fifo', 'prune', 'sis', 'sis-pair')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """What defines a run; a resumed run must have the same config."""

    seed: int = 0
    steps: int = 4000
    image_only_fraction: float = 0.3  # SAM (image) steps only at first, as sam2 trains SAM before video
    image_batch: int = 6
    video_batch: int = 3
    lr: float = 1e-3
    # sam2's recipes give the vision backbone its own, lower rate. Here it also keeps the image
    # features small next to the prompt encoder's positional encoding: at the full rate they grew
    # to ~14x its scale within 900 steps and the decoder ignored the prompts (IoU stuck < 0.08)
    image_encoder_lr_scale: float = 0.1
    warmup_steps: int = 150
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    model: str = "pico"
    embed: int = 32  # pico's trunk width (pico.yaml: 32; wider: mixqsam2.models.pico_overrides)
    recolor: float = 0.0  # share of generated images/clips seen in other colours (train.data.Recolor)
    small_objects: float = 0.0  # share of generated images/clips with smaller objects (train.data.object_scale)
    large_objects: float = 0.0  # share of the others with larger objects (up to about the frame's height)
    absent_targets: float = 0.0  # share of clips where a target vanishes for a stretch (train.data.hidden_stretch)
    clutter: float = 0.0  # share of images/clips with other objects on the background (train.data.clutter_count)
    video_frames: tuple[int, int] = (4, 8)  # clip length range of video steps
    # after the image-only steps, every video_every-th step is a video step (2: alternating); a
    # video step costs ~4x an image step on CPU, so a larger value trains the image path on
    # more images per hour
    video_every: int = 2
    # merge-aware training (mixqsam2.train.banked): each video step draws a bank policy and a
    # capacity; empty = sam2's own memory (the last num_maskmem - 1 frames)
    bank_policies: tuple[str, ...] = ()
    bank_capacities: tuple[int, int] = (2, 6)
    # memory attention reads the older bank memories B x B pooled (graphs.MemoryAttentionGraph);
    # each video step draws B from these (1: whole, sam2's read)
    bank_memory_pools: tuple[int, ...] = (1,)
    init_checkpoint: str | None = None  # start from these weights (sam2 format) instead of a seeded init
    videos: str | None = None  # a DAVIS/SA-V folder: video steps only, clips from these videos
    trainable: tuple[str, ...] = ()  # parameter name prefixes to train (empty: all)
    save_half: bool = True  # fp16 checkpoint (pico ships so); fine-tunes keep fp32

    def __post_init__(self):
        if not (isinstance(self.video_every, int) and self.video_every >= 1):
            raise ValueError(f"video_every must be a whole number >= 1, got {self.video_every!r}")
        if not self.bank_memory_pools or any(not (isinstance(b, int) and b >= 1) for b in self.bank_memory_pools):
            raise ValueError(f"bank_memory_pools must be whole numbers >= 1, got {self.bank_memory_pools!r}")


# pico v2: longer clips seen through a moving camera, the bank policy in the loop
PICO_V2 = TrainConfig(
    steps=4000, image_only_fraction=0.0, video_batch=2, video_frames=(12, 20), lr=3e-4, warmup_steps=100,
    bank_policies=("fifo", "prune", "sis", "sis-pair"), bank_capacities=(2, 6),
)
TRAIN_PRESETS = {"v1": TrainConfig(), "v2": PICO_V2}

# what `mixqsam2 finetune` trains: the memory path and the object-pointer heads; the image
# encoder, prompt encoder and mask decoder keep their weights
MEMORY_MODULES = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_embed", "no_mem_pos_enc",
                  "no_obj_embed_spatial", "obj_ptr_proj.", "obj_ptr_tpos_proj.", "no_obj_ptr", "mask_downsample.")
