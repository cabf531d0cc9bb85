"""Data: synthetic generators and loaders for COCO, DAVIS-2017 and SA-V layouts."""
