"""NVIDIA ModelOpt's ``auto_quantize`` on SAM2, as the peer baseline for our calibration stage.

Same candidate formats (int8: per-channel weights + per-tensor activations; int4: weight-only
blocks of ``block_size`` along the input), same budget in effective bits, same calibration
data (images with GT-box prompts, video clips with a first-frame mask prompt), and a loss
against ground truth (binary cross-entropy + dice on the high-resolution mask logits; a
loss against the model's own output gives ModelOpt zero gradient scores). ModelOpt searches
every Linear/Conv2d it finds; the prompt encoder, the pointer heads and the transposed convs
are disabled so that it searches the same layers we allocate. ModelOpt may give a conv int4
weights, which TensorRT cannot run: such layers are counted in ``non_deployable_layers``.

Used by ``benchmarks/mixed_precision.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixqsam2.models.preprocess import preprocess_frame

DISABLED = ["*sam_prompt_encoder*", "*obj_ptr_proj*", "*obj_ptr_tpos_proj*", "*output_upscaling*", "*mask_downsample*",
            "*no_mem*"]


def _square(mask: np.ndarray, size: int) -> torch.Tensor:
    import cv2

    return torch.from_numpy(cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0)


def batches(images, videos, image_size: int, max_frames: int = 8) -> list[dict]:
    """The calibration sets as ModelOpt batches (tensors at the model's square input)."""
    out = []
    for sample in images:
        if not sample.boxes:
            continue
        rgb = sample.rgb()
        h, w = rgb.shape[:2]
        scale = torch.tensor([image_size / w, image_size / h] * 2)
        ids = list(sample.boxes)
        out.append({
            "kind": "image",
            "image": torch.from_numpy(preprocess_frame(rgb, image_size))[None],
            "boxes": torch.stack([torch.tensor(sample.boxes[k], dtype=torch.float32) * scale for k in ids]),
            "masks": torch.stack([_square(sample.masks[k], image_size) for k in ids]).float(),
        })
    for video in videos:
        frames = [rgb for _, rgb in zip(range(max_frames), video.frames())]
        first = min(video.prompt_masks())
        truth = [video.annotation(n) or {} for n in video.frame_names[: len(frames)]]
        out.append({
            "kind": "video",
            "frames": torch.from_numpy(np.stack([preprocess_frame(f, image_size) for f in frames])),
            "masks": torch.stack([_square(t.get(first, np.zeros(frames[0].shape[:2], bool)), image_size)
                                  for t in truth]).float(),
        })
    return out


def forward_step(model, batch) -> torch.Tensor:
    """High-resolution mask logits: per object (images, box prompts) or per frame after the
    prompt (videos: sam2's own ``track_step`` with memory attention and the memory encoder)."""
    if batch["kind"] == "image":
        _, feats, _, sizes = model._prepare_backbone_features(model.forward_image(batch["image"]))
        pix = (feats[-1] + model.no_mem_embed).permute(1, 2, 0).view(1, model.hidden_dim, *sizes[-1])
        high_res = [x.permute(1, 2, 0).view(1, x.size(2), *s) for x, s in zip(feats[:-1], sizes[:-1])]
        logits = []
        for box in batch["boxes"]:
            points = {"point_coords": box.view(1, 2, 2), "point_labels": torch.tensor([[2, 3]])}
            logits.append(model._forward_sam_heads(pix, point_inputs=points, high_res_features=high_res,
                                                   multimask_output=False)[4])
        return torch.cat(logits)[:, 0]
    # videos: frames 0..T-3 build the memory without gradients; frame T-2 is encoded into
    # memory with gradients (memory encoder), frame T-1 is tracked with gradients (memory
    # attention + decoder). ModelOpt's scoring needs each layer called once per backward.
    frames, masks = batch["frames"], batch["masks"]
    num_frames = frames.shape[0]
    _, feats, pos, sizes = model._prepare_backbone_features(model.forward_image(frames))
    output = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}

    def track(t, with_memory_encoder=True):
        out = model.track_step(
            frame_idx=t, is_init_cond_frame=t == 0, current_vision_feats=[x[:, t : t + 1] for x in feats],
            current_vision_pos_embeds=[x[:, t : t + 1] for x in pos], feat_sizes=sizes, point_inputs=None,
            mask_inputs=masks[0][None, None] if t == 0 else None, output_dict=output, num_frames=num_frames,
            run_mem_encoder=with_memory_encoder,
        )
        output["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = out
        return out

    with torch.no_grad():
        for t in range(num_frames - 2):
            track(t)
        before_last = track(num_frames - 2, with_memory_encoder=False)
    features, memory_pos = model._encode_new_memory(
        current_vision_feats=[x[:, num_frames - 2 : num_frames - 1] for x in feats], feat_sizes=sizes,
        pred_masks_high_res=before_last["pred_masks_high_res"], object_score_logits=before_last["object_score_logits"],
        is_mask_from_pts=False,
    )
    before_last["maskmem_features"], before_last["maskmem_pos_enc"] = features, memory_pos
    return track(num_frames - 1, with_memory_encoder=False)["pred_masks_high_res"][0]


def loss_func(logits: torch.Tensor, batch) -> torch.Tensor:
    """BCE + dice against the ground-truth masks."""
    target = batch["masks"] if batch["kind"] == "image" else batch["masks"][-1:]
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits.sigmoid().flatten(1)
    dice = 1 - (2 * (prob * target.flatten(1)).sum(1) + 1) / (prob.sum(1) + target.flatten(1).sum(1) + 1)
    return bce + dice.mean()


def formats(block_size: int) -> list[dict]:
    int8 = {"quant_cfg": [{"quantizer_name": "*", "enable": False},
                          {"quantizer_name": "*weight_quantizer", "cfg": {"num_bits": 8, "axis": 0}},
                          {"quantizer_name": "*input_quantizer", "cfg": {"num_bits": 8, "axis": None}}],
            "algorithm": "max"}
    int4 = {"quant_cfg": [{"quantizer_name": "*", "enable": False},
                          {"quantizer_name": "*weight_quantizer",
                           "cfg": {"num_bits": 4, "block_sizes": {-1: block_size, "type": "static"}}},
                          {"quantizer_name": "*input_quantizer", "enable": False}],
            "algorithm": "max"}
    return [int8, int4]


def layer_bits(module, block_size: int) -> tuple[float, str]:
    """Effective weight bits and format name of a layer as ModelOpt left it."""
    quantizer = getattr(module, "weight_quantizer", None)
    if quantizer is None or not quantizer.is_enabled:
        return 16.0, "fp16"
    bits = quantizer.num_bits
    return (4 + 16 / block_size, "int4") if bits == 4 else (float(bits), f"int{bits}")


def _clone_outputs(module, args, output):
    # sam2 adds the no-object embedding to the memory encoder's output in place; ModelOpt's
    # scoring wraps layer outputs in autograd hooks that forbid that, so hand sam2 a copy
    return {k: v.clone() if torch.is_tensor(v) else [x.clone() for x in v] for k, v in output.items()}


class _ClonedOutput(torch.nn.Module):
    """Holds a layer and returns a copy of its output: sam2's RoPE attention writes into a view
    of ``k_proj``'s output in place, which ModelOpt's autograd hooks forbid. The layer keeps
    its name (``<name>.layer``) for ModelOpt; the math is unchanged."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x).clone()


def _make_scorable(model) -> dict[str, str]:
    """Wrap every RoPE ``k_proj``; returns our layer name -> ModelOpt's layer name."""
    from sam2.modeling.sam.transformer import RoPEAttention

    renamed = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, RoPEAttention):
            module.k_proj = _ClonedOutput(module.k_proj)
            renamed[f"{name}.k_proj"] = f"{name}.k_proj.layer"
    model.memory_encoder.register_forward_hook(_clone_outputs)
    return renamed


