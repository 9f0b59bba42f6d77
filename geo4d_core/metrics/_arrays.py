"""Small shared helpers for the metrics: conversion to numpy and the reduction modes."""

from __future__ import annotations

from typing import Literal

import numpy as np

Reduction = Literal["pixels", "frames", "none"]


def to_numpy(x) -> np.ndarray:
    """Return `x` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def reduce_per_image(
    err_sum: np.ndarray, count: np.ndarray, reduction: Reduction
) -> float | np.ndarray:
    """Reduce per-image sums and valid-pixel counts (shape (...)) to the requested form.

    pixels: pooled over every valid pixel; frames: mean of per-image values over images that have valid
    pixels; none: per-image values (NaN where an image has no valid pixel).
    """
    if reduction == "pixels":
        total = count.sum()
        return float(err_sum.sum() / total) if total > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_image = np.where(count > 0, err_sum / np.maximum(count, 1), np.nan)
    if reduction == "none":
        return per_image
    if reduction == "frames":
        finite = ~np.isnan(per_image)
        return float(per_image[finite].mean()) if finite.any() else float("nan")
    raise ValueError(f"reduction must be 'pixels', 'frames' or 'none', got {reduction!r}")
