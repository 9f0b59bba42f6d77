"""How well a posed object model agrees with an observed (or predicted) depth image.

Conventions (DESIGN.md §3): metres; OpenCV camera frame C; depth is metres along the optical axis,
0 (or non-finite) = invalid; `X_CG` is the pose of the object frame G in camera C (p_C = X_CG @ p_G).
"""

from __future__ import annotations

import math

import numpy as np

from geo4d_core.geometry.pointmap import transform_points
from geo4d_core.geometry.projection import splat_to_depth

__all__ = ["depth_agreement_score"]


def depth_agreement_score(
    model_points_G: np.ndarray,
    X_CG: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    tolerance: float = 0.01,
) -> float:
    """Fraction of the object's rendered pixels where the observed depth confirms the rendered depth.

    The model points are moved into the camera (p_C = X_CG @ p_G) and z-buffer rendered with
    `splat_to_depth` (nearest point per pixel). Over the *covered* pixels (those the rendering hits
    inside the image) the score is

        #{covered pixels with valid observed depth and |rendered - observed| < tolerance} / #{covered}

    so 1 means every visible model point sits on the observed surface, and 0 means none does, or that
    nothing of the model lands in the image. Covered pixels with missing depth, with something in front
    of the object (occlusion) or with the surface behind it all count against the pose. Model points
    that fall outside the image are ignored (they neither help nor hurt). Sparse model points (e.g. mesh
    vertices) are fine: only the pixels they hit are compared; a back-side point that shows through a
    gap between front-side points compares against the front surface and lowers the score a little.

    Args:
        model_points_G: (N, 3) model points in the object frame G, metres.
        X_CG: (4, 4) pose of G in camera C, metres.
        depth: (H, W) observed depth, metres, 0 or non-finite = invalid.
        K: (3, 3) intrinsics of camera C, pixels.
        tolerance: largest |rendered - observed| depth difference counted as agreement, metres, > 0.

    Returns:
        Score in [0, 1] (Python float).
    """
    pts = np.asarray(model_points_G, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"model_points_G must have shape (N, 3), got {pts.shape}")
    X = np.asarray(X_CG, dtype=np.float64)
    if X.shape != (4, 4):
        raise ValueError(f"X_CG must have shape (4, 4), got {X.shape}")
    obs = np.asarray(depth)
    if obs.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got {obs.shape}")
    if not np.issubdtype(obs.dtype, np.floating):
        raise ValueError(f"depth must be float metres (0 = invalid), got dtype {obs.dtype}")
    try:
        tol = float(tolerance)
    except (TypeError, ValueError) as err:
        raise ValueError(f"tolerance must be a number of metres, got {tolerance!r}") from err
    if not (math.isfinite(tol) and tol > 0.0):
        raise ValueError(f"tolerance must be finite and > 0 metres, got {tolerance!r}")
    height, width = obs.shape
    if pts.shape[0] == 0 or not np.all(np.isfinite(X)):
        return 0.0
    rendered = splat_to_depth(transform_points(X, pts), K, height, width)
    covered = rendered > 0.0
    n_covered = int(np.count_nonzero(covered))
    if n_covered == 0:
        return 0.0
    valid = np.isfinite(obs) & (obs > 0.0)
    with np.errstate(invalid="ignore"):
        agree = covered & valid & (np.abs(rendered - obs) < tol)
    return float(np.count_nonzero(agree)) / n_covered
