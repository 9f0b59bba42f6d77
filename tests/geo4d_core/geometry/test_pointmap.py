"""Tests for geo4d_core.geometry.pointmap: depth ⇄ pointmap, rigid transforms, view m → view n."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4d_core.geometry import (
    depth_to_pointmap,
    invert_pose,
    make_pose,
    pointmap_m_to_n,
    pointmap_to_depth,
    relative_pose,
    transform_points,
)

SETTINGS = settings(max_examples=50, deadline=None)


def _explicit_pointmap(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Reference: p = depth * K^{-1} [u, v, 1]^T for every pixel, with a per-pixel matrix product."""
    H, W = depth.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    rays = pix @ np.linalg.inv(K).T
    return rays * depth[..., None]


# -- depth ⇄ pointmap ----------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_depth_pointmap_depth_round_trip(geo, data, dtype):
    cam = data.draw(geo.camera())
    depth = data.draw(geo.depth(cam.height, cam.width, dtype=dtype))
    points, valid = depth_to_pointmap(depth, cam.K)
    assert points.shape == (cam.height, cam.width, 3) and points.dtype == dtype
    assert points.flags.c_contiguous
    np.testing.assert_array_equal(valid, depth > 0)
    assert np.all(points[~valid] == 0.0)
    back = pointmap_to_depth(points, valid)
    assert back.dtype == dtype
    np.testing.assert_allclose(back, depth, rtol=1e-6, atol=0.0)
    np.testing.assert_array_equal(back > 0, valid)
    # Without the mask the z <= 0 rule alone recovers the same depth.
    np.testing.assert_allclose(pointmap_to_depth(points), depth, rtol=1e-6, atol=0.0)


@SETTINGS
@given(data=st.data())
def test_depth_to_pointmap_matches_explicit_inverse_intrinsics(geo, data):
    cam = data.draw(geo.camera())
    depth = data.draw(geo.depth(cam.height, cam.width))
    points, valid = depth_to_pointmap(depth, cam.K)
    np.testing.assert_allclose(points, _explicit_pointmap(depth, cam.K), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=st.data())
def test_skewed_K_matches_explicit_inverse(geo, data):
    cam = data.draw(geo.camera(skew=True))
    depth = data.draw(geo.depth(cam.height, cam.width))
    points, valid = depth_to_pointmap(depth, cam.K)
    np.testing.assert_allclose(points, _explicit_pointmap(depth, cam.K), rtol=1e-12, atol=1e-12)
    points_t, valid_t = depth_to_pointmap(torch.from_numpy(depth), torch.from_numpy(cam.K))
    np.testing.assert_allclose(points_t.numpy(), points, rtol=1e-12, atol=1e-12)


