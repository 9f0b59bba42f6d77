"""Per-pixel world-frame ray maps of a pinhole camera, and recovery of the camera from a ray map.

Two 6-channel encodings (H, W, 6), one ray per pixel centre (u, v) = (col, row):

- "origin_direction": (o, d) with o the camera centre in the world (metres, the same for every pixel)
  and d the unit ray direction in the world.
- "plucker": (d, m) with d the unit direction and m = o × d its moment (metres); Plücker coordinates
  do not depend on which point of the ray is taken as o.

The world direction of pixel (u, v) is d ∝ R_WC K^{-1} [u, v, 1]^T. `camera_from_raymap` inverts this
(the idea of AETHER's ray-map-to-camera step): the camera centre comes from the origins (mean) or from
the moments (least squares of m = o × d); R_WC and K come from the homography H ∝ R_WC K^{-1} that maps
pixels to directions, fitted by DLT and split by an RQ decomposition of H^{-1} ∝ K R_WC^T.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from geo4d_core.geometry._backend import backend_for, is_torch
from geo4d_core.geometry.pointmap import _intrinsics
from geo4d_core.geometry.poses import make_pose

__all__ = ["raymap_from_camera", "camera_from_raymap", "RaymapKind"]

Array = Any  # numpy.ndarray or torch.Tensor
RaymapKind = Literal["plucker", "origin_direction"]
_KINDS = ("plucker", "origin_direction")


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"raymap kind must be one of {_KINDS}, got {kind!r}")


def raymap_from_camera(
    K: Array, X_WC: Array, height: int, width: int, kind: RaymapKind = "plucker"
) -> Array:
    """World-frame rays through every pixel centre of a pinhole camera.

    Args:
        K: (3, 3) intrinsics in pixels, or (..., 3, 3) for a batch of cameras.
        X_WC: (4, 4) camera pose in the world (OpenCV camera axes), or (..., 4, 4); leading dims
            broadcast against K's.
        height, width: image size in pixels.
        kind: "plucker" -> channels (d, o × d); "origin_direction" -> channels (o, d). d is a unit
            vector in the world frame, o the camera centre in the world (metres).

    Returns:
        (..., height, width, 6) float ray map (torch if K or X_WC is a tensor; dtype promoted from the
        floating inputs, float64 by default).
    """
    _check_kind(kind)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    be = backend_for(K, X_WC)
    X_WC = be.asarray(X_WC)
    if X_WC.ndim < 2 or tuple(X_WC.shape[-2:]) != (4, 4):
        raise ValueError(f"X_WC must have shape (4, 4) or (..., 4, 4), got {tuple(X_WC.shape)}")
    H, W = int(height), int(width)
    fx, fy, cx, cy, s, _ = _intrinsics(K, be)
    lead_k = tuple(fx.shape)
    fx, fy, cx, cy, s = (be.asarray(a[..., None, None]) for a in (fx, fy, cx, cy, s))
    # Unit camera-frame directions K^{-1}[u, v, 1] / |.| on the pixel grid: (lead_k..., H*W, 3).
    yn = (be.arange(H)[:, None] - cy) / fy  # (..., H, 1)
    xn = (be.arange(W) - cx - s * yn) / fx  # (..., H, W)
    inv_norm = 1.0 / (xn * xn + yn * yn + 1.0) ** 0.5
    d_C = be.stack([xn * inv_norm, yn * inv_norm, be.broadcast_to(inv_norm, tuple(xn.shape))])
    d_C = d_C.reshape(lead_k + (H * W, 3))
    # Both halves are linear in d_C: d_W = R d_C and m = o × d_W = [o]_x R d_C. One (N, 3) @ (3, 6)
    # product per camera gives all six channels (the origins are filled in afterwards).
    R, o = X_WC[..., :3, :3], X_WC[..., :3, 3]
    if kind == "plucker":
        zero = be.zeros(tuple(o.shape[:-1]))
        o_x = be.stack(
            [
                be.stack([zero, -o[..., 2], o[..., 1]]),
                be.stack([o[..., 2], zero, -o[..., 0]]),
                be.stack([-o[..., 1], o[..., 0], zero]),
            ],
            axis=-2,
        )
        M = be.concat([R, o_x @ R], axis=-2)  # (..., 6, 3)
    else:
        M = be.concat([be.zeros(tuple(R.shape)), R], axis=-2)
    rays = d_C @ be.mT(M)  # (lead..., H*W, 6)
    lead = tuple(rays.shape[:-2])
    rays = rays.reshape(lead + (H, W, 6))
    if kind == "origin_direction":
        o_b = be.broadcast_to(o[..., None, None, :], lead + (H, W, 3))
        if be.is_torch:
            rays = be.concat([o_b, rays[..., 3:]], axis=-1)
        else:
            rays[..., :3] = o_b
    return rays


def _sample_grid(height: int, width: int, max_per_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a strided grid (including the last row / column)."""
    rows = np.unique(np.linspace(0, height - 1, min(height, max_per_axis)).round().astype(np.intp))
    cols = np.unique(np.linspace(0, width - 1, min(width, max_per_axis)).round().astype(np.intp))
    return rows, cols


