"""Pinhole projection of camera- or world-frame points to pixels, its inverse, and z-buffer splatting.

Conventions (DESIGN.md §3): metres; OpenCV camera frame (+x right, +y down, +z forward); pixel
(row i, col j) has its centre at (u, v) = (j, i), so pixel j covers u in [j - 0.5, j + 0.5).
`project_points`, `project_world_points` and `unproject_points` accept numpy arrays or torch tensors
(result of the same type); `splat_to_depth` is numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geo4d_core.geometry._backend import Backend, backend_for, is_torch
from geo4d_core.geometry.pointmap import _intrinsics, transform_points
from geo4d_core.geometry.poses import invert_pose

__all__ = ["project_points", "project_world_points", "unproject_points", "splat_to_depth", "fit_projection_matrix",
           "apply_projection_matrix", "decompose_projection_matrix"]

Array = Any  # numpy.ndarray or torch.Tensor


def _k_for_points(K: Array, be: Backend, n_point_dims: int) -> tuple[Array, Array, Array, Array, Array]:
    """Intrinsics (fx, fy, cx, cy, s) in be's dtype, shaped to broadcast with (..., n_point_dims) arrays.

    K (3, 3) applies to every point; K (B, 3, 3) pairs with the first leading dim of the points
    (generally K's leading dims align with the points' leading dims from the left).
    """
    fx, fy, cx, cy, s, _ = _intrinsics(K, be)
    extra = n_point_dims - fx.ndim
    if extra < 0:
        raise ValueError(
            f"K has {fx.ndim} leading dims but the points have only {n_point_dims}; "
            "batched K must pair with the points' leading dims"
        )
    return tuple(be.asarray(a[(...,) + (None,) * extra]) for a in (fx, fy, cx, cy, s))  # type: ignore[return-value]


def project_points(p_C: Array, K: Array, height: int, width: int) -> tuple[Array, Array, Array]:
    """Project camera-frame points to pixel coordinates.

    Args:
        p_C: (..., 3) points in the camera frame (OpenCV axes), metres.
        K: (3, 3) intrinsics in pixels, or (B, 3, 3) pairing with p_C's first leading dim.
        height, width: image size in pixels.

    Returns:
        uv: (..., 2) pixel coordinates (u = column, v = row), float, same dtype as p_C. Points that are
            behind the camera (z <= 0) or non-finite get uv = (0, 0) (finite, never NaN).
        z: (...) depth along the optical axis, metres (a copy of p_C's z, whatever its sign).
        in_image: (...) bool, z > 0 and -0.5 <= u < width - 0.5 and -0.5 <= v < height - 0.5, i.e. the
            point lands inside the image's pixel area.
    """
    be = backend_for(p_C, K, like=p_C)
    p_C = be.asarray(p_C)
    if p_C.ndim < 1 or p_C.shape[-1] != 3:
        raise ValueError(f"p_C must have shape (..., 3), got {tuple(p_C.shape)}")
    fx, fy, cx, cy, s = _k_for_points(K, be, p_C.ndim - 1)
    has_skew = be.any_true(s != 0)
    x, y, z = p_C[..., 0], p_C[..., 1], p_C[..., 2]
    # Only per-channel work: reductions over the size-3 axis are slow in numpy.
    ok = (z > 0) & (z < float("inf"))  # NaN fails both
    if be.is_torch:
        xn, yn = x / z, y / z  # garbage where not ok; masked below
        u = xn * fx + cx
        if has_skew:
            u = u + s * yn
        v = yn * fy + cy
        ok = ok & be.isfinite(u) & be.isfinite(v)  # non-finite x / y, or overflow for tiny z
        uv = be.zero_where_false(be.stack([u, v], axis=-1), ok)
        u, v = uv[..., 0], uv[..., 1]
        z = z.clone()
    else:
        # In place into the output: fresh temporaries cost page faults that dominate at image sizes.
        shape = np.broadcast_shapes(tuple(z.shape), tuple(fx.shape))
        uv = np.empty(shape + (2,), dtype=be.dtype)
        u, v = uv[..., 0], uv[..., 1]
        with np.errstate(all="ignore"):
            np.divide(y, z, out=v)  # y_n
            np.divide(x, z, out=u)  # x_n
            u *= fx
            if has_skew:
                u += s * v
            u += cx
            v *= fy
            v += cy
        ok = ok & np.isfinite(u)
        ok &= np.isfinite(v)
        if not ok.all():
            uv[~ok] = 0.0
        z = z.copy()  # not a view into the caller's points
    in_image = u >= -0.5
    in_image &= u < width - 0.5
    in_image &= v >= -0.5
    in_image &= v < height - 0.5
    in_image &= ok
    return uv, z, in_image


def project_world_points(
    p_W: Array, K: Array, X_WC: Array, height: int, width: int
) -> tuple[Array, Array, Array]:
    """Project world-frame points into a camera with pose X_WC.

    Args:
        p_W: (..., 3) points in the world frame, metres.
        K: (3, 3) intrinsics in pixels (or (B, 3, 3) with batched poses).
        X_WC: (4, 4) camera pose in the world, or (B, 4, 4) pairing with p_W's first dim.
        height, width: image size in pixels.

    Returns:
        uv, z, in_image as in `project_points` (z is the depth in camera C, metres).
    """
    be = backend_for(p_W, K, X_WC, like=p_W)
    p_C = transform_points(invert_pose(be.asarray(X_WC)), be.asarray(p_W))
    return project_points(p_C, K, height, width)


def unproject_points(uv: Array, depth: Array, K: Array) -> Array:
    """Lift pixel coordinates with depth to camera-frame points (inverse of `project_points`).

    Args:
        uv: (..., 2) pixel coordinates (u = column, v = row), float.
        depth: (...) depth along the optical axis, metres.
        K: (3, 3) intrinsics in pixels, or (B, 3, 3) pairing with uv's first leading dim.

    Returns:
        p_C: (..., 3) = depth * K^{-1} [u, v, 1]^T in the camera frame, metres (no validity masking).
    """
    be = backend_for(uv, depth, K, like=uv)
    uv, depth = be.asarray(uv), be.asarray(depth)
    if uv.ndim < 1 or uv.shape[-1] != 2:
        raise ValueError(f"uv must have shape (..., 2), got {tuple(uv.shape)}")
    fx, fy, cx, cy, s = _k_for_points(K, be, uv.ndim - 1)
    yn = (uv[..., 1] - cy) / fy
    xn = (uv[..., 0] - cx - s * yn) / fx
    x, y = xn * depth, yn * depth
    return be.stack([x, y, be.broadcast_to(depth, tuple(x.shape))], axis=-1)


def splat_to_depth(p_C: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Z-buffer rendering of camera-frame points into a depth image (numpy only).

    Each point lands on its nearest pixel (the pixel whose area contains its projection); where several
    points land on one pixel the smallest z wins. Points behind the camera, non-finite or outside the
    image are dropped.

    Args:
        p_C: (..., 3) points in the camera frame, metres (any leading shape; flattened).
        K: (3, 3) intrinsics in pixels.
        height, width: image size in pixels.

    Returns:
        depth: (height, width) metres, dtype of p_C (float64 for non-float input); 0 where no point.
    """
    if is_torch(p_C) or is_torch(K):
        raise TypeError("splat_to_depth is numpy only; convert tensors with .detach().cpu().numpy()")
    p_C = np.asarray(p_C)
    if not np.issubdtype(p_C.dtype, np.floating):
        p_C = p_C.astype(np.float64)
    if np.asarray(K).shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {np.asarray(K).shape}")
    pts = p_C.reshape(-1, 3)
    uv, z, in_image = project_points(pts, K, height, width)
    cols = np.floor(uv[in_image, 0] + 0.5).astype(np.intp)
    rows = np.floor(uv[in_image, 1] + 0.5).astype(np.intp)
    # Guard against rounding at the far edge (u just below width - 0.5 in float32).
    np.clip(cols, 0, width - 1, out=cols)
    np.clip(rows, 0, height - 1, out=rows)
    depth = np.full(height * width, np.inf, dtype=p_C.dtype)
    np.minimum.at(depth, rows * width + cols, z[in_image])
    depth[np.isinf(depth)] = 0.0
    return depth.reshape(height, width)


def fit_projection_matrix(points: np.ndarray, valid: np.ndarray, *, max_points: int = 1000,
                          seed: int = 0) -> tuple[np.ndarray | None, float]:
    """The 3x4 camera matrix P of a pointmap's own pixel grid, by normalised DLT (numpy only).

    A pointmap may be expressed in another camera's frame (view m's points in camera n's frame): P maps
    those points back to the pixels of the view they came from, (u, v, 1) ~ P (x, y, z, 1), so a model
    posed in that frame can be drawn into the view. For a pointmap in its own camera's frame P = [K | 0]
    up to scale.

    Args:
        points: (H, W, 3) the 3D point of each pixel, metres, in any frame.
        valid: (H, W) bool.
        max_points: at most this many valid pixels (evenly spread, seeded) are used.
        seed: seeds the choice of pixels.

    Returns:
        (P, rms): P (3, 4) float64 scaled so that the third row's first three entries have unit norm
        (so P @ (p, 1) has the point's depth along the view's axis as third component, positive in front),
        and the RMS reprojection error of the used pixels, pixels. (None, inf) with fewer than 12 valid
        pixels or points that do not determine a camera (e.g. all on one plane).
    """
    points, valid = np.asarray(points), np.asarray(valid, bool)
    if points.ndim != 3 or points.shape[-1] != 3 or valid.shape != points.shape[:2]:
        raise ValueError(f"points must be (H, W, 3) with valid (H, W), got {points.shape} and {valid.shape}")
    rows, cols = np.nonzero(valid)
    if len(rows) > max_points:
        pick = np.random.default_rng(seed).choice(len(rows), max_points, replace=False)
        rows, cols = rows[pick], cols[pick]
    X = points[rows, cols].astype(np.float64)
    finite = np.all(np.isfinite(X), axis=1)
    rows, cols, X = rows[finite], cols[finite], X[finite]
    if len(rows) < 12:
        return None, float("inf")
    uv = np.stack([cols, rows], axis=1).astype(np.float64)  # pixel centres (u, v) = (col, row)
    # Hartley normalisation of both point sets.
    mx, mu = X.mean(0), uv.mean(0)
    sx = np.sqrt(3.0) / max(np.sqrt(((X - mx) ** 2).sum(1)).mean(), 1e-12)
    su = np.sqrt(2.0) / max(np.sqrt(((uv - mu) ** 2).sum(1)).mean(), 1e-12)
    Tx = np.diag([sx, sx, sx, 1.0])
    Tx[:3, 3] = -sx * mx
    Tu = np.diag([su, su, 1.0])
    Tu[:2, 2] = -su * mu
    Xh = np.hstack([(X - mx) * sx, np.ones((len(X), 1))])
    un = (uv - mu) * su
    A = np.zeros((2 * len(X), 12))
    A[0::2, 0:4] = Xh
    A[0::2, 8:12] = -un[:, :1] * Xh
    A[1::2, 4:8] = Xh
    A[1::2, 8:12] = -un[:, 1:] * Xh
    _, sv, Vt = np.linalg.svd(A, full_matrices=False)
    if sv[-2] <= 1e-9 * sv[0]:  # a second null direction: the points do not fix the camera
        return None, float("inf")
    P = np.linalg.inv(Tu) @ Vt[-1].reshape(3, 4) @ Tx
    P = P / np.linalg.norm(P[2, :3])
    if np.median(X @ P[2, :3] + P[2, 3]) < 0:
        P = -P  # points in front of the camera have positive depth
    uv_fit, _ = apply_projection_matrix(P, X)
    rms = float(np.sqrt(np.mean(np.sum((uv_fit - uv) ** 2, axis=1))))
    return P, rms if np.isfinite(rms) else float("inf")


def apply_projection_matrix(P: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (u, v) and depths of points p (..., 3) under a 3x4 camera matrix P (`fit_projection_matrix`).

    Returns uv (..., 2) and depth (...) (the third homogeneous component; <= 0 behind the camera, where uv
    is left as (0, 0))."""
    P = np.asarray(P, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    h = p @ P[:, :3].T + P[:, 3]
    z = h[..., 2]
    ok = z > 1e-12
    uv = np.zeros(p.shape[:-1] + (2,))
    uv[ok] = h[ok, :2] / z[ok, None]
    return uv, z


def decompose_projection_matrix(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics and pose of the camera of a 3x4 camera matrix (`fit_projection_matrix`), by RQ decomposition.

    P maps points of some frame A to the pixels of camera V: (u, v, 1) ~ P (p_A, 1) = K (R p_A + t).

    Returns:
        K (3, 3) upper triangular with positive diagonal and K[2, 2] = 1 (a small skew K[0, 1] is kept), pixels;
        X_VA (4, 4) the pose of frame A in camera V (so X_AV = inverse is camera V in frame A), metres when P
        was fitted to points in metres.

    Raises ValueError for a singular or mirrored (det R < 0 after fixing signs) matrix.
    """
    from scipy.linalg import rq

    P = np.asarray(P, dtype=np.float64)
    if P.shape != (3, 4) or not np.all(np.isfinite(P)):
        raise ValueError(f"P must be a finite 3x4 matrix, got shape {P.shape}")
    M = P[:, :3]
    size = np.abs(M).max()
    if size == 0 or abs(np.linalg.det(M)) < 1e-12 * size ** 3:
        raise ValueError("P is singular: it is not the matrix of a camera")
    K, R = rq(M)
    D = np.diag(np.sign(np.diag(K)))
    K, R = K @ D, D @ R  # positive focal lengths (D @ D = I)
    scale = K[2, 2]
    if np.linalg.det(R) < 0:
        raise ValueError("P describes a mirrored camera (det R < 0): points behind it, or a flipped pixel grid")
    t = np.linalg.solve(K, P[:, 3])
    X_VA = np.eye(4)
    X_VA[:3, :3], X_VA[:3, 3] = R, t
    return K / scale, X_VA
