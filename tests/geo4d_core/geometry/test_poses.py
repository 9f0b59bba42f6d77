"""Tests for geo4d_core.geometry.poses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from geo4d_core.geometry import (
    compose_poses,
    interpolate_pose,
    invert_pose,
    is_rigid_transform,
    look_at,
    make_pose,
    project_world_points,
    rotation_distance,
    translation_distance,
)

SETTINGS = settings(max_examples=50, deadline=None)


@SETTINGS
@given(data=st.data())
def test_invert_and_compose_give_identity(geo, data):
    X_AB, X_BC, X_CD = (data.draw(geo.rigid_pose()) for _ in range(3))
    np.testing.assert_allclose(compose_poses(X_AB, invert_pose(X_AB)), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(compose_poses(invert_pose(X_AB), X_AB), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(invert_pose(X_AB), np.linalg.inv(X_AB), atol=1e-12)
    np.testing.assert_allclose(invert_pose(invert_pose(X_AB)), X_AB, atol=1e-12)
    X_AD = compose_poses(X_AB, X_BC, X_CD)
    np.testing.assert_allclose(X_AD, X_AB @ X_BC @ X_CD, atol=1e-12)
    # inv(X_AB X_BC) = inv(X_BC) inv(X_AB)
    np.testing.assert_allclose(invert_pose(compose_poses(X_AB, X_BC)),
                               compose_poses(invert_pose(X_BC), invert_pose(X_AB)), atol=1e-12)
    assert is_rigid_transform(X_AD)
    # Batched and torch.
    batch = np.stack([X_AB, X_BC, X_CD])
    inv_b = invert_pose(batch)
    for i in range(3):
        np.testing.assert_allclose(inv_b[i], invert_pose(batch[i]), atol=1e-15)
    inv_t = invert_pose(torch.from_numpy(batch))
    assert isinstance(inv_t, torch.Tensor) and inv_t.dtype == torch.float64
    np.testing.assert_allclose(inv_t.numpy(), inv_b, atol=1e-15)
    np.testing.assert_allclose(compose_poses(torch.from_numpy(X_AB), X_BC).numpy(), X_AB @ X_BC, atol=1e-12)


def test_make_pose_shapes_and_errors():
    R = np.stack([np.eye(3)] * 4)
    X = make_pose(R, np.array([1.0, 2.0, 3.0]))
    assert X.shape == (4, 4, 4)
    np.testing.assert_array_equal(X[:, :3, 3], np.broadcast_to([1.0, 2.0, 3.0], (4, 3)))
    np.testing.assert_array_equal(X[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (4, 4)))
    Xt = make_pose(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
    assert isinstance(Xt, torch.Tensor) and Xt.dtype == torch.float32
    with pytest.raises(ValueError, match=r"R must have shape"):
        make_pose(np.eye(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"p must have shape"):
        make_pose(np.eye(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        compose_poses()


@SETTINGS
@given(data=st.data(), s=st.floats(0.0, 1.0))
def test_interpolate_pose_endpoints_midpoint_and_linearity(geo, data, s):
    X_0 = data.draw(geo.rigid_pose())
    X_1 = make_pose(X_0[:3, :3] @ data.draw(geo.rotation(0.0, 3.0)), data.draw(geo.rigid_pose())[:3, 3])
    np.testing.assert_allclose(interpolate_pose(X_0, X_1, 0.0), X_0, atol=1e-12)
    np.testing.assert_allclose(interpolate_pose(X_0, X_1, 1.0), X_1, atol=1e-12)
    total = float(rotation_distance(X_0, X_1))
    mid = interpolate_pose(X_0, X_1, 0.5)
    assert is_rigid_transform(mid)
    np.testing.assert_allclose(float(rotation_distance(X_0, mid)), total / 2, atol=1e-9)
    np.testing.assert_allclose(float(rotation_distance(mid, X_1)), total / 2, atol=1e-9)
    np.testing.assert_allclose(mid[:3, 3], (X_0[:3, 3] + X_1[:3, 3]) / 2, atol=1e-12)
    # Angle and translation grow linearly in s (slerp + straight-line translation).
    X_s = interpolate_pose(X_0, X_1, s)
    assert X_s.shape == (4, 4)
    np.testing.assert_allclose(float(rotation_distance(X_0, X_s)), s * total, atol=1e-9)
    np.testing.assert_allclose(X_s[:3, 3], (1 - s) * X_0[:3, 3] + s * X_1[:3, 3], atol=1e-12)
    seq = interpolate_pose(X_0, X_1, np.array([0.0, s, 1.0]))
    assert seq.shape == (3, 4, 4)
    np.testing.assert_allclose(seq[1], X_s, atol=1e-12)


def test_interpolate_pose_rejects_bad_s():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_pose(np.eye(4), np.eye(4), 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_pose(np.eye(4), np.eye(4), np.array([0.2, -0.1]))
    with pytest.raises(ValueError, match="single"):
        interpolate_pose(np.stack([np.eye(4)] * 2), np.eye(4), 0.5)


@SETTINGS
@given(data=st.data())
def test_rotation_distance_matches_scipy(geo, data):
    R_a, R_b = data.draw(geo.rotation()), data.draw(geo.rotation())
    expected = (Rotation.from_matrix(R_a).inv() * Rotation.from_matrix(R_b)).magnitude()
    np.testing.assert_allclose(float(rotation_distance(R_a, R_b)), expected, atol=1e-9)
    # 4x4 poses and symmetric.
    np.testing.assert_allclose(float(rotation_distance(make_pose(R_b, np.ones(3)), make_pose(R_a, np.zeros(3)))),
                               expected, atol=1e-9)
    # Batched and torch.
    batch = rotation_distance(np.stack([R_a, R_b, np.eye(3)]), R_b)
    assert batch.shape == (3,)
    np.testing.assert_allclose(batch, [expected, 0.0, float(rotation_distance(np.eye(3), R_b))], atol=1e-9)
    t = rotation_distance(torch.from_numpy(R_a), torch.from_numpy(R_b))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.item(), expected, atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-9, 1e-6, 1e-3, 0.5, 2.0, math.pi - 1e-3, math.pi - 1e-6,
                                   math.pi - 1e-9, math.pi])
def test_rotation_distance_is_accurate_near_zero_and_pi(angle):
    rng = np.random.default_rng(7)
    for _ in range(5):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        R_a = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
        R_b = R_a @ Rotation.from_rotvec(angle * axis).as_matrix()
        got = float(rotation_distance(R_a, R_b))
        # Absolute accuracy ~1e-15 rad around both ends (arccos of the trace would give ~1e-8 there).
        assert abs(got - angle) < 1e-12 + 1e-9 * angle, (angle, got)
        assert 0.0 <= got <= math.pi


def test_translation_distance():
    X_a = make_pose(np.eye(3), np.array([1.0, 2.0, 3.0]))
    X_b = make_pose(Rotation.from_rotvec([0.3, 0.2, 0.1]).as_matrix(), np.array([4.0, 6.0, 3.0]))
    assert float(translation_distance(X_a, X_b)) == pytest.approx(5.0)
    np.testing.assert_allclose(translation_distance(np.stack([X_a, X_b]), X_a), [0.0, 5.0])


@SETTINGS
@given(data=st.data())
def test_look_at_axes(geo, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    eye = rng.uniform(-2, 2, 3)
    target = eye + rng.normal(size=3)
    forward = (target - eye) / np.linalg.norm(target - eye)
    up = np.array([0.0, 0.0, 1.0])
    if abs(forward @ up) > 0.99:
        with pytest.raises(ValueError, match="parallel"):
            look_at(eye, eye + up)
        return
    X_WC = look_at(eye, target)
    assert is_rigid_transform(X_WC, atol=1e-12)
    x_C, y_C, z_C = X_WC[:3, 0], X_WC[:3, 1], X_WC[:3, 2]
    np.testing.assert_allclose(z_C, forward, atol=1e-12)  # +z toward the target
    np.testing.assert_allclose(X_WC[:3, 3], eye)
    assert abs(x_C @ up) < 1e-12  # +x horizontal (no roll)
    assert y_C @ up < 0  # +y points down in the world, i.e. down in the image
    np.testing.assert_allclose(np.cross(x_C, y_C), z_C, atol=1e-12)
    # Projection: the target lands on the principal point, a point above it lands above (smaller v),
    # and a point to the camera's right lands to the right (larger u).
    K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])
    pts = np.stack([target, target + 0.05 * up, target + 0.05 * x_C])
    uv, z, _ = project_world_points(pts, K, X_WC, 240, 320)
    np.testing.assert_allclose(uv[0], [160.0, 120.0], atol=1e-9)
    assert uv[1, 1] < 120.0 and uv[2, 0] > 160.0


def test_look_at_known_pose_and_errors():
    # From +x looking at the origin with +z up: camera x = +y_W (right), y = -z_W (down), z = -x_W.
    X_WC = look_at([2.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(X_WC[:3, :3], [[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], atol=1e-15)
    with pytest.raises(ValueError, match="parallel"):
        look_at([0.0, 0.0, 2.0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="coincide"):
        look_at([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="non-zero"):
        look_at([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], up_W=(0.0, 0.0, 0.0))
    # Batched eyes.
    batch = look_at(np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.5]]), np.zeros(3))
    assert batch.shape == (2, 4, 4)
    np.testing.assert_allclose(batch[0], X_WC)


def test_is_rigid_transform():
    X = make_pose(Rotation.from_rotvec([0.1, -0.4, 0.3]).as_matrix(), np.array([1.0, 2.0, 3.0]))
    assert is_rigid_transform(X)
    assert is_rigid_transform(torch.from_numpy(X))
    assert is_rigid_transform(np.stack([X, np.eye(4)]))
    scaled = X.copy()
    scaled[:3, :3] *= 1.01
    reflected = X.copy()
    reflected[:3, 0] *= -1
    bottom = X.copy()
    bottom[3, 0] = 0.1
    nan = X.copy()
    nan[0, 3] = np.nan
    for bad in (scaled, reflected, bottom, nan, np.eye(3), np.stack([X, scaled])):
        assert not is_rigid_transform(bad)
    nearly = X.copy()
    nearly[:3, :3] *= 1 + 1e-8
    assert is_rigid_transform(nearly) and not is_rigid_transform(nearly, atol=1e-10)
