"""RGB image fidelity: PSNR."""

from __future__ import annotations

from typing import Literal

import numpy as np

from geo4d_core.metrics._arrays import to_numpy


def psnr(
    pred,
    gt,
    *,
    data_range: float | None = None,
    reduction: Literal["frames", "none"] = "frames",
) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, computed per image and averaged over images.

    Args:
        pred, gt: (..., H, W, C) images of the same shape and units. uint8 images use data_range 255.
        data_range: max - min of the value range (255 for uint8, 2.0 for model images in [-1, 1],
            1.0 for [0, 1]); required for float inputs.
        reduction: "frames" (mean of the per-image PSNRs) or "none" (per-image array).
    Returns:
        PSNR; +inf for identical images (a mean including +inf is +inf).
    """
    pred_np, gt_np = to_numpy(pred), to_numpy(gt)
    if pred_np.shape != gt_np.shape:
        raise ValueError(f"pred shape {pred_np.shape} != gt shape {gt_np.shape}")
    if pred_np.ndim < 3:
        raise ValueError(f"images must be (..., H, W, C), got shape {pred_np.shape}")
    if data_range is None:
        if pred_np.dtype == np.uint8 and gt_np.dtype == np.uint8:
            data_range = 255.0
        else:
            raise ValueError(
                f"psnr: data_range is required for {pred_np.dtype}/{gt_np.dtype} images "
                "(255 for uint8, 2.0 for [-1, 1], 1.0 for [0, 1])"
            )
    if data_range <= 0:
        raise ValueError(f"psnr: data_range must be > 0, got {data_range}")
    diff = pred_np.astype(np.float64) - gt_np.astype(np.float64)
    mse = np.mean(diff * diff, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(float(data_range) ** 2 / mse)
    if reduction == "none":
        return per_image
    if reduction == "frames":
        return float(np.mean(per_image))
    raise ValueError(f"reduction must be 'frames' or 'none', got {reduction!r}")
