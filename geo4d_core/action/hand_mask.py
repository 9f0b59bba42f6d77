"""Hand masks from the robot's own state: the hand model drawn at its known pose into camera n.

On the robot the current end-effector pose is known (joint states + forward kinematics, mapped into camera
n with its extrinsic), so the first-frame hand mask the tracker registers on needs no segmentation model:
project the hand's surface samples, keep the pixels whose observed depth agrees with the projected depth
(the hand is visible there, not occluded), and dilate a little. SAM2 (`geo4d_core.action.sam2`) remains
the option for cameras whose extrinsic is unknown.
"""

from __future__ import annotations

import cv2
import numpy as np

from geo4d_core.action.hand import HandModel
from geo4d_core.geometry.projection import project_points

__all__ = ["project_hand_mask", "MASK_DEPTH_TOLERANCE", "MASK_DILATE_PX"]

# Defaults of the visibility test and the growth of the mask. No growth: at 128x160 even 2 px took in the arm's
# flange above the hand, and a registration seeded with the exact pose slid 16 mm / 14 deg off it
# (0.6 mm / 0.7 deg without).
MASK_DEPTH_TOLERANCE = 0.02  # metres
MASK_DILATE_PX = 0  # pixels


def project_hand_mask(model: HandModel, X_CG: np.ndarray, K: np.ndarray, depth: np.ndarray, *,
                      opening: float = 0.08, depth_tolerance: float = MASK_DEPTH_TOLERANCE,
                      dilate_px: int = MASK_DILATE_PX) -> np.ndarray:
    """(H, W) bool mask of the pixels of camera C that see the hand at pose X_CG.

    Args:
        model: hand surface samples (hand frame G, metres).
        X_CG: (4, 4) hand pose in the camera frame (OpenCV axes), metres.
        K: (3, 3) intrinsics of the depth image, pixels.
        depth: (H, W) observed depth, metres, 0 = invalid.
        opening: finger opening, metres (fingers are included when the model has them).
        depth_tolerance: a projected point counts as visible when |observed - projected depth| <= this, metres.
        dilate_px: grow the mask by this many pixels (fills gaps between surface samples).
    """
    depth = np.asarray(depth, dtype=np.float32)
    H, W = depth.shape
    pts_G, _ = model.gripper_points(opening)
    X = np.asarray(X_CG, dtype=np.float64)
    p_C = pts_G @ X[:3, :3].T + X[:3, 3]
    uv, z, inside = project_points(p_C, np.asarray(K, dtype=np.float64), H, W)
    u = np.rint(uv[inside, 0]).astype(np.intp)
    v = np.rint(uv[inside, 1]).astype(np.intp)
    d = depth[v, u]
    seen = (d > 0) & (np.abs(d - z[inside]) <= depth_tolerance)
    mask = np.zeros((H, W), np.uint8)
    mask[v[seen], u[seen]] = 1
    if dilate_px > 0:
        k = 2 * dilate_px + 1
        mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
        mask &= (depth > 0).astype(np.uint8)
    return mask.astype(bool)
