"""Image montages of several cameras, for reports and documentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def camera_montage(images: Sequence[np.ndarray], names: Sequence[str] | None = None, *, columns: int = 4) -> np.ndarray:
    """Tile (H, W, 3) uint8 images of equal size in a grid, `columns` wide, with optional name labels.

    Returns an RGB uint8 image; empty grid cells are black.
    """
    import cv2

    if not images:
        raise ValueError("camera_montage needs at least one image")
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    out = np.zeros((rows * h, min(columns, len(images)) * w, 3), np.uint8)
    for k, img in enumerate(images):
        if img.shape[:2] != (h, w):
            raise ValueError(f"image {k} has size {img.shape[:2]}, expected {(h, w)}")
        tile = np.ascontiguousarray(img[..., :3])
        if names is not None:
            cv2.putText(tile, names[k], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
            cv2.putText(tile, names[k], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        r, c = divmod(k, columns)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return out