def auto_quantize(model, calib_batches: list[dict], budget_bits: float, block_size: int, target_names: list[str]):
    """Run ModelOpt's search; returns (quantized model, summary with our effective-bits accounting)."""
    import modelopt.torch.quantization as mtq

    model.train(False)
    renamed = _make_scorable(model)
    with torch.enable_grad():
        model, _ = mtq.auto_quantize(
            model, constraints={"effective_bits": budget_bits}, quantization_formats=formats(block_size),
            data_loader=calib_batches, forward_step=forward_step, loss_func=loss_func, disabled_layers=DISABLED,
            num_calib_steps=len(calib_batches), num_score_steps=len(calib_batches), verbose=False,
        )
    modules = {name: dict(model.named_modules())[renamed.get(name, name)] for name in target_names}
    params = {n: modules[n].weight.numel() for n in target_names}
    chosen = {n: layer_bits(modules[n], block_size) for n in target_names}
    bits = sum(params[n] * chosen[n][0] for n in target_names) / sum(params.values())
    non_deployable = [n for n in target_names if chosen[n][1] == "int4" and isinstance(modules[n], torch.nn.Conv2d)]
    counts = {f: sum(1 for b, fmt in chosen.values() if fmt == f) for f in ("fp16", "int8", "int4")}
    return model, {"effective_bits": bits, "formats": counts, "non_deployable_layers": len(non_deployable)}
