"""Tests for geo4d_core.geometry.projection: projection, unprojection, splatting, cross-view checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4d_core.geometry import (
    apply_projection_matrix,
    decompose_projection_matrix,
    depth_to_pointmap,
    fit_projection_matrix,
    invert_pose,
    pointmap_m_to_n,
    project_points,
    project_world_points,
    splat_to_depth,
    transform_points,
    unproject_points,
)

SETTINGS = settings(max_examples=50, deadline=None)


def _pixel_grid(height: int, width: int) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([u, v], axis=-1)


@SETTINGS
@given(data=st.data())
def test_projecting_a_pointmap_gives_back_its_pixel_grid(geo, data):
    cam = data.draw(geo.camera(skew=data.draw(st.booleans())))
    depth = data.draw(geo.depth(cam.height, cam.width))
    points, valid = depth_to_pointmap(depth, cam.K)
    uv, z, in_image = project_points(points, cam.K, cam.height, cam.width)
    assert uv.shape == (cam.height, cam.width, 2) and z.shape == in_image.shape == valid.shape
    assert np.max(np.abs(uv[valid] - _pixel_grid(cam.height, cam.width)[valid]), initial=0.0) < 1e-3
    np.testing.assert_allclose(z, depth, rtol=1e-12)
    np.testing.assert_array_equal(in_image, valid)
    # Invalid (0, 0, 0) points are behind-or-on the camera plane: uv = 0, never NaN.
    assert np.all(uv[~valid] == 0.0)


@SETTINGS
@given(data=st.data())
def test_world_point_seen_by_two_cameras_is_recovered_from_each(geo, data):
    cam_m, cam_n = data.draw(geo.camera_pair())
    p_W = data.draw(geo.world_points())
    for cam in (cam_m, cam_n):
        uv, z, in_image = project_world_points(p_W, cam.K, cam.X_WC, cam.height, cam.width)
        assert np.all(z > 0.3)
        p_C = unproject_points(uv, z, cam.K)
        p_W_back = transform_points(cam.X_WC, p_C)
        assert np.max(np.abs(p_W_back - p_W)) < 1e-4
        np.testing.assert_allclose(p_W_back, p_W, atol=1e-10)
    # The point seen in m, moved into n's frame, projects where n sees it.
    uv_m, z_m, _ = project_world_points(p_W, cam_m.K, cam_m.X_WC, cam_m.height, cam_m.width)
    p_Cn = pointmap_m_to_n(unproject_points(uv_m, z_m, cam_m.K), cam_n.X_WC, cam_m.X_WC)
    uv_n_direct, _, _ = project_world_points(p_W, cam_n.K, cam_n.X_WC, cam_n.height, cam_n.width)
    uv_n_via_m, _, _ = project_points(p_Cn, cam_n.K, cam_n.height, cam_n.width)
    assert np.max(np.abs(uv_n_via_m - uv_n_direct)) < 1e-3


@SETTINGS
@given(data=st.data())
def test_project_unproject_round_trip_and_torch_agreement(geo, data):
    cam = data.draw(geo.camera(skew=True))
    p_W = data.draw(geo.world_points())
    p_C = transform_points(invert_pose(cam.X_WC), p_W)
    uv, z, in_image = project_points(p_C, cam.K, cam.height, cam.width)
    np.testing.assert_allclose(unproject_points(uv, z, cam.K), p_C, atol=1e-12)
    # Reference projection: K p / z.
    hom = p_C @ cam.K.T
    np.testing.assert_allclose(uv, hom[:, :2] / hom[:, 2:], rtol=1e-12, atol=1e-9)
    uv_t, z_t, in_t = project_points(torch.from_numpy(p_C), torch.from_numpy(cam.K), cam.height, cam.width)
    assert isinstance(uv_t, torch.Tensor) and uv_t.dtype == torch.float64
    np.testing.assert_allclose(uv_t.numpy(), uv, atol=1e-9)
    np.testing.assert_array_equal(in_t.numpy(), in_image)
    uv_w, _, _ = project_world_points(torch.from_numpy(p_W), cam.K, torch.from_numpy(cam.X_WC),
                                      cam.height, cam.width)
    np.testing.assert_allclose(uv_w.numpy(), uv, atol=1e-9)


def test_points_behind_or_on_the_camera_plane():
    K = np.array([[100.0, 0.0, 16.0], [0.0, 100.0, 12.0], [0.0, 0.0, 1.0]])
    p = np.array([[0.1, 0.2, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [np.nan, 0.0, 1.0], [0.0, 0.0, 1.0],
                  [1e300, 0.0, 1e-300]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uv, z, in_image = project_points(p, K, 24, 32)
    assert np.all(np.isfinite(uv))
    np.testing.assert_array_equal(uv[[0, 1, 2, 3, 5]], 0.0)
    np.testing.assert_array_equal(in_image, [False, False, False, False, True, False])
    np.testing.assert_array_equal(z[:3], [-1.0, 0.0, 0.0])
    np.testing.assert_allclose(uv[4], [16.0, 12.0])
    uv_t, _, in_t = project_points(torch.from_numpy(p), K, 24, 32)
    assert torch.isfinite(uv_t).all()
    np.testing.assert_array_equal(in_t.numpy(), in_image)


def test_in_image_uses_pixel_area_boundaries():
    # fx = 128 and half-integer principal points make every coordinate exactly representable.
    K = np.array([[128.0, 0.0, 15.5], [0.0, 128.0, 11.5], [0.0, 0.0, 1.0]])
    H, W = 24, 32
    u = np.array([-0.5, -0.5 - 2**-10, W - 0.5, W - 0.5 - 2**-10, 0.0, 0.0])
    v = np.array([0.0, 0.0, 0.0, 0.0, H - 0.5, -0.5])
    p = np.stack([(u - 15.5) / 128.0, (v - 11.5) / 128.0, np.ones_like(u)], axis=-1)
    uv, _, in_image = project_points(p, K, H, W)
    np.testing.assert_array_equal(uv[:, 0], u)
    np.testing.assert_array_equal(in_image, [True, False, False, True, False, True])


def test_batched_K_pairs_with_leading_dim():
    K = np.array([[[100.0, 0.0, 16.0], [0.0, 100.0, 12.0], [0.0, 0.0, 1.0]],
                  [[200.0, 0.0, 10.0], [0.0, 150.0, 5.0], [0.0, 0.0, 1.0]]])
    p = np.random.default_rng(0).uniform(-0.1, 0.1, (2, 7, 3)) + [0.0, 0.0, 1.0]
    uv, z, in_image = project_points(p, K, 24, 32)
    for b in range(2):
        np.testing.assert_allclose(uv[b], project_points(p[b], K[b], 24, 32)[0], atol=1e-12)
    with pytest.raises(ValueError, match="leading dims"):
        project_points(p[0, 0], K, 24, 32)


@SETTINGS
@given(data=st.data())
def test_splat_renders_a_pointmap_back_to_its_depth(geo, data):
    cam = data.draw(geo.camera())
    depth = data.draw(geo.depth(cam.height, cam.width))
    points, valid = depth_to_pointmap(depth, cam.K)
    rendered = splat_to_depth(points, cam.K, cam.height, cam.width)
    assert rendered.shape == depth.shape and rendered.dtype == depth.dtype
    np.testing.assert_allclose(rendered, depth, rtol=1e-12)


@SETTINGS
@given(data=st.data())
def test_splat_cross_view_matches_direct_rendering(geo, data):
    # Splatting view m's points moved into n equals splatting the same world points from n directly.
    cam_m, cam_n = data.draw(geo.camera_pair())
    depth = data.draw(geo.depth(cam_m.height, cam_m.width))
    points_Cm, valid = depth_to_pointmap(depth, cam_m.K)
    points_Cn = pointmap_m_to_n(points_Cm, cam_n.X_WC, cam_m.X_WC, valid)[valid]
    p_Cn_direct = transform_points(invert_pose(cam_n.X_WC), transform_points(cam_m.X_WC, points_Cm[valid]))
    uv_via_m, _, _ = project_points(points_Cn, cam_n.K, cam_n.height, cam_n.width)
    uv_direct, _, seen = project_points(p_Cn_direct, cam_n.K, cam_n.height, cam_n.width)
    assert np.max(np.abs(uv_via_m - uv_direct)[seen], initial=0.0) < 1e-6
    # Drop the (rare) points within 1e-6 px of a pixel border: rounding may put them on either side.
    frac = np.mod(uv_direct + 0.5, 1.0)
    clear = np.all((frac > 1e-6) & (frac < 1 - 1e-6), axis=-1)
    via_m = splat_to_depth(points_Cn[clear], cam_n.K, cam_n.height, cam_n.width)
    direct = splat_to_depth(p_Cn_direct[clear], cam_n.K, cam_n.height, cam_n.width)
    np.testing.assert_allclose(via_m, direct, atol=1e-9)


def test_splat_z_buffer_keeps_the_nearest_point():
    K = np.array([[10.0, 0.0, 1.0], [0.0, 10.0, 1.0], [0.0, 0.0, 1.0]])
    # Three points on pixel (row 1, col 1) at z = 2, 1, 3; one at pixel (0, 2); one behind; one outside.
    p = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.2, -0.2, 2.0], [0.0, 0.0, -1.0],
                  [5.0, 0.0, 1.0]], dtype=np.float32)
    depth = splat_to_depth(p, K, 3, 3)
    expected = np.zeros((3, 3), dtype=np.float32)
    expected[1, 1], expected[0, 2] = 1.0, 2.0
    np.testing.assert_array_equal(depth, expected)
    assert depth.dtype == np.float32
    # Nearest pixel: u = 1.49 -> col 1, u = 1.5 -> col 2.
    q = np.array([[0.049, 0.0, 1.0], [0.05, 0.0, 1.0]])
    d2 = splat_to_depth(q[:1], K, 3, 3), splat_to_depth(q[1:], K, 3, 3)
    assert d2[0][1, 1] == 1.0 and d2[1][1, 2] == 1.0
    with pytest.raises(TypeError, match="numpy only"):
        splat_to_depth(torch.from_numpy(p), K, 3, 3)


@SETTINGS
@given(data=st.data())
def test_camera_matrix_fitted_to_a_pointmap_in_another_frame_maps_it_back_to_its_pixels(geo, data):
    cam_m, cam_n = data.draw(geo.camera_pair())
    depth = data.draw(geo.depth(cam_m.height, cam_m.width))
    points_m, valid = depth_to_pointmap(depth, cam_m.K)
    if valid.sum() < 40:
        return
    # In its own frame: P = [K | 0] up to scale (normalised so that the third row gives the depth).
    P, rms = fit_projection_matrix(points_m, valid)
    assert rms < 1e-4
    np.testing.assert_allclose(P, np.hstack([cam_m.K, np.zeros((3, 1))]), atol=1e-4 * np.abs(cam_m.K).max())
    # View m's points in camera n's frame: P maps them back to view m's pixel grid and depth.
    points_in_n = pointmap_m_to_n(points_m, cam_n.X_WC, cam_m.X_WC, valid)
    P, rms = fit_projection_matrix(points_in_n, valid)
    assert rms < 1e-4
    uv, z = apply_projection_matrix(P, points_in_n[valid])
    np.testing.assert_allclose(uv, _pixel_grid(cam_m.height, cam_m.width)[valid], atol=1e-3)
    np.testing.assert_allclose(z, depth[valid], rtol=1e-6)
    # ... and factors into view m's own intrinsics and camera n's frame seen from camera m.
    K_m, X_mn = decompose_projection_matrix(P)
    np.testing.assert_allclose(K_m, cam_m.K, atol=1e-4 * np.abs(cam_m.K).max())
    np.testing.assert_allclose(X_mn, invert_pose(cam_m.X_WC) @ cam_n.X_WC, atol=1e-5)


def test_decomposing_a_camera_matrix_refuses_what_is_not_a_camera():
    K = np.array([[200.0, 0.0, 15.5], [0.0, 210.0, 11.5], [0.0, 0.0, 1.0]])
    X = invert_pose(np.array([[0.0, -1.0, 0.0, 0.1], [1.0, 0.0, 0.0, -0.2], [0.0, 0.0, 1.0, 0.3], [0, 0, 0, 1.0]]))
    P = 3.0 * K @ X[:3]  # any positive scale
    K_back, X_back = decompose_projection_matrix(P)
    np.testing.assert_allclose(K_back, K, atol=1e-9)
    np.testing.assert_allclose(X_back, X, atol=1e-12)
    with pytest.raises(ValueError, match="singular"):
        decompose_projection_matrix(np.hstack([np.zeros((3, 3)), np.ones((3, 1))]))
    with pytest.raises(ValueError, match="mirrored"):
        decompose_projection_matrix(K @ np.diag([-1.0, 1.0, 1.0]) @ X[:3])
    with pytest.raises(ValueError, match="3x4"):
        decompose_projection_matrix(np.eye(3))


def test_camera_matrix_fit_needs_points_that_determine_a_camera():
    K = np.array([[200.0, 0.0, 15.5], [0.0, 200.0, 11.5], [0.0, 0.0, 1.0]])
    flat = np.full((24, 32), 0.8)  # one plane: a homography, not a camera
    points, valid = depth_to_pointmap(flat, K)
    assert fit_projection_matrix(points, valid) == (None, float("inf"))
    few = np.zeros_like(valid)
    few[0, :11] = True
    assert fit_projection_matrix(points, few)[0] is None
    # Noisy points: still the camera, with the noise in the reprojection error.
    depth = 0.8 + 0.2 * np.random.default_rng(0).random((24, 32))
    points, valid = depth_to_pointmap(depth, K)
    noisy = points + np.random.default_rng(1).normal(0.0, 0.002, points.shape)
    P, rms = fit_projection_matrix(noisy, valid)
    assert 0.05 < rms < 2.0
    np.testing.assert_allclose(P[:, :3], K, atol=0.05 * 200)
    with pytest.raises(ValueError, match="must be"):
        fit_projection_matrix(points.reshape(-1, 3), valid.reshape(-1))
