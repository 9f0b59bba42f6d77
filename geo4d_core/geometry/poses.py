"""Rigid poses: construction, inversion, composition, interpolation, distances, look-at cameras.

A pose `X_AB` is the 4×4 homogeneous transform of frame B expressed in frame A (rotation R_AB, the
orientation of B's axes in A, and translation p_AB, B's origin in A, metres), so `p_A = X_AB @ p_B`
and `X_AC = X_AB @ X_BC`. Angles are radians. Camera frames use OpenCV axes (+x right, +y down,
+z forward).

`make_pose`, `invert_pose`, `compose_poses`, `rotation_distance` and `translation_distance` accept numpy
arrays or torch tensors (result of the same type); `interpolate_pose` and `look_at` are numpy only
(they use scipy); `is_rigid_transform` accepts either and returns a Python bool.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import numpy as np

from geo4d_core.geometry._backend import backend_for, is_torch

__all__ = [
    "make_pose",
    "invert_pose",
    "compose_poses",
    "interpolate_pose",
    "rotation_distance",
    "translation_distance",
    "look_at",
    "is_rigid_transform",
]

Array = Any  # numpy.ndarray or torch.Tensor


def _check_pose_shape(X: Array, name: str) -> None:
    if X.ndim < 2 or tuple(X.shape[-2:]) != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4) or (..., 4, 4), got {tuple(X.shape)}")


def make_pose(R: Array, p: Array) -> Array:
    """Homogeneous pose from a rotation and a translation.

    Args:
        R: (..., 3, 3) rotation R_AB (columns = B's axes expressed in A).
        p: (..., 3) translation p_AB (B's origin in A), metres. Leading dims broadcast against R's.

    Returns:
        X_AB: (..., 4, 4) with bottom row [0, 0, 0, 1]. No orthonormality check (see
        `is_rigid_transform`).
    """
    be = backend_for(R, p)
    R, p = be.asarray(R), be.asarray(p)
    if R.ndim < 2 or tuple(R.shape[-2:]) != (3, 3):
        raise ValueError(f"R must have shape (..., 3, 3), got {tuple(R.shape)}")
    if p.ndim < 1 or p.shape[-1] != 3:
        raise ValueError(f"p must have shape (..., 3), got {tuple(p.shape)}")
    lead = tuple(np.broadcast_shapes(tuple(R.shape[:-2]), tuple(p.shape[:-1])))
    X = be.zeros(lead + (4, 4))
    X[..., :3, :3] = R
    X[..., :3, 3] = p
    X[..., 3, 3] = 1.0
    return X


def invert_pose(X_AB: Array) -> Array:
    """Inverse of a rigid pose using its structure: X_BA = [R^T, -R^T p; 0, 1].

    Args:
        X_AB: (..., 4, 4) rigid pose (assumed orthonormal rotation; not checked), metres.

    Returns:
        X_BA: (..., 4, 4), same type and dtype.
    """
    be = backend_for(X_AB, like=X_AB)
    X_AB = be.asarray(X_AB)
    _check_pose_shape(X_AB, "X_AB")
    Rt = be.mT(X_AB[..., :3, :3])
    p = X_AB[..., :3, 3]
    X_BA = be.zeros(tuple(X_AB.shape))
    X_BA[..., :3, :3] = Rt
    X_BA[..., :3, 3] = -(Rt @ p[..., None])[..., 0]
    X_BA[..., 3, 3] = 1.0
    return X_BA


def compose_poses(*Xs: Array) -> Array:
    """Chain poses left to right: compose_poses(X_AB, X_BC, X_CD) = X_AB @ X_BC @ X_CD = X_AD.

    Args:
        *Xs: one or more (..., 4, 4) poses (leading dims broadcast).

    Returns:
        (..., 4, 4) composed pose (torch if any input is a tensor).
    """
    if not Xs:
        raise ValueError("compose_poses needs at least one pose")
    be = backend_for(*Xs)
    mats = [be.asarray(X) for X in Xs]
    for i, X in enumerate(mats):
        _check_pose_shape(X, f"pose #{i}")
    return reduce(lambda a, b: a @ b, mats)


def interpolate_pose(X_0: np.ndarray, X_1: np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """Interpolate between two poses (numpy only).

    Rotation: spherical linear interpolation (scipy `Slerp`) along the shortest arc from R_0 to R_1, so
    the rotation angle from R_0 grows linearly with s. Translation: linear, p = (1 - s) p_0 + s p_1, so
    the frame origin moves on a straight line. This decoupled scheme (not the SE(3) screw geodesic) is
    chosen because end-effector waypoints are commanded that way: the tool centre moves straight
    while the orientation turns uniformly, independent of where the frame origin sits.

    Args:
        X_0, X_1: (4, 4) poses X_AB at s = 0 and s = 1 (same frames A, B), metres.
        s: scalar or 1-D array of interpolation parameters in [0, 1].

    Returns:
        (4, 4) for scalar s, (S, 4, 4) for 1-D s; float64.
    """
    from scipy.spatial.transform import Rotation, Slerp

    X_0 = np.asarray(X_0, dtype=np.float64)
    X_1 = np.asarray(X_1, dtype=np.float64)
    _check_pose_shape(X_0, "X_0")
    _check_pose_shape(X_1, "X_1")
    if X_0.shape != (4, 4) or X_1.shape != (4, 4):
        raise ValueError(f"X_0 and X_1 must be single (4, 4) poses, got {X_0.shape} and {X_1.shape}")
    s_arr = np.asarray(s, dtype=np.float64)
    if s_arr.ndim > 1:
        raise ValueError(f"s must be a scalar or a 1-D array, got shape {s_arr.shape}")
    if not np.all(np.isfinite(s_arr)) or np.any(s_arr < 0.0) or np.any(s_arr > 1.0):
        raise ValueError(f"s must lie in [0, 1], got {s_arr.tolist()}")
    s_1d = np.atleast_1d(s_arr)
    rotations = Rotation.from_matrix(np.stack([X_0[:3, :3], X_1[:3, :3]]))
    R = Slerp([0.0, 1.0], rotations)(s_1d).as_matrix()
    p = (1.0 - s_1d)[:, None] * X_0[:3, 3] + s_1d[:, None] * X_1[:3, 3]
    X = make_pose(R, p)
    return X[0] if s_arr.ndim == 0 else X


def rotation_distance(R_a: Array, R_b: Array) -> Array:
    """Geodesic angle between two rotations: the angle of R_a^T R_b, in radians in [0, π].

    Computed as atan2(|vee(M - M^T)| / 2, (trace(M) - 1) / 2) with M = R_a^T R_b, which is accurate
    near 0 and near π (unlike arccos of the trace).

    Args:
        R_a, R_b: (..., 3, 3) rotations or (..., 4, 4) poses (their rotation blocks are used);
            leading dims broadcast.

    Returns:
        (...) angles in radians (0-d array for single inputs).
    """
    be = backend_for(R_a, R_b)
    R_a, R_b = be.asarray(R_a), be.asarray(R_b)
    for name, R in (("R_a", R_a), ("R_b", R_b)):
        if R.ndim < 2 or tuple(R.shape[-2:]) not in ((3, 3), (4, 4)):
            raise ValueError(f"{name} must have shape (..., 3, 3) or (..., 4, 4), got {tuple(R.shape)}")
    M = be.mT(R_a[..., :3, :3]) @ R_b[..., :3, :3]
    cos = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1.0) * 0.5
    w = be.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]])
    sin = be.norm(w, axis=-1) * 0.5
    return be.atan2(sin, cos)


def translation_distance(X_a: Array, X_b: Array) -> Array:
    """Euclidean distance between the translations of two poses, metres.

    Args:
        X_a, X_b: (..., 4, 4) poses in a common parent frame; leading dims broadcast.

    Returns:
        (...) distances in metres.
    """
    be = backend_for(X_a, X_b)
    X_a, X_b = be.asarray(X_a), be.asarray(X_b)
    _check_pose_shape(X_a, "X_a")
    _check_pose_shape(X_b, "X_b")
    return be.norm(X_a[..., :3, 3] - X_b[..., :3, 3], axis=-1)


def look_at(
    p_W_eye: np.ndarray,
    p_W_target: np.ndarray,
    up_W: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 1.0),
) -> np.ndarray:
    """Camera pose X_WC looking from an eye point at a target, with OpenCV camera axes (numpy only).

    +z_C points from the eye to the target, +x_C is to the right in the image (z × up), +y_C points
    down in the image (so up_W projects upward). The camera origin is the eye.

    Args:
        p_W_eye: (..., 3) camera centre in the world, metres.
        p_W_target: (..., 3) point the optical axis passes through, world, metres.
        up_W: (..., 3) world direction that should appear up in the image (default +z).

    Returns:
        X_WC: (..., 4, 4) float64 camera pose.

    Raises:
        ValueError: if eye and target coincide, or up_W is zero or parallel to the viewing direction.
    """
    eye = np.asarray(p_W_eye, dtype=np.float64)
    target = np.asarray(p_W_target, dtype=np.float64)
    up = np.asarray(up_W, dtype=np.float64)
    for name, v in (("p_W_eye", eye), ("p_W_target", target), ("up_W", up)):
        if v.ndim < 1 or v.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (..., 3), got {v.shape}")
    forward = target - eye
    dist = np.linalg.norm(forward, axis=-1, keepdims=True)
    if np.any(dist < 1e-12):
        raise ValueError("look_at: p_W_eye and p_W_target coincide; the viewing direction is undefined")
    z = forward / dist
    up_norm = np.linalg.norm(up, axis=-1, keepdims=True)
    if np.any(up_norm < 1e-12):
        raise ValueError("look_at: up_W must be a non-zero vector")
    x = np.cross(z, up / up_norm)
    x_norm = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(x_norm < 1e-6):
        raise ValueError(
            "look_at: up_W is parallel to the viewing direction (eye → target); choose another up_W"
        )
    x = x / x_norm
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=-1)
    return make_pose(R, np.broadcast_to(eye, R.shape[:-1]))


def is_rigid_transform(X: Array, atol: float = 1e-6) -> bool:
    """True when X (4, 4) or (..., 4, 4) is a finite rigid transform within `atol` (every one, if batched).

    Checks: bottom row [0, 0, 0, 1], R^T R = I and det(R) = +1 (no reflection), all within atol.
    Wrong shapes give False. Accepts numpy arrays or torch tensors.
    """
    if is_torch(X):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 2 or X.shape[-2:] != (4, 4):
        return False
    if not np.all(np.isfinite(X)):
        return False
    if not np.allclose(X[..., 3, :], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=atol):
        return False
    R = X[..., :3, :3]
    if not np.allclose(np.swapaxes(R, -1, -2) @ R, np.eye(3), rtol=0.0, atol=atol):
        return False
    return bool(np.allclose(np.linalg.det(R), 1.0, rtol=0.0, atol=atol))
