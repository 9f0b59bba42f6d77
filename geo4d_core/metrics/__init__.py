"""Evaluation metrics of the paper's Table 1.

- `abs_rel`, `delta1`: depth accuracy on valid ground-truth pixels (depth in metres).
- `cross_view_miou`: cross-view consistency of a predicted pointmap (gripper mask of view n lifted to 3D
  and projected into view m, bounding-box IoU against view m's gripper mask, averaged over time).
- `psnr`: RGB fidelity in dB.

All functions take numpy arrays (torch tensors are converted) and return Python floats or numpy arrays.
"""

from geo4d_core.metrics.consistency import bbox_iou, cross_view_iou_per_frame, cross_view_miou, mask_bbox
from geo4d_core.metrics.depth import abs_rel, delta1
from geo4d_core.metrics.image import psnr

__all__ = [
    "abs_rel",
    "bbox_iou",
    "cross_view_iou_per_frame",
    "cross_view_miou",
    "delta1",
    "mask_bbox",
    "psnr",
]
