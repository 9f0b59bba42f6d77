"""Cross-view consistency mIoU of the paper's Table 1.

For every time step: the gripper pixels of view n are lifted to 3D with view n's (predicted) pointmap,
transformed into camera m, projected into view m's image, and the bounding box of the projected pixels
is compared with the bounding box of view m's gripper mask by IoU. The mIoU is the mean over time steps.

Boxes are inclusive integer pixel boxes (col_min, row_min, col_max, row_max); a projected point at
continuous pixel position (u, v) falls in pixel (row, col) = (round(v), round(u)) (pixel centres at
integers, DESIGN.md §3). Only projected points inside view m's image count.

Time steps where neither box exists (no gripper in view m and nothing projected into it) carry no
information and are skipped; a box on one side only scores IoU 0.
"""

from __future__ import annotations

import numpy as np

from geo4d_core.geometry import project_points, transform_points
from geo4d_core.metrics._arrays import to_numpy

Box = tuple[int, int, int, int]


def mask_bbox(mask) -> Box | None:
    """Inclusive bounding box (col_min, row_min, col_max, row_max) of a (H, W) bool mask, None if empty."""
    mask = to_numpy(mask).astype(bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def bbox_iou(a: Box | None, b: Box | None) -> float:
    """IoU of two inclusive integer pixel boxes; 0 if exactly one is None, NaN if both are None."""
    if a is None and b is None:
        return float("nan")
    if a is None or b is None:
        return 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def _projected_bbox(points_Cm: np.ndarray, K_m: np.ndarray, height: int, width: int) -> Box | None:
    if points_Cm.shape[0] == 0:
        return None
    uv, _, in_image = project_points(points_Cm, K_m, height, width)
    uv = uv[in_image]
    if uv.shape[0] == 0:
        return None
    cols = np.floor(uv[:, 0] + 0.5).astype(np.int64)
    rows = np.floor(uv[:, 1] + 0.5).astype(np.int64)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def cross_view_iou_per_frame(points_Cn, gripper_mask_n, gripper_mask_m, K_m, X_CmCn) -> np.ndarray:
    """Per-time-step bounding-box IoU of view n's gripper projected into view m.

    Args:
        points_Cn: (T, H, W, 3) view n's pointmap in camera n's frame, metres (e.g. predicted).
            Pixels with non-finite points or z <= 0 are ignored.
        gripper_mask_n: (T, H, W) bool gripper pixels of view n.
        gripper_mask_m: (T, Hm, Wm) bool gripper pixels of view m (the reference to compare against).
        K_m: (3, 3) intrinsics of camera m, pixels.
        X_CmCn: (4, 4) pose of camera n in camera m's frame (= inv(X_WCm) @ X_WCn), metres.
    Returns:
        (T,) IoU per time step; NaN where both boxes are empty.
    """
    points = to_numpy(points_Cn)
    mask_n = to_numpy(gripper_mask_n).astype(bool)
    mask_m = to_numpy(gripper_mask_m).astype(bool)
    K_m = to_numpy(K_m).astype(np.float64)
    X_CmCn = to_numpy(X_CmCn).astype(np.float64)
    if points.ndim != 4 or points.shape[-1] != 3:
        raise ValueError(f"points_Cn must be (T, H, W, 3), got {points.shape}")
    if mask_n.shape != points.shape[:3]:
        raise ValueError(f"gripper_mask_n shape {mask_n.shape} != pointmap shape {points.shape[:3]}")
    if mask_m.ndim != 3 or mask_m.shape[0] != points.shape[0]:
        raise ValueError(f"gripper_mask_m must be (T, Hm, Wm) with T={points.shape[0]}, got {mask_m.shape}")
    if K_m.shape != (3, 3) or X_CmCn.shape != (4, 4):
        raise ValueError(f"K_m must be (3, 3) and X_CmCn (4, 4), got {K_m.shape} and {X_CmCn.shape}")
    height_m, width_m = mask_m.shape[1:]
    finite = np.isfinite(points).all(axis=-1) & (np.nan_to_num(points[..., 2]) > 0)
    ious = np.empty(points.shape[0])
    for t in range(points.shape[0]):  # one vectorised projection per time step
        p_Cn = points[t][mask_n[t] & finite[t]].astype(np.float64)
        p_Cm = transform_points(X_CmCn, p_Cn)
        ious[t] = bbox_iou(_projected_bbox(p_Cm, K_m, height_m, width_m), mask_bbox(mask_m[t]))
    return ious


def cross_view_miou(points_Cn, gripper_mask_n, gripper_mask_m, K_m, X_CmCn) -> float:
    """Mean over time steps of `cross_view_iou_per_frame` (skipping steps where both boxes are empty).

    1.0 means view n's predicted gripper geometry lands exactly on view m's gripper in every step.
    Returns NaN when no time step has a box on either side.
    """
    ious = cross_view_iou_per_frame(points_Cn, gripper_mask_n, gripper_mask_m, K_m, X_CmCn)
    counted = ~np.isnan(ious)
    return float(ious[counted].mean()) if counted.any() else float("nan")
