"""numpy ⇄ ROS message conversions: exact round trips, padded rows, byte order, clear errors, and an
Image published by a real rclpy publisher arriving bit-exact on loopback."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from geo4d_ros.conversions import (
    ConversionError,
    K_to_camera_info,
    camera_info_to_K,
    depth_to_image,
    gripper_joint_state,
    image_to_depth,
    image_to_rgb,
    path_stamps,
    path_to_poses,
    pose_array_to_poses,
    pointcloud2_to_points,
    points_to_pointcloud2,
    poses_to_path,
    poses_to_pose_array,
    rgb_to_image,
    seconds_to_stamp,
    stamp_to_ns,
    stamp_to_seconds,
)
from geo4d_ros.env import apply_loopback_env

RNG = np.random.default_rng(7)
STAMP = Time(sec=1_700_000_000, nanosec=123_456_789)


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """Build an Image by hand (independently of the code under test) with `pad` bytes per row."""
    h, w = pixels.shape[:2]
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([wire, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return Image(
        height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes()
    )


# ----------------------------------------------------------------------------------------------- time


def test_stamp_seconds_round_trip_is_nanosecond_exact():
    assert stamp_to_ns(STAMP) == 1_700_000_000_123_456_789
    assert stamp_to_seconds(STAMP) == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    for seconds in (0.0, 0.5, 12.000000001, 1_700_000_000.25, 3.9999999999):
        stamp = seconds_to_stamp(seconds)
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert abs(stamp_to_seconds(stamp) - seconds) <= 1e-9 * max(1.0, seconds) + 1e-9
    assert seconds_to_stamp(3.9999999999) == Time(sec=4, nanosec=0)
    assert seconds_to_stamp(stamp_to_seconds(Time(sec=5, nanosec=250_000_000))) == Time(sec=5, nanosec=250_000_000)
    for bad in (-1.0, math.nan, math.inf, 2.0**33):
        with pytest.raises(ConversionError, match="stamp seconds"):
            seconds_to_stamp(bad)
    with pytest.raises(ConversionError, match="stamp must be"):
        stamp_to_seconds("now")


# --------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_round_trip(encoding):
    rgb = _rgb()
    msg = rgb_to_image(rgb, STAMP, "camera_n_color_optical_frame", encoding=encoding)
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == (encoding, 5, 7, 21, 0)
    assert msg.header.frame_id == "camera_n_color_optical_frame" and msg.header.stamp == STAMP
    out = image_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_channel_order_on_the_wire():
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # pure red
    rgb[0, 1] = (1, 2, 3)
    msg = rgb_to_image(rgb, 0.0, "f", encoding="bgr8")
    assert bytes(msg.data) == bytes([0, 0, 255, 3, 2, 1])
    hand_made = _raw_image(np.array([[[0, 0, 255], [3, 2, 1]]], np.uint8), "bgr8")
    np.testing.assert_array_equal(image_to_rgb(hand_made), rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_with_padded_step(encoding):
    rgb = _rgb(4, 5)
    wire = rgb[..., ::-1] if encoding == "bgr8" else rgb
    msg = _raw_image(np.ascontiguousarray(wire), encoding, pad=3)
    assert msg.step == 5 * 3 + 3
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous and out.flags.writeable


def test_16uc1_millimetres_are_exact_over_the_whole_range():
    mm = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    depth = image_to_depth(_raw_image(mm[..., None], "16UC1"))
    assert depth.dtype == np.float32 and depth.shape == (256, 256)
    assert depth[0, 0] == 0.0  # 0 mm = invalid stays 0
    np.testing.assert_allclose(depth, mm / 1000.0, rtol=1e-7, atol=0)
    assert depth.ravel()[1234] == np.float32(1.234)
    back = depth_to_image(depth, STAMP, "f", encoding="16UC1")
    assert (back.encoding, back.step, back.is_bigendian) == ("16UC1", 512, 0)
    np.testing.assert_array_equal(np.frombuffer(bytes(back.data), "<u2").reshape(256, 256), mm)


def test_16uc1_padded_odd_step_and_big_endian():
    mm = RNG.integers(0, 65536, size=(3, 4), dtype=np.uint16)
    for pad, big in ((1, False), (5, True), (0, True)):
        msg = _raw_image(mm[..., None], "16UC1", pad=pad, bigendian=big)
        np.testing.assert_array_equal(np.rint(image_to_depth(msg).astype(np.float64) * 1000).astype(np.uint16), mm)


def test_32fc1_round_trip_and_invalid_values():
    depth = RNG.uniform(0.1, 3.0, size=(4, 6)).astype(np.float32)
    depth[0, 0] = 0.0
    msg = depth_to_image(depth, STAMP, "f", encoding="32FC1")
    assert (msg.encoding, msg.step) == ("32FC1", 24)
    assert math.isnan(np.frombuffer(bytes(msg.data), "<f4")[0])  # invalid written as NaN (REP 117)
    np.testing.assert_array_equal(image_to_depth(msg), depth)

    raw = depth.copy()
    raw[0, 1], raw[0, 2], raw[0, 3], raw[1, 0], raw[1, 1] = np.nan, np.inf, -np.inf, -0.5, 0.0
    for pad, big in ((0, False), (4, False), (2, True)):
        out = image_to_depth(_raw_image(raw[..., None], "32FC1", pad=pad, bigendian=big))
        expected = depth.copy()
        expected[0, 1:4] = 0.0
        expected[1, 0:2] = 0.0
        np.testing.assert_array_equal(out, expected)
        assert np.isfinite(out).all()


def test_depth_to_image_invalid_and_out_of_range():
    depth = np.array([[0.0, np.nan, np.inf, -1.0, 0.0004, 0.0006, 65.535, 70.0]], np.float32)
    with pytest.raises(ConversionError, match=r"1 pixels exceed the 16UC1 range of 65.535 m \(largest 70.000 m\)"):
        depth_to_image(depth, STAMP, "f", encoding="16UC1")
    msg = depth_to_image(depth, STAMP, "f", encoding="16UC1", out_of_range="invalid")
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), "<u2"), [0, 0, 0, 0, 0, 1, 65535, 0])
    f32 = image_to_depth(depth_to_image(depth, STAMP, "f", encoding="32FC1"))
    np.testing.assert_array_equal(f32, np.array([[0, 0, 0, 0, 0.0004, 0.0006, 65.535, 70.0]], np.float32))


@pytest.mark.parametrize(
    ("make", "convert", "message"),
    [
        (lambda: _raw_image(_rgb(2, 2), "mono8"), image_to_rgb, "unsupported encoding 'mono8' for a color image; supported: rgb8, bgr8"),
        (lambda: _raw_image(_rgb(2, 2), "rgba8"), image_to_rgb, "unsupported encoding 'rgba8'"),
        (lambda: _raw_image(np.zeros((2, 2, 1), np.uint16), "mono16"), image_to_depth, "unsupported encoding 'mono16' for a depth image; supported: 16UC1, 32FC1"),
        (lambda: _raw_image(_rgb(2, 2), "16UC1"), image_to_rgb, "supported: rgb8, bgr8"),
        (lambda: Image(height=0, width=4, encoding="rgb8", step=12, data=b""), image_to_rgb, r"empty image \(height=0, width=4\)"),
        (lambda: Image(height=3, width=0, encoding="16UC1", step=0, data=b""), image_to_depth, r"empty image \(height=3, width=0\)"),
        (lambda: Image(height=2, width=4, encoding="rgb8", step=8, data=bytes(16)), image_to_rgb, r"step 8 is smaller than width\*bytes_per_pixel = 4\*3 = 12"),
        (lambda: Image(height=2, width=4, encoding="32FC1", step=12, data=bytes(24)), image_to_depth, r"step 12 is smaller than width\*bytes_per_pixel = 4\*4 = 16"),
        (lambda: Image(height=2, width=4, encoding="rgb8", step=12, data=bytes(23)), image_to_rgb, r"data has 23 bytes, expected height\*step = 2\*12 = 24"),
        (lambda: Image(height=2, width=4, encoding="16UC1", step=8, data=bytes(20)), image_to_depth, r"data has 20 bytes, expected height\*step = 2\*8 = 16"),
    ],
)
def test_bad_images_raise_clear_errors(make, convert, message):
    with pytest.raises(ConversionError, match=message):
        convert(make())


def test_bad_arrays_raise_clear_errors():
    with pytest.raises(ConversionError, match=r"rgb must have shape \(H, W, 3\), got \(4, 4\)"):
        rgb_to_image(np.zeros((4, 4), np.uint8), STAMP, "f")
    with pytest.raises(ConversionError, match="rgb must be uint8, got float32"):
        rgb_to_image(np.zeros((4, 4, 3), np.float32), STAMP, "f")
    with pytest.raises(ConversionError, match="unsupported encoding 'rgba8'"):
        rgb_to_image(_rgb(), STAMP, "f", encoding="rgba8")
    with pytest.raises(ConversionError, match=r"depth must have shape \(H, W\), got \(2, 2, 1\)"):
        depth_to_image(np.zeros((2, 2, 1), np.float32), STAMP, "f")
    with pytest.raises(ConversionError, match="unsupported encoding 'mono16' for a depth image"):
        depth_to_image(np.zeros((2, 2), np.float32), STAMP, "f", encoding="mono16")
    with pytest.raises(ConversionError, match=r"empty image \(height=0, width=2\)"):
        depth_to_image(np.zeros((0, 2), np.float32), STAMP, "f")
    assert issubclass(ConversionError, ValueError)


# ---------------------------------------------------------------------------------------- camera info


def test_camera_info_round_trip_and_layout():
    K = np.array([[615.2, 0.0, 321.5], [0.0, 614.8, 239.25], [0.0, 0.0, 1.0]])
    info = K_to_camera_info(K, 480, 640, STAMP, "camera_n_color_optical_frame")
    assert (info.height, info.width, info.distortion_model) == (480, 640, "plumb_bob")
    assert list(info.d) == [0.0] * 5
    np.testing.assert_array_equal(np.asarray(info.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4), np.hstack([K, np.zeros((3, 1))]))
    out = camera_info_to_K(info, image_size=(480, 640))
    assert out.dtype == np.float64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, K)


def _info(k, height=480, width=640) -> CameraInfo:
    return CameraInfo(height=height, width=width, k=np.asarray(k, np.float64).ravel())


@pytest.mark.parametrize(
    ("info", "image_size", "message"),
    [
        (_info(np.zeros(9)), None, "all zeros"),
        (_info([[0, 0, 320], [0, 600, 240], [0, 0, 1]]), None, "fx > 0 and fy > 0, got fx=0.0, fy=600.0"),
        (_info([[600, 0, 320], [0, -600, 240], [0, 0, 1]]), None, "fx=600.0, fy=-600.0"),
        (_info([[600, 0, 320], [0, np.nan, 240], [0, 0, 1]]), None, "non-finite"),
        (_info([[600, 0, 320], [0, 600, 240], [0, 0, 0]]), None, r"\[\[fx, s, cx\], \[0, fy, cy\], \[0, 0, 1\]\]"),
        (_info([[600, 0, 320], [0, 600, 240], [0, 0, 1]]), (240, 320), r"camera_info size 480x640 \(HxW\) does not match the image size 240x320"),
        (CameraInfo(height=480, width=640, k=np.diag([600.0, 600.0, 1.0]).ravel(), binning_x=2), None, "binning"),
    ],
)
def test_bad_camera_info_raises(info, image_size, message):
    with pytest.raises(ConversionError, match=message):
        camera_info_to_K(info, image_size=image_size)


def test_K_to_camera_info_rejects_bad_K():
    with pytest.raises(ConversionError, match=r"K must be 3x3, got shape \(2, 2\)"):
        K_to_camera_info(np.eye(2), 4, 4, STAMP, "f")
    with pytest.raises(ConversionError, match="size must be positive"):
        K_to_camera_info(np.diag([500.0, 500.0, 1.0]), 0, 4, STAMP, "f")


# ---------------------------------------------------------------------------------------- point cloud


def test_pointcloud2_round_trip_with_colours():
    n = 1000
    points = RNG.normal(size=(n, 3)).astype(np.float32)
    rgb = RNG.integers(0, 256, size=(n, 3), dtype=np.uint8)
    msg = points_to_pointcloud2(points, rgb, STAMP, "camera_n_color_optical_frame")
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, n, 16, 16 * n, True)
    # RViz / PCL packing: the rgb float's bits are 0x00RRGGBB
    packed = np.frombuffer(bytes(msg.data), "<u4").reshape(n, 4)[:, 3]
    assert packed[0] == (int(rgb[0, 0]) << 16) | (int(rgb[0, 1]) << 8) | int(rgb[0, 2])
    out_points, out_rgb = pointcloud2_to_points(msg)
    np.testing.assert_array_equal(out_points, points)
    np.testing.assert_array_equal(out_rgb, rgb)


def test_pointcloud2_without_colours_and_non_finite():
    points = np.array([[0.0, 1.0, 2.0], [np.nan, 0.0, 1.0]], np.float64)
    msg = points_to_pointcloud2(points, None, 3.5, "base")
    assert [f.name for f in msg.fields] == ["x", "y", "z"] and msg.point_step == 12 and not msg.is_dense
    out_points, out_rgb = pointcloud2_to_points(msg)
    assert out_rgb is None and out_points.dtype == np.float32
    np.testing.assert_array_equal(out_points, points.astype(np.float32))
    empty_points, empty_rgb = pointcloud2_to_points(points_to_pointcloud2(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), 0.0, "b"))
    assert empty_points.shape == (0, 3) and empty_rgb.shape == (0, 3)


def test_pointcloud2_reader_handles_foreign_layout():
    """An organised, big-endian cloud with an extra field and padded rows (as another driver may send)."""
    h, w, point_step, pad = 2, 3, 20, 4
    pts = RNG.normal(size=(h * w, 3)).astype(np.float32)
    rec = np.zeros(h * w, np.dtype({"names": ["i", "x", "y", "z", "rgb"], "formats": [">f4", ">f4", ">f4", ">f4", ">u4"], "offsets": [0, 4, 8, 12, 16], "itemsize": point_step}))
    rec["x"], rec["y"], rec["z"] = pts.T
    rec["rgb"] = 0x00102030
    rows = np.concatenate([rec.view(np.uint8).reshape(h, w * point_step), np.zeros((h, pad), np.uint8)], axis=1)
    fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32 if n != "rgb" else PointField.UINT32, count=1) for n, o in zip(["i", "x", "y", "z", "rgb"], [0, 4, 8, 12, 16])]
    msg = PointCloud2(height=h, width=w, fields=fields, is_bigendian=True, point_step=point_step, row_step=w * point_step + pad, data=rows.tobytes())
    out_points, out_rgb = pointcloud2_to_points(msg)
    np.testing.assert_array_equal(out_points, pts)
    np.testing.assert_array_equal(out_rgb, np.tile([0x10, 0x20, 0x30], (h * w, 1)))


def test_pointcloud2_errors():
    with pytest.raises(ConversionError, match=r"points must have shape \(N, 3\), got \(4, 2\)"):
        points_to_pointcloud2(np.zeros((4, 2)), None, STAMP, "f")
    with pytest.raises(ConversionError, match=r"rgb must have shape \(4, 3\) to match points, got \(3, 3\)"):
        points_to_pointcloud2(np.zeros((4, 3)), np.zeros((3, 3), np.uint8), STAMP, "f")
    with pytest.raises(ConversionError, match="rgb must be uint8, got float64"):
        points_to_pointcloud2(np.zeros((4, 3)), np.zeros((4, 3)), STAMP, "f")
    msg = points_to_pointcloud2(np.zeros((4, 3)), None, STAMP, "f")
    msg.fields = msg.fields[:2]
    with pytest.raises(ConversionError, match="point cloud has no field 'z'"):
        pointcloud2_to_points(msg)
    msg = points_to_pointcloud2(np.zeros((4, 3)), None, STAMP, "f")
    msg.data = bytes(40)
    with pytest.raises(ConversionError, match=r"data has 40 bytes, expected height\*row_step = 1\*48 = 48"):
        pointcloud2_to_points(msg)


# ----------------------------------------------------------------------------------- path and gripper


def _random_poses(t: int) -> np.ndarray:
    X = np.tile(np.eye(4), (t, 1, 1))
    X[:, :3, :3] = Rotation.random(t, random_state=3).as_matrix()
    X[:, :3, 3] = RNG.uniform(-1, 1, size=(t, 3))
    return X


def test_path_round_trip():
    X_BE = _random_poses(10)
    X_BE[0, :3, :3] = Rotation.from_rotvec([0.0, 0.0, np.pi]).as_matrix()  # 180°: w = 0 edge case
    stamps = [10.0 + 0.1 * i for i in range(10)]
    path = poses_to_path(X_BE, stamps, "panda_link0")
    assert path.header.frame_id == "panda_link0" and path.header.stamp == seconds_to_stamp(10.0)
    assert len(path.poses) == 10 and all(p.header.frame_id == "panda_link0" for p in path.poses)
    assert all(p.pose.orientation.w >= 0 for p in path.poses)
    np.testing.assert_allclose(path_to_poses(path), X_BE, atol=1e-9, rtol=0)
    np.testing.assert_allclose(path_stamps(path), stamps, atol=1e-9, rtol=0)
    assert path_to_poses(poses_to_path(np.zeros((0, 4, 4)), [], "b")).shape == (0, 4, 4)
    stamped = poses_to_path(X_BE[:2], [STAMP, STAMP], "b", header_stamp=Time(sec=3))
    assert stamped.header.stamp == Time(sec=3) and stamped.poses[1].header.stamp == STAMP


def test_path_errors():
    X = _random_poses(3)
    with pytest.raises(ConversionError, match="got 2 stamps for 3 poses"):
        poses_to_path(X, [0.0, 0.1], "b")
    bad = X.copy()
    bad[1, :3, :3] *= 1.01
    with pytest.raises(ConversionError, match=r"not a proper rotation at steps \[1\]"):
        poses_to_path(bad, [0.0, 0.1, 0.2], "b")
    mirrored = X.copy()
    mirrored[2, :3, 0] *= -1
    with pytest.raises(ConversionError, match=r"steps \[2\].*det = -1"):
        poses_to_path(mirrored, [0.0, 0.1, 0.2], "b")
    bad = X.copy()
    bad[0, 3, 3] = 2.0
    with pytest.raises(ConversionError, match=r"last row must be \[0, 0, 0, 1\]; steps \[0\]"):
        poses_to_path(bad, [0.0, 0.1, 0.2], "b")
    bad = X.copy()
    bad[2, 0, 3] = np.nan
    with pytest.raises(ConversionError, match=r"non-finite entries at steps \[2\]"):
        poses_to_path(bad, [0.0, 0.1, 0.2], "b")
    with pytest.raises(ConversionError, match=r"shape \(T, 4, 4\)"):
        poses_to_path(np.eye(4), [0.0], "b")
    path = poses_to_path(X, [0.0, 0.1, 0.2], "b")
    path.poses[1].pose.orientation.w = 0.0
    path.poses[1].pose.orientation.x = path.poses[1].pose.orientation.y = path.poses[1].pose.orientation.z = 0.0
    with pytest.raises(ConversionError, match=r"poses \[1\] have norms \[0.0\]"):
        path_to_poses(path)


def test_gripper_joint_state():
    js = gripper_joint_state([0.031, 0.0], ["left_gripper", "right_gripper"], STAMP)
    assert list(js.name) == ["left_gripper", "right_gripper"] and list(js.position) == [0.031, 0.0]
    assert js.header.stamp == STAMP and len(js.velocity) == 0 and len(js.effort) == 0
    closed = gripper_joint_state(np.array([True, False]), ["a", "b"], 1.0, open_width_m=0.08, closed_width_m=0.0)
    assert list(closed.position) == [0.0, 0.08]
    single = gripper_joint_state(0.05, "panda_hand", 0.0)
    assert list(single.name) == ["panda_hand"] and list(single.position) == [0.05]
    with pytest.raises(ConversionError, match="got 1 gripper widths"):
        gripper_joint_state([0.01], ["a", "b"], 0.0)
    with pytest.raises(ConversionError, match="finite and >= 0"):
        gripper_joint_state([-0.01], ["a"], 0.0)
    with pytest.raises(ConversionError, match="unique non-empty"):
        gripper_joint_state([0.01, 0.02], ["a", "a"], 0.0)


# ------------------------------------------------------------------------------- real rclpy transport


def test_image_published_over_loopback_arrives_bit_exact(monkeypatch, tmp_path):
    for key, value in apply_loopback_env({}, domain_id=100 + os.getpid() % 100, log_dir=str(tmp_path)).items():
        monkeypatch.setenv(key, value)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    rgb = RNG.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    depth = (RNG.integers(0, 8000, size=(240, 320)).astype(np.float32) / np.float32(1000.0))
    sent = {
        "color": rgb_to_image(rgb, STAMP, "camera_n_color_optical_frame", encoding="bgr8"),
        "depth": depth_to_image(depth, STAMP, "camera_n_color_optical_frame", encoding="16UC1"),
    }
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("geo4d_conversions_test", context=context)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        received: dict[str, Image] = {}
        pubs = {}
        for name in sent:
            topic = f"/geo4d_conversions_test/{name}"
            node.create_subscription(Image, topic, lambda m, name=name: received.setdefault(name, m), qos)
            pubs[name] = node.create_publisher(Image, topic, qos)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 20.0
        while len(received) < len(sent) and time.monotonic() < deadline:  # condition + timeout, no sleeps
            for name, msg in sent.items():
                if name not in received:
                    pubs[name].publish(msg)
            executor.spin_once(timeout_sec=0.05)
        assert set(received) == set(sent), f"received only {sorted(received)} within 20 s"
        assert received["color"].encoding == "bgr8" and received["depth"].encoding == "16UC1"
        assert received["color"].header.stamp == STAMP
        assert received["color"].header.frame_id == "camera_n_color_optical_frame"
        out_rgb = image_to_rgb(received["color"])
        out_depth = image_to_depth(received["depth"])
        assert out_rgb.tobytes() == rgb.tobytes()
        assert out_depth.tobytes() == depth.tobytes()  # mm-quantised float32 survives bit-exact
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_pose_array_round_trip_and_errors():
    X = _random_poses(3)
    msg = poses_to_pose_array(X, STAMP, "panda_link0")
    assert msg.header.frame_id == "panda_link0" and msg.header.stamp == STAMP and len(msg.poses) == 3
    assert all(p.orientation.w >= 0 for p in msg.poses)
    np.testing.assert_allclose(pose_array_to_poses(msg), X, atol=1e-12)
    msg.poses[1].orientation.w += 0.5
    with pytest.raises(ConversionError, match=r"pose array orientation quaternions must be unit length; poses \[1\]"):
        pose_array_to_poses(msg)
    msg.poses[1].position.x = float("nan")
    with pytest.raises(ConversionError, match="pose array has non-finite"):
        pose_array_to_poses(msg)
    with pytest.raises(ConversionError, match="rotation is not a proper rotation"):
        poses_to_pose_array(np.diag([1.0, 1.0, -1.0, 1.0])[None], STAMP, "b")
