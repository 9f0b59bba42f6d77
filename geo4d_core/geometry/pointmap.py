"""Depth images ⇄ pointmaps, and rigid transforms of points and pointmaps between frames.

Conventions (DESIGN.md §3): metres; OpenCV camera frame (+x right, +y down, +z forward); pixel
(row i, col j) has its centre at (u, v) = (j, i); depth 0 = invalid; `X_AB` is the 4×4 pose of frame B
in frame A, so `p_A = X_AB @ p_B`. Every function accepts numpy arrays or torch tensors and returns
the type of its main data argument (torch keeps dtype and device, and stays differentiable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geo4d_core.geometry._backend import Backend, backend_for, dtype_name, is_torch
from geo4d_core.geometry.poses import invert_pose

__all__ = [
    "depth_to_pointmap",
    "pointmap_to_depth",
    "transform_points",
    "relative_pose",
    "pointmap_m_to_n",
]

Array = Any  # numpy.ndarray or torch.Tensor


def _intrinsics(K: Array, be: Backend, name: str = "K") -> tuple[Array, Array, Array, Array, Array, bool]:
    """Validate `K` (..., 3, 3) and return float64 (fx, fy, cx, cy, skew, has_skew), each of shape (...).

    K must be a pinhole intrinsic matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0 (pixels).
    """
    K = be.asarray(K, dtype=be.float64)
    if K.ndim < 2 or tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"{name} must have shape (3, 3) or (..., 3, 3), got {tuple(K.shape)}")
    if not bool(be.isfinite(K).all()):
        raise ValueError(f"{name} must be finite, got {K.tolist()}")
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    scale = be.abs(fx) + be.abs(fy)
    lower = be.abs(K[..., 1, 0]) + be.abs(K[..., 2, 0]) + be.abs(K[..., 2, 1])
    bad_row = be.any_true(lower > 1e-6 * scale) or be.any_true(be.abs(K[..., 2, 2] - 1.0) > 1e-6)
    if bad_row:
        raise ValueError(
            f"{name} must be an upper-triangular pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]]; "
            f"got last two rows {K[..., 1:, :].tolist()}"
        )
    if not (bool((fx > 0).all()) and bool((fy > 0).all())):
        raise ValueError(f"{name} must have positive focal lengths fx, fy (pixels); got fx={fx.tolist()}, "
                         f"fy={fy.tolist()}")
    skew = K[..., 0, 1]
    return fx, fy, K[..., 0, 2], K[..., 1, 2], skew, be.any_true(skew != 0)


def _expand(x: Array, n: int) -> Array:
    """Append `n` singleton axes to `x`."""
    return x[(...,) + (None,) * n]


def depth_to_pointmap(depth: Array, K: Array) -> tuple[Array, Array]:
    """Lift a depth image to a pointmap in the camera frame.

    Args:
        depth: (..., H, W) floating depth in metres along the optical axis (+z); 0, negative or
            non-finite = invalid. Integer depth (e.g. uint16 millimetres from disk) is rejected:
            convert to metres first.
        K: (3, 3) intrinsics in pixels, or (..., 3, 3) broadcastable against depth's leading dims.
            Skew K[0, 1] is handled exactly.

    Returns:
        points_C: (..., H, W, 3) points in the camera frame (OpenCV axes), metres, same float dtype as
            depth; p = depth * K^{-1} [u, v, 1]^T with (u, v) = (col, row). Invalid pixels are (0, 0, 0).
        valid: (..., H, W) bool, depth finite and > 0.
    """
    if not is_torch(depth):
        depth = np.asarray(depth)
    if not (depth.is_floating_point() if is_torch(depth) else np.issubdtype(depth.dtype, np.floating)):
        raise TypeError(
            f"depth must be a floating-point array in metres, got dtype {dtype_name(depth)}; "
            "convert uint16 millimetres with depth.astype(np.float32) / 1000"
        )
    be = backend_for(depth, K, like=depth)
    depth = be.asarray(depth)
    if depth.ndim < 2:
        raise ValueError(f"depth must have shape (..., H, W), got {tuple(depth.shape)}")
    fx, fy, cx, cy, skew, has_skew = _intrinsics(K, be)
    H, W = int(depth.shape[-2]), int(depth.shape[-1])

    # Normalised image coordinates: a (..., 1, W) row and a (..., H, 1) column (float64, then cast).
    u = be.arange(W, dtype=be.float64)
    v = be.arange(H, dtype=be.float64)
    x_row = (u - _expand(cx, 2)) / _expand(fx, 2)  # (..., 1, W)
    y_col = (v[:, None] - _expand(cy, 2)) / _expand(fy, 2)  # (..., H, 1)
    if has_skew:  # x_n = (u - cx - s * y_n) / fx: a full (..., H, W) grid
        x_row = x_row - _expand(skew / fx, 2) * y_col
    x_row = be.asarray(x_row)
    y_col = be.asarray(y_col)

    out_shape = tuple(np.broadcast_shapes(tuple(depth.shape), tuple(fx.shape) + (1, 1)))
    if be.is_torch:  # no host syncs: one comparison pair and one `where`
        valid = (depth > 0) & (depth < float("inf"))  # NaN fails both
        if tuple(valid.shape) != out_shape:  # a batch of K over one depth image
            valid = valid.expand(out_shape).clone()
        d = be.where(valid, depth, 0.0)
        points = be.stack([d * x_row, d * y_col, d], axis=-1)
        return points, valid

    # numpy: write the masked depth straight into the z channel of the output and scale it from
    # there (no full-size temporaries: fresh allocations cost page faults comparable to the math).
    points = np.empty(out_shape + (3,), dtype=be.dtype)
    z = points[..., 2]
    valid = depth > 0
    if valid.shape != out_shape:  # a batch of K over one depth image
        depth = np.broadcast_to(depth, out_shape)
        valid = np.broadcast_to(valid, out_shape).copy()
    if np.isfinite(depth).all():
        if valid.all():
            np.copyto(z, depth)
        else:  # multiplying by the 0/1 mask is much cheaper than `where` with a scattered mask
            np.multiply(depth, valid, out=z)
    else:
        valid &= np.isfinite(depth)
        np.copyto(z, np.where(valid, depth, 0.0))
    np.multiply(z, x_row, out=points[..., 0])
    np.multiply(z, y_col, out=points[..., 1])
    return points, valid


def pointmap_to_depth(points_C: Array, valid: Array | None = None) -> Array:
    """Depth image (the z channel) of a camera-frame pointmap.

    Args:
        points_C: (..., H, W, 3) points in the camera frame, metres.
        valid: optional (..., H, W) bool mask; pixels where it is False get depth 0.

    Returns:
        depth: (..., H, W) metres, same dtype as points_C; 0 where invalid (mask False, or z non-finite
        or <= 0).
    """
    be = backend_for(points_C, like=points_C)
    points_C = be.asarray(points_C)
    if points_C.ndim < 3 or points_C.shape[-1] != 3:
        raise ValueError(f"points_C must have shape (..., H, W, 3), got {tuple(points_C.shape)}")
    z = points_C[..., 2]
    ok = be.isfinite(z)
    ok &= z > 0
    if valid is not None:
        valid = be.as_bool(valid)
        if tuple(valid.shape) != tuple(z.shape):
            raise ValueError(f"valid must have shape {tuple(z.shape)} (points_C without its last axis), "
                             f"got {tuple(valid.shape)}")
        ok = ok & valid
    return be.where(ok, z, 0.0)


def transform_points(X_AB: Array, p_B: Array) -> Array:
    """Apply the rigid transform `X_AB` to points given in frame B: p_A = R_AB p_B + t_AB.

    Args:
        X_AB: (4, 4) pose of frame B in frame A, or (B, 4, 4) (more generally (L..., 4, 4)) whose
            leading dims match (broadcast against) the leading dims of p_B.
        p_B: (..., 3) points in frame B, metres. With a batched X_AB, p_B is (B, ..., 3): X_AB[b] is
            applied to every point of p_B[b].

    Returns:
        p_A: points in frame A, same shape as p_B (batch dims broadcast), dtype of p_B if floating.
    """
    be = backend_for(X_AB, p_B, like=p_B)
    p_B = be.asarray(p_B)
    X_AB = be.asarray(X_AB)
    if X_AB.ndim < 2 or tuple(X_AB.shape[-2:]) != (4, 4):
        raise ValueError(f"X_AB must have shape (4, 4) or (B, 4, 4), got {tuple(X_AB.shape)}")
    if p_B.ndim < 1 or p_B.shape[-1] != 3:
        raise ValueError(f"p_B must have shape (..., 3), got {tuple(p_B.shape)}")
    R, t = X_AB[..., :3, :3], X_AB[..., :3, 3]
    k = X_AB.ndim - 2
    if k == 0:
        if be.is_torch:
            out = be.torch.addmm(t, p_B.reshape(-1, 3), R.T)
        else:
            out = _affine_numpy(p_B.reshape(-1, 3), R, t)
        return out.reshape(p_B.shape)
    if p_B.ndim - 1 < k:
        raise ValueError(
            f"batched X_AB {tuple(X_AB.shape)} needs p_B of shape (B, ..., 3) with at least {k} leading "
            f"dims, got {tuple(p_B.shape)}"
        )
    lead_p, rest = tuple(p_B.shape[:k]), tuple(p_B.shape[k:-1])
    try:
        lead = tuple(np.broadcast_shapes(tuple(X_AB.shape[:-2]), lead_p))
    except ValueError as err:
        raise ValueError(
            f"leading dims of X_AB {tuple(X_AB.shape[:-2])} do not match those of p_B {lead_p}"
        ) from err
    n = int(np.prod(rest, dtype=np.int64))
    flat = p_B.reshape(lead_p + (n, 3))
    if be.is_torch:
        out = flat @ be.mT(R) + t[..., None, :]
        return out.reshape(lead + rest + (3,))
    # numpy: one fast (n, 3) affine map per batch element (batches are short, point sets large).
    flat = np.broadcast_to(flat, lead + (n, 3))
    R = np.broadcast_to(R, lead + (3, 3))
    t = np.broadcast_to(t, lead + (3,))
    out = np.empty(lead + (n, 3), dtype=be.dtype)
    for idx in np.ndindex(*lead):
        out[idx] = _affine_numpy(flat[idx], R[idx], t[idx])
    return out.reshape(lead + rest + (3,))


_TILE = 128  # points per row when adding the translation (see `_affine_numpy`)


def _affine_numpy(flat: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """flat (N, 3) @ R^T + t for numpy, fast for large N.

    A plain `out += t` broadcasts a length-3 inner loop over N rows, which is several times slower than
    the matrix product itself; adding a tiled (3 * _TILE,) copy of t to a (N / _TILE, 3 * _TILE) view of
    the output keeps numpy's inner loop long.
    """
    out = flat @ np.ascontiguousarray(R).T
    n = out.shape[0]
    n_main = (n // _TILE) * _TILE
    if n_main:
        main = out[:n_main].reshape(-1, 3 * _TILE)
        main += np.tile(t, _TILE)
    if n_main < n:
        out[n_main:] += t
    return out


def relative_pose(X_WA: Array, X_WB: Array) -> Array:
    """Pose of frame B in frame A from two poses in a common frame W: X_AB = inv(X_WA) @ X_WB.

    Args:
        X_WA, X_WB: (..., 4, 4) rigid poses (leading dims broadcast), metres.

    Returns:
        X_AB: (..., 4, 4); the type of X_WB (torch if either is a tensor).
    """
    be = backend_for(X_WA, X_WB, like=X_WB)
    return invert_pose(be.asarray(X_WA)) @ be.asarray(X_WB)


def pointmap_m_to_n(points_Cm: Array, X_WCn: Array, X_WCm: Array, valid: Array | None = None) -> Array:
    """View m's pointmap expressed in camera n's frame (the paper's X^{m→n}).

    Args:
        points_Cm: (..., H, W, 3) view m's points in camera m's frame, metres.
        X_WCn: (4, 4) or (B, 4, 4) pose of camera n in the world.
        X_WCm: (4, 4) or (B, 4, 4) pose of camera m in the world. Batched poses pair with the leading
            dim of points_Cm (see `transform_points`).
        valid: optional (..., H, W) bool; pixels where it is False are set to (0, 0, 0) in the result
            (without it every pixel is transformed, so a (0, 0, 0) placeholder becomes camera m's centre).

    Returns:
        points_Cn: (..., H, W, 3) the same points in camera n's frame, metres.
    """
    X_CnCm = relative_pose(X_WCn, X_WCm)
    points_Cn = transform_points(X_CnCm, points_Cm)
    if valid is None:
        return points_Cn
    be = backend_for(points_Cn, like=points_Cn)
    valid = be.as_bool(valid)
    if tuple(valid.shape) != tuple(points_Cn.shape[:-1]):
        raise ValueError(f"valid must have shape {tuple(points_Cn.shape[:-1])}, got {tuple(valid.shape)}")
    return be.zero_where_false(points_Cn, valid)
