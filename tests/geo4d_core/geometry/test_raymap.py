"""Tests for geo4d_core.geometry.raymap: camera → ray map → camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4d_core.geometry import (
    camera_from_raymap,
    depth_to_pointmap,
    make_pose,
    raymap_from_camera,
    transform_points,
)

SETTINGS = settings(max_examples=50, deadline=None)
KINDS = ["plucker", "origin_direction"]


def _assert_camera_close(K, X_WC, K_ref, X_ref, rtol=1e-6):
    np.testing.assert_allclose(K, K_ref, rtol=rtol, atol=rtol * np.abs(K_ref).max())
    np.testing.assert_allclose(X_WC[:3, :3], X_ref[:3, :3], atol=rtol)
    np.testing.assert_allclose(X_WC[:3, 3], X_ref[:3, 3], atol=rtol * max(1.0, np.abs(X_ref[:3, 3]).max()))
    np.testing.assert_array_equal(X_WC[3], [0.0, 0.0, 0.0, 1.0])


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_raymap_camera_raymap_round_trip(geo, data, kind):
    cam = data.draw(geo.camera(skew=data.draw(st.booleans())))
    raymap = raymap_from_camera(cam.K, cam.X_WC, cam.height, cam.width, kind=kind)
    assert raymap.shape == (cam.height, cam.width, 6) and raymap.dtype == np.float64
    K, X_WC = camera_from_raymap(raymap, kind=kind)
    _assert_camera_close(K, X_WC, cam.K, cam.X_WC, rtol=1e-8)
    again = raymap_from_camera(K, X_WC, cam.height, cam.width, kind=kind)
    np.testing.assert_allclose(again, raymap, atol=1e-8)


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_raymap_geometry(geo, data, kind):
    cam = data.draw(geo.camera(skew=data.draw(st.booleans())))
    raymap = raymap_from_camera(cam.K, cam.X_WC, cam.height, cam.width, kind=kind)
    o = cam.X_WC[:3, 3]
    if kind == "origin_direction":
        np.testing.assert_allclose(raymap[..., :3], np.broadcast_to(o, raymap.shape[:2] + (3,)))
        d = raymap[..., 3:]
    else:
        d, m = raymap[..., :3], raymap[..., 3:]
        np.testing.assert_allclose(m, np.cross(o, d), atol=1e-12)
        np.testing.assert_allclose(np.sum(m * d, axis=-1), 0.0, atol=1e-12)  # moment ⊥ direction
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
    # Each ray passes through the pixel's 3D point at any depth: (p - o) ∥ d, pointing forward.
    depth = np.full((cam.height, cam.width), 1.7)
    points_C, _ = depth_to_pointmap(depth, cam.K)
    p_W = transform_points(cam.X_WC, points_C)
    to_point = (p_W - o) / np.linalg.norm(p_W - o, axis=-1, keepdims=True)
    np.testing.assert_allclose(to_point, d, atol=1e-12)


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_numpy_and_torch_raymaps_agree(geo, data, kind):
    cam = data.draw(geo.camera(skew=True))
    ref = raymap_from_camera(cam.K, cam.X_WC, cam.height, cam.width, kind=kind)
    r64 = raymap_from_camera(torch.from_numpy(cam.K), torch.from_numpy(cam.X_WC), cam.height, cam.width, kind)
    assert isinstance(r64, torch.Tensor) and r64.dtype == torch.float64
    np.testing.assert_allclose(r64.numpy(), ref, atol=1e-12)
    r32 = raymap_from_camera(torch.from_numpy(cam.K).float(), torch.from_numpy(cam.X_WC).float(),
                             cam.height, cam.width, kind)
    assert r32.dtype == torch.float32
    np.testing.assert_allclose(r32.numpy(), ref, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_batched_raymap_equals_per_item(geo, data, kind):
    cams = [data.draw(geo.camera(size=(24, 32))) for _ in range(3)]
    K = np.stack([c.K for c in cams])
    X = np.stack([c.X_WC for c in cams])
    batched = raymap_from_camera(K, X, 24, 32, kind=kind)
    assert batched.shape == (3, 24, 32, 6)
    for b, c in enumerate(cams):
        np.testing.assert_allclose(batched[b], raymap_from_camera(c.K, c.X_WC, 24, 32, kind=kind), atol=1e-14)
    # One K, several poses.
    shared = raymap_from_camera(cams[0].K, X, 24, 32, kind=kind)
    np.testing.assert_allclose(shared[2], raymap_from_camera(cams[0].K, X[2], 24, 32, kind=kind), atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_camera_recovery_at_full_resolution_and_float32(kind):
    K = np.array([[525.0, 0.0, 319.5], [0.0, 520.0, 239.5], [0.0, 0.0, 1.0]])
    X_WC = make_pose(np.array([[0.0, -0.6, 0.8], [-1.0, 0.0, 0.0], [0.0, -0.8, -0.6]]), np.array([0.9, 0.1, 0.7]))
    raymap = raymap_from_camera(K, X_WC, 480, 640, kind=kind)
    K_rec, X_rec = camera_from_raymap(raymap, kind=kind)
    _assert_camera_close(K_rec, X_rec, K, X_WC, rtol=1e-9)
    # A float32 ray map (what a network would output) still gives the camera to ~1e-5.
    K32, X32 = camera_from_raymap(raymap.astype(np.float32), kind=kind)
    _assert_camera_close(K32, X32, K, X_WC, rtol=2e-4)
    # Small noise on the rays: a least-squares estimate close to the truth.
    noisy = raymap + np.random.default_rng(0).normal(scale=1e-5, size=raymap.shape)
    K_n, X_n = camera_from_raymap(noisy, kind=kind)
    _assert_camera_close(K_n, X_n, K, X_WC, rtol=1e-2)


def test_bad_inputs():
    K = np.array([[100.0, 0.0, 10.0], [0.0, 100.0, 8.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="kind"):
        raymap_from_camera(K, np.eye(4), 4, 5, kind="rays")
    with pytest.raises(ValueError, match="kind"):
        camera_from_raymap(np.zeros((4, 5, 6)), kind="rays")
    with pytest.raises(ValueError, match=r"\(H, W, 6\)"):
        camera_from_raymap(np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="at least 2x2"):
        camera_from_raymap(raymap_from_camera(K, np.eye(4), 1, 5))
    with pytest.raises(TypeError, match="numpy only"):
        camera_from_raymap(torch.zeros(4, 5, 6))
    with pytest.raises(ValueError, match="X_WC must have shape"):
        raymap_from_camera(K, np.eye(3), 4, 5)
