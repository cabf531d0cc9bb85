"""Evaluation: mask IoU, DAVIS J&F, image mIoU with box prompts, and the eval commands."""