def camera_from_raymap(
    raymap: np.ndarray, kind: RaymapKind = "plucker", max_samples_per_axis: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Recover the pinhole camera (K, X_WC) that produced a ray map (numpy only).

    Camera centre: mean of the origins ("origin_direction"), or the least-squares point o with
    m = o × d for all rays ("plucker"; closed form sum(I - d d^T) o = sum(d × m)). Rotation and
    intrinsics: DLT fit (Hartley-normalised, SVD) of the homography H ∝ R_WC K^{-1} from pixel
    coordinates [u, v, 1] to directions, then RQ decomposition of H^{-1} ∝ K R_WC^T with signs fixed so
    K has a positive diagonal and det R_WC = +1, and K[2, 2] = 1. Exact (to float error) for ray maps
    from `raymap_from_camera`; a least-squares estimate for noisy ones.

    Args:
        raymap: (H, W, 6) world-frame ray map of the given kind (see `raymap_from_camera`); H, W >= 2.
        kind: "plucker" or "origin_direction".
        max_samples_per_axis: the fit uses a strided grid of at most this many rows and columns.

    Returns:
        K: (3, 3) float64 intrinsics in pixels (upper triangular; skew recovered too).
        X_WC: (4, 4) float64 camera pose in the world, metres.
    """
    _check_kind(kind)
    if is_torch(raymap):
        raise TypeError("camera_from_raymap is numpy only; convert with raymap.detach().cpu().numpy()")
    raymap = np.asarray(raymap, dtype=np.float64)
    if raymap.ndim != 3 or raymap.shape[-1] != 6:
        raise ValueError(f"raymap must have shape (H, W, 6), got {raymap.shape}")
    H, W = raymap.shape[:2]
    if H < 2 or W < 2:
        raise ValueError(f"raymap must be at least 2x2 pixels to recover a camera, got {H}x{W}")
    rows, cols = _sample_grid(H, W, max(2, int(max_samples_per_axis)))
    sub = raymap[rows[:, None], cols[None, :]].reshape(-1, 6)
    if not np.all(np.isfinite(sub)):
        raise ValueError("raymap contains non-finite values")
    if kind == "origin_direction":
        origins, d = sub[:, :3], sub[:, 3:]
    else:
        d, m = sub[:, :3], sub[:, 3:]
    d_norm = np.linalg.norm(d, axis=-1, keepdims=True)
    if np.any(d_norm < 1e-12):
        raise ValueError("raymap has zero-length ray directions")
    d = d / d_norm

    if kind == "origin_direction":
        o = origins.mean(axis=0)
    else:
        m = m / d_norm  # the moment scales with |d|
        A = d.shape[0] * np.eye(3) - d.T @ d  # sum (I - d d^T)
        b = np.cross(d, m).sum(axis=0)  # sum d × m = sum (I - d d^T) o
        o = np.linalg.solve(A, b)

    # Pixel coordinates of the samples, Hartley-normalised for conditioning: x' = T x.
    uu, vv = np.meshgrid(cols.astype(np.float64), rows.astype(np.float64))
    uv = np.stack([uu.ravel(), vv.ravel()], axis=-1)
    mean = uv.mean(axis=0)
    scale = np.sqrt(2.0) / np.mean(np.linalg.norm(uv - mean, axis=-1))
    T = np.array([[scale, 0.0, -scale * mean[0]], [0.0, scale, -scale * mean[1]], [0.0, 0.0, 1.0]])
    x = np.concatenate([(uv - mean) * scale, np.ones((uv.shape[0], 1))], axis=-1)

    # DLT: d × (H' x) = 0, three rows per ray over vec(H') = (h1, h2, h3) (rows of H').
    zeros = np.zeros_like(x)
    d1, d2, d3 = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    A = np.concatenate(
        [
            np.concatenate([zeros, -d3 * x, d2 * x], axis=1),
            np.concatenate([d3 * x, zeros, -d1 * x], axis=1),
            np.concatenate([-d2 * x, d1 * x, zeros], axis=1),
        ],
        axis=0,
    )
    _, _, Vt = np.linalg.svd(A, full_matrices=False)
    Hmat = Vt[-1].reshape(3, 3) @ T  # d ∝ H [u, v, 1]^T with H ∝ R_WC K^{-1}

    from scipy.linalg import rq

    upper, Q = rq(np.linalg.inv(Hmat))  # H^{-1} = upper @ Q ∝ K R_WC^T
    signs = np.sign(np.diag(upper))
    signs[signs == 0] = 1.0
    upper = upper * signs[None, :]  # upper @ diag(signs)
    Q = signs[:, None] * Q  # diag(signs) @ Q; the product is unchanged
    if np.linalg.det(Q) < 0:  # the overall scale of H was negative
        Q = -Q
    K = upper / upper[2, 2]
    R_WC = Q.T
    return K, make_pose(R_WC, o)
