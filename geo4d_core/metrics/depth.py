"""Depth accuracy metrics: AbsRel and δ1 on valid ground-truth pixels.

Depth images are (..., H, W) float arrays in metres with 0 meaning "no measurement". A pixel counts
when the ground truth is finite and > 0 (and the optional `valid` mask is true). A prediction that is
not finite or not > 0 on a counted pixel is scored as a total miss (AbsRel term 1, δ1 failure) rather
than dropped, so an invalid prediction can never improve a score.
"""

from __future__ import annotations

import numpy as np

from geo4d_core.metrics._arrays import Reduction, reduce_per_image, to_numpy


def _prepare(pred_depth, gt_depth, valid):
    pred = to_numpy(pred_depth).astype(np.float64)
    gt = to_numpy(gt_depth).astype(np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"pred_depth shape {pred.shape} != gt_depth shape {gt.shape}")
    if pred.ndim < 2:
        raise ValueError(f"depth images must be (..., H, W), got shape {pred.shape}")
    counted = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        valid = to_numpy(valid).astype(bool)
        if valid.shape != gt.shape:
            raise ValueError(f"valid mask shape {valid.shape} != depth shape {gt.shape}")
        counted &= valid
    pred_ok = np.isfinite(pred) & (pred > 0)
    return pred, gt, counted, pred_ok


def abs_rel(pred_depth, gt_depth, valid=None, *, reduction: Reduction = "frames") -> float | np.ndarray:
    """Absolute relative depth error mean(|d_pred - d_gt| / d_gt) over counted pixels.

    Args:
        pred_depth: (..., H, W) predicted depth in metres (e.g. the z channel of a predicted pointmap).
        gt_depth: (..., H, W) ground-truth depth in metres, 0 = invalid.
        valid: optional (..., H, W) bool mask restricting the evaluated pixels.
        reduction: "frames" (mean over images of per-image AbsRel, the default), "pixels" (pooled over
            all counted pixels) or "none" (per-image array with NaN for images without counted pixels).
    Returns:
        AbsRel (0 is perfect); NaN when no pixel is counted.
    """
    pred, gt, counted, pred_ok = _prepare(pred_depth, gt_depth, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(pred_ok, np.abs(pred - gt) / np.where(counted, gt, 1.0), 1.0)
    err = np.where(counted, err, 0.0)
    return reduce_per_image(err.sum(axis=(-2, -1)), counted.sum(axis=(-2, -1)), reduction)


def delta1(
    pred_depth, gt_depth, valid=None, *, threshold: float = 1.25, reduction: Reduction = "frames"
) -> float | np.ndarray:
    """Fraction of counted pixels with max(d_pred/d_gt, d_gt/d_pred) < threshold (1.25 for δ1).

    Arguments as in `abs_rel`. Returns a value in [0, 1] (1 is perfect); NaN when no pixel is counted.
    """
    pred, gt, counted, pred_ok = _prepare(pred_depth, gt_depth, valid)
    safe_pred = np.where(pred_ok, pred, 1.0)
    safe_gt = np.where(counted, gt, 1.0)
    ratio = np.maximum(safe_pred / safe_gt, safe_gt / safe_pred)
    hit = counted & pred_ok & (ratio < threshold)
    return reduce_per_image(
        hit.sum(axis=(-2, -1)).astype(np.float64), counted.sum(axis=(-2, -1)), reduction
    )