def test_skew_actually_changes_x():
    K = np.array([[100.0, 0.0, 10.0], [0.0, 100.0, 8.0], [0.0, 0.0, 1.0]])
    K_skew = K.copy()
    K_skew[0, 1] = 20.0
    depth = np.full((16, 20), 2.0)
    p0, _ = depth_to_pointmap(depth, K)
    p1, _ = depth_to_pointmap(depth, K_skew)
    # Row v = 13 (y_n = 0.05): x_n = (u - cx - s y_n) / fx shifts by -s * y_n / fx = -0.01, times z = 2.
    np.testing.assert_allclose(p1[13, :, 0] - p0[13, :, 0], -0.02, atol=1e-12)
    np.testing.assert_allclose(p1[..., 1:], p0[..., 1:], atol=1e-15)


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_numpy_and_torch_agree(geo, data, dtype):
    cam = data.draw(geo.camera(skew=data.draw(st.booleans())))
    depth = data.draw(geo.depth(cam.height, cam.width))
    points, valid = depth_to_pointmap(depth, cam.K)
    depth_t = torch.from_numpy(depth).to(dtype)
    points_t, valid_t = depth_to_pointmap(depth_t, cam.K)  # K stays numpy: converted to depth's dtype
    assert isinstance(points_t, torch.Tensor) and points_t.dtype == dtype
    assert valid_t.dtype == torch.bool
    np.testing.assert_array_equal(valid_t.numpy(), valid)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(points_t.numpy(), points, rtol=tol, atol=tol)
    back_t = pointmap_to_depth(points_t, valid_t)
    assert isinstance(back_t, torch.Tensor) and back_t.dtype == dtype
    np.testing.assert_allclose(back_t.numpy(), depth, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_batched_equals_per_item(geo, data):
    cams = [data.draw(geo.camera(size=(24, 32), skew=data.draw(st.booleans()))) for _ in range(3)]
    depth = data.draw(geo.depth(24, 32, batch=(3,)))
    K = np.stack([c.K for c in cams])
    points, valid = depth_to_pointmap(depth, K)
    assert points.shape == (3, 24, 32, 3) and valid.shape == (3, 24, 32)
    for b in range(3):
        p_b, v_b = depth_to_pointmap(depth[b], cams[b].K)
        np.testing.assert_array_equal(points[b], p_b)
        np.testing.assert_array_equal(valid[b], v_b)
    # One K for the whole batch.
    points_1, _ = depth_to_pointmap(depth, cams[0].K)
    for b in range(3):
        np.testing.assert_array_equal(points_1[b], depth_to_pointmap(depth[b], cams[0].K)[0])
    # A batch of K over one depth image (broadcast); the mask is a writable array of full shape.
    for d, Ks in ((depth[0], K), (torch.from_numpy(depth[0]), torch.from_numpy(K))):
        points_k, valid_k = depth_to_pointmap(d, Ks)
        assert tuple(points_k.shape) == (3, 24, 32, 3) and tuple(valid_k.shape) == (3, 24, 32)
        valid_k &= valid_k  # writable, not a broadcast view
        for b in range(3):
            np.testing.assert_allclose(np.asarray(points_k[b]), depth_to_pointmap(depth[0], K[b])[0], atol=1e-12)
            np.testing.assert_array_equal(np.asarray(valid_k[b]), depth[0] > 0)
    # torch batched matches numpy batched.
    points_t, valid_t = depth_to_pointmap(torch.from_numpy(depth), torch.from_numpy(K))
    np.testing.assert_allclose(points_t.numpy(), points, rtol=1e-12, atol=1e-12)


def test_invalid_depth_values_give_zero_points():
    K = np.array([[200.0, 0.0, 3.5], [0.0, 200.0, 2.5], [0.0, 0.0, 1.0]])
    depth = np.ones((6, 8), dtype=np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2], depth[3, 3], depth[4, 4] = 0.0, np.nan, np.inf, -1.0, -np.inf
    for d in (depth, torch.from_numpy(depth)):
        points, valid = depth_to_pointmap(d, K)
        points, valid = np.asarray(points), np.asarray(valid)
        assert not np.any(np.isnan(points))
        assert valid.sum() == 48 - 5
        for i in range(5):
            assert not valid[i, i]
            np.testing.assert_array_equal(points[i, i], 0.0)
        np.testing.assert_allclose(points[5, 7], [(7 - 3.5) / 200, (5 - 2.5) / 200, 1.0], rtol=1e-6)
    # Negative depths only (all finite) use the multiply-by-mask path: still exactly zero.
    depth2 = np.where(np.arange(48).reshape(6, 8) % 3 == 0, -2.0, 1.5)
    points2, valid2 = depth_to_pointmap(depth2, K)
    assert np.all(points2[~valid2] == 0.0) and np.all(points2[valid2][:, 2] == 1.5)


def test_pointmap_to_depth_masks_and_bad_z():
    points = np.zeros((2, 3, 3))
    points[..., 2] = [[1.0, -1.0, np.nan], [np.inf, 2.0, 3.0]]
    np.testing.assert_array_equal(pointmap_to_depth(points), [[1.0, 0.0, 0.0], [0.0, 2.0, 3.0]])
    mask = np.array([[True, True, True], [True, False, True]])
    np.testing.assert_array_equal(pointmap_to_depth(points, mask), [[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    with pytest.raises(ValueError, match="valid must have shape"):
        pointmap_to_depth(points, mask[:1])


def test_bad_inputs_are_rejected_with_clear_errors():
    K = np.array([[100.0, 0.0, 10.0], [0.0, 100.0, 8.0], [0.0, 0.0, 1.0]])
    with pytest.raises(TypeError, match="millimetres"):
        depth_to_pointmap(np.ones((4, 5), dtype=np.uint16), K)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        depth_to_pointmap(np.ones((4, 5)), np.eye(4))
    bad = K.copy()
    bad[2, 0] = 0.5
    with pytest.raises(ValueError, match="upper-triangular"):
        depth_to_pointmap(np.ones((4, 5)), bad)
    bad = K.copy()
    bad[0, 0] = -100.0
    with pytest.raises(ValueError, match="positive focal"):
        depth_to_pointmap(np.ones((4, 5)), bad)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        depth_to_pointmap(np.ones(5), K)


# -- transforms -----------------------------------------------------------------------------------


def test_transform_points_known_values():
    # B is A rotated +90 degrees about z and shifted by (1, 2, 3): x_B = y_A, y_B = -x_A.
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    X_AB = make_pose(R, np.array([1.0, 2.0, 3.0]))
    p_B = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(transform_points(X_AB, p_B), expected, atol=1e-15)
    np.testing.assert_allclose(transform_points(torch.from_numpy(X_AB), torch.from_numpy(p_B)).numpy(),
                               expected, atol=1e-15)


@SETTINGS
@given(data=st.data(), n=st.sampled_from([0, 1, 5, 127, 128, 129, 1000, 1024]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_transform_points_matches_homogeneous_product(geo, data, n, dtype):
    X = data.draw(geo.rigid_pose())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    p = rng.uniform(-2, 2, (n, 3)).astype(dtype)
    expected = (np.concatenate([p, np.ones((n, 1))], axis=1) @ X.T)[:, :3]
    out = transform_points(X, p)
    assert out.dtype == dtype and out.shape == (n, 3)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    # Any leading shape.
    p4 = rng.uniform(-2, 2, (2, 3, 7, 3)).astype(dtype)
    out4 = transform_points(X, p4)
    np.testing.assert_allclose(out4.reshape(-1, 3), transform_points(X, p4.reshape(-1, 3)), rtol=tol, atol=tol)
    out_t = transform_points(torch.from_numpy(X), torch.from_numpy(p))
    assert out_t.dtype == torch.from_numpy(p).dtype
    np.testing.assert_allclose(out_t.numpy(), expected, rtol=10 * tol, atol=10 * tol)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_transform_points_batched_equals_per_item(geo, data):
    Xs = np.stack([data.draw(geo.rigid_pose()) for _ in range(4)])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    p = rng.uniform(-2, 2, (4, 5, 300, 3))
    out = transform_points(Xs, p)
    assert out.shape == p.shape
    for b in range(4):
        np.testing.assert_allclose(out[b], transform_points(Xs[b], p[b]), rtol=1e-12, atol=1e-12)
    out_t = transform_points(torch.from_numpy(Xs), torch.from_numpy(p))
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-12, atol=1e-12)
    # A size-1 batch of poses broadcasts over the points' batch.
    np.testing.assert_allclose(transform_points(Xs[:1], p)[2], transform_points(Xs[0], p[2]), atol=1e-12)
    with pytest.raises(ValueError, match="leading dims"):
        transform_points(Xs, p[:3])


def test_transform_points_shape_errors():
    with pytest.raises(ValueError, match="X_AB must have shape"):
        transform_points(np.eye(3), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="p_B must have shape"):
        transform_points(np.eye(4), np.zeros((5, 4)))


def test_transform_points_torch_is_differentiable():
    X = torch.eye(4, dtype=torch.float64)
    X[:3, 3] = torch.tensor([0.1, 0.2, 0.3])
    p = torch.rand(10, 3, dtype=torch.float64, requires_grad=True)
    transform_points(X, p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), 1.0)
    # Batched poses with autograd (the non-numpy torch path) agree with numpy.
    Xs = torch.stack([X, torch.linalg.inv(X)])
    q = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    out = transform_points(Xs, q)
    assert out.requires_grad
    np.testing.assert_allclose(out.detach().numpy(), transform_points(Xs.numpy(), q.detach().numpy()), atol=1e-12)
    # A non-contiguous tensor.
    r = torch.rand(3, 5, 4, dtype=torch.float32)[..., 1:]
    np.testing.assert_allclose(transform_points(X, r).numpy(), transform_points(X.numpy(), r.numpy()), atol=1e-6)


@SETTINGS
@given(data=st.data())
def test_relative_pose(geo, data):
    X_WA, X_WB = data.draw(geo.rigid_pose()), data.draw(geo.rigid_pose())
    X_AB = relative_pose(X_WA, X_WB)
    np.testing.assert_allclose(X_WA @ X_AB, X_WB, atol=1e-12)
    np.testing.assert_allclose(X_AB, np.linalg.inv(X_WA) @ X_WB, atol=1e-12)
    batched = relative_pose(np.stack([X_WA, X_WB]), np.stack([X_WB, X_WA]))
    np.testing.assert_allclose(batched[1], invert_pose(X_AB), atol=1e-12)


# -- view m → view n --------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_pointmap_m_to_n_round_trip_and_world_consistency(geo, data):
    cam_m, cam_n = data.draw(geo.camera_pair())
    depth = data.draw(geo.depth(cam_m.height, cam_m.width))
    points_Cm, valid = depth_to_pointmap(depth, cam_m.K)
    points_Cn = pointmap_m_to_n(points_Cm, cam_n.X_WC, cam_m.X_WC, valid)
    assert np.all(points_Cn[~valid] == 0.0)
    # Same world points either way.
    np.testing.assert_allclose(
        transform_points(cam_n.X_WC, points_Cn)[valid], transform_points(cam_m.X_WC, points_Cm)[valid],
        atol=1e-9,
    )
    # And back into m: the original pointmap, sub-millimetre (here: to float precision).
    back = pointmap_m_to_n(points_Cn, cam_m.X_WC, cam_n.X_WC, valid)
    assert np.max(np.abs(back - points_Cm)) < 1e-4
    np.testing.assert_allclose(back, points_Cm, atol=1e-9)
    # float32 / torch path also sub-millimetre.
    points_t = pointmap_m_to_n(torch.from_numpy(points_Cm.astype(np.float32)), cam_n.X_WC, cam_m.X_WC,
                               torch.from_numpy(valid))
    assert points_t.dtype == torch.float32
    assert np.max(np.abs(points_t.numpy() - points_Cn)) < 1e-4


def test_pointmap_m_to_n_without_mask_moves_placeholders_to_camera_m_centre():
    X_WCn = np.eye(4)
    X_WCm = make_pose(np.eye(3), np.array([0.5, 0.0, 0.0]))
    points = np.zeros((2, 2, 3))
    out = pointmap_m_to_n(points, X_WCn, X_WCm)
    np.testing.assert_allclose(out, np.broadcast_to([0.5, 0.0, 0.0], (2, 2, 3)))
    out_masked = pointmap_m_to_n(points, X_WCn, X_WCm, np.zeros((2, 2), bool))
    np.testing.assert_array_equal(out_masked, 0.0)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_pointmap_m_to_n_batched_poses(geo, data):
    T = 3
    size = (24, 32)
    cams = [(data.draw(geo.camera(size=size)), data.draw(geo.camera(size=size))) for _ in range(T)]
    depth = data.draw(geo.depth(*size, batch=(T,)))
    K = np.stack([m.K for m, _ in cams])
    points_Cm, valid = depth_to_pointmap(depth, K)
    X_WCn = np.stack([n.X_WC for _, n in cams])
    X_WCm = np.stack([m.X_WC for m, _ in cams])
    out = pointmap_m_to_n(points_Cm, X_WCn, X_WCm, valid)
    for t in range(T):
        np.testing.assert_allclose(
            out[t], pointmap_m_to_n(points_Cm[t], X_WCn[t], X_WCm[t], valid[t]), atol=1e-12
        )


def test_float32_pointmap_precision_is_sub_millimetre():
    K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
    depth = np.full((480, 640), 2.5, dtype=np.float32)
    points, _ = depth_to_pointmap(depth, K)
    ref = _explicit_pointmap(depth.astype(np.float64), K)
    assert np.max(np.abs(points - ref)) < 1e-5
    assert math.isclose(float(points[0, 0, 0]), -319.5 / 525.0 * 2.5, rel_tol=1e-6)
