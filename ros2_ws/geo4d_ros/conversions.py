"""numpy ⇄ ROS 2 message conversions (our own small equivalents of cv_bridge / ros2_numpy).

Conventions (DESIGN.md §3): metres, seconds, radians; camera frames follow OpenCV (+x right, +y down,
+z forward); color images are (H, W, 3) uint8 RGB in memory; depth is (H, W) float32 metres in memory
with 0 = invalid; poses are 4×4 homogeneous matrices `X_AB` (frame B expressed in frame A).

Everything is vectorised (no per-pixel Python loops). Malformed input raises `ConversionError` (a
`ValueError`) whose message states exactly what is wrong (the field, the value, what was expected);
callers prepend the topic name, e.g. ``f"{topic}: {err}"``.

Stamps: every ``stamp`` argument accepts a `builtin_interfaces/Time` message, an `rclpy.time.Time`
(anything with ``to_msg()``) or a float number of seconds.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from typing import Any, Literal, Union

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from nav_msgs.msg import Path
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import Header

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "ConversionError",
    "K_to_camera_info",
    "StampLike",
    "camera_info_to_K",
    "depth_to_image",
    "gripper_joint_state",
    "header",
    "image_to_depth",
    "image_to_rgb",
    "path_stamps",
    "path_to_poses",
    "pointcloud2_to_points",
    "points_to_pointcloud2",
    "pose_array_to_poses",
    "poses_to_path",
    "poses_to_pose_array",
    "rgb_to_image",
    "seconds_to_stamp",
    "stamp_to_ns",
    "stamp_to_seconds",
]


class ConversionError(ValueError):
    """A ROS message or array could not be converted; the message names the field and the problem."""


StampLike = Union[Time, float, int, Any]
"""A `builtin_interfaces/Time`, an `rclpy.time.Time` (has ``to_msg()``) or seconds as a float."""

# encoding -> (dtype of one channel, number of channels)
COLOR_ENCODINGS: dict[str, tuple[np.dtype, int]] = {"rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3)}
DEPTH_ENCODINGS: dict[str, tuple[np.dtype, int]] = {"16UC1": (np.dtype(np.uint16), 1), "32FC1": (np.dtype(np.float32), 1)}

_UINT16_MAX_MM = 65535  # largest depth representable in 16UC1, millimetres
_INT32_MAX = 2**31 - 1
_NS_PER_S = 1_000_000_000


# ----------------------------------------------------------------------------------------------- time


def stamp_to_ns(stamp: StampLike) -> int:
    """Integer nanoseconds since the epoch of the clock for a stamp (exact for Time messages)."""
    if hasattr(stamp, "to_msg"):
        stamp = stamp.to_msg()
    if isinstance(stamp, Time):
        return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)
    if isinstance(stamp, (int, float, np.integer, np.floating)) and not isinstance(stamp, bool):
        msg = seconds_to_stamp(float(stamp))
        return int(msg.sec) * _NS_PER_S + int(msg.nanosec)
    raise ConversionError(f"stamp must be a builtin_interfaces/Time, an rclpy Time or seconds, got {type(stamp).__name__}")


def stamp_to_seconds(stamp: StampLike) -> float:
    """Seconds (float) of a `builtin_interfaces/Time` (or rclpy Time, or seconds passed through)."""
    if isinstance(stamp, (int, float, np.integer, np.floating)) and not isinstance(stamp, bool):
        return float(stamp)
    if hasattr(stamp, "to_msg"):
        stamp = stamp.to_msg()
    if isinstance(stamp, Time):
        return int(stamp.sec) + int(stamp.nanosec) * 1e-9
    raise ConversionError(f"stamp must be a builtin_interfaces/Time, an rclpy Time or seconds, got {type(stamp).__name__}")


def seconds_to_stamp(seconds: float) -> Time:
    """`builtin_interfaces/Time` for a non-negative time in seconds, rounded to the nearest nanosecond."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ConversionError(f"stamp seconds must be finite and >= 0, got {seconds!r}")
    sec = math.floor(seconds)
    nanosec = int(round((seconds - sec) * 1e9))  # seconds - sec is exact in floating point
    if nanosec >= _NS_PER_S:
        sec, nanosec = sec + 1, nanosec - _NS_PER_S
    if sec > _INT32_MAX:
        raise ConversionError(f"stamp seconds {seconds!r} do not fit builtin_interfaces/Time.sec (int32)")
    return Time(sec=int(sec), nanosec=nanosec)


def _as_stamp(stamp: StampLike) -> Time:
    """Any StampLike as a `builtin_interfaces/Time` message (a copy for messages)."""
    if hasattr(stamp, "to_msg"):
        stamp = stamp.to_msg()
    if isinstance(stamp, Time):
        return Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))
    if isinstance(stamp, (int, float, np.integer, np.floating)) and not isinstance(stamp, bool):
        return seconds_to_stamp(float(stamp))
    raise ConversionError(f"stamp must be a builtin_interfaces/Time, an rclpy Time or seconds, got {type(stamp).__name__}")


def _header(stamp: StampLike, frame_id: str) -> Header:
    if not isinstance(frame_id, str):
        raise ConversionError(f"frame_id must be a str, got {type(frame_id).__name__}")
    return Header(stamp=_as_stamp(stamp), frame_id=frame_id)


def _byte_array(data: np.ndarray) -> array.array:
    """The bytes of `data` as the array('B') a uint8[] message field stores (avoids the per-element check)."""
    return array.array("B", np.ascontiguousarray(data).tobytes())


def _message_bytes(data: Any) -> np.ndarray:
    """A uint8[] message field (array('B'), bytes, list) as a 1-D uint8 numpy view."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).ravel()


# --------------------------------------------------------------------------------------------- images


def _image_pixels(msg: Image, encodings: dict[str, tuple[np.dtype, int]], kind: str) -> np.ndarray:
    """Validated pixel array (H, W, C) in native byte order, a copy independent of `msg.data`."""
    if msg.encoding not in encodings:
        raise ConversionError(
            f"unsupported encoding {msg.encoding!r} for a {kind} image; supported: {', '.join(encodings)}"
        )
    dtype, channels = encodings[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ConversionError(f"empty image (height={height}, width={width})")
    pixel_bytes = dtype.itemsize * channels
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ConversionError(
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{pixel_bytes} = {row_bytes} "
            f"for encoding {msg.encoding}"
        )
    buf = _message_bytes(msg.data)
    if buf.size != height * step:
        raise ConversionError(
            f"data has {buf.size} bytes, expected height*step = {height}*{step} = {height * step}"
        )
    rows = buf.reshape(height, step)[:, :row_bytes].copy()  # drops row padding; copy owns its memory
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    pixels = rows.view(wire).reshape(height, width, channels)
    return pixels.astype(dtype, copy=False)  # native byte order (copies only when it differs)


def image_to_rgb(msg: Image) -> np.ndarray:
    """A `sensor_msgs/Image` color image as (H, W, 3) uint8 RGB.

    Accepts encodings rgb8 and bgr8 (channel order is converted); honours `step` row padding.
    Raises ConversionError for other encodings, an empty image, `step` too small or a data size that
    does not equal height*step.
    """
    pixels = _image_pixels(msg, COLOR_ENCODINGS, "color")
    if msg.encoding == "bgr8":
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    return pixels


def image_to_depth(msg: Image) -> np.ndarray:
    """A `sensor_msgs/Image` depth image as (H, W) float32 metres along the camera z axis, 0 = invalid.

    Accepts 16UC1 (millimetres, 0 = invalid, as the RealSense driver publishes) and 32FC1 (metres;
    NaN, ±inf and values <= 0 become 0 = invalid, REP 117). Honours `step` and `is_bigendian`.
    """
    pixels = _image_pixels(msg, DEPTH_ENCODINGS, "depth")[..., 0]
    if msg.encoding == "16UC1":
        return pixels.astype(np.float32) / np.float32(1000.0)  # exact mm -> nearest float32 metres
    depth = np.ascontiguousarray(pixels, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return depth


def rgb_to_image(
    rgb: np.ndarray, stamp: StampLike, frame_id: str, encoding: Literal["rgb8", "bgr8"] = "rgb8"
) -> Image:
    """(H, W, 3) uint8 RGB as a `sensor_msgs/Image` (rgb8 or bgr8, unpadded rows, little-endian)."""
    if encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r} for a color image; supported: {', '.join(COLOR_ENCODINGS)}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ConversionError(f"rgb must be uint8, got {rgb.dtype}")
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ConversionError(f"empty image (height={height}, width={width})")
    pixels = rgb[..., ::-1] if encoding == "bgr8" else rgb
    return _image(pixels, encoding, stamp, frame_id)


def _image(pixels: np.ndarray, encoding: str, stamp: StampLike, frame_id: str) -> Image:
    """(H, W[, C]) little-endian pixels -> a densely packed Image (step = width * bytes per pixel)."""
    height, width = pixels.shape[:2]
    return Image(header=_header(stamp, frame_id), height=height, width=width, encoding=encoding,
                 is_bigendian=0, step=width * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1),
                 data=_byte_array(pixels))


def depth_to_image(
    depth_m: np.ndarray,
    stamp: StampLike,
    frame_id: str,
    encoding: Literal["16UC1", "32FC1"] = "16UC1",
    *,
    out_of_range: Literal["raise", "invalid"] = "raise",
) -> Image:
    """(H, W) depth in metres (0 = invalid) as a `sensor_msgs/Image`, little-endian, unpadded rows.

    Invalid pixels (0, negative, NaN, ±inf) are written as 0 in 16UC1 and NaN in 32FC1 (REP 117), so
    `image_to_depth` maps them back to 0. 16UC1 stores the depth rounded to the nearest millimetre;
    depths that round to 0 mm become invalid. Depths beyond 65.535 m do not fit 16UC1: they raise a
    ConversionError, or become invalid with ``out_of_range="invalid"``.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f"unsupported encoding {encoding!r} for a depth image; supported: {', '.join(DEPTH_ENCODINGS)}")
    if out_of_range not in ("raise", "invalid"):
        raise ConversionError(f"out_of_range must be 'raise' or 'invalid', got {out_of_range!r}")
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ConversionError(f"depth must have shape (H, W), got {depth.shape}")
    if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
        raise ConversionError(f"depth must be a real-valued array in metres, got dtype {depth.dtype}")
    height, width = depth.shape
    if height == 0 or width == 0:
        raise ConversionError(f"empty image (height={height}, width={width})")
    depth = depth.astype(np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    if encoding == "16UC1":
        mm = np.where(valid, np.rint(np.where(valid, depth, 0.0) * 1000.0), 0.0)
        too_far = mm > _UINT16_MAX_MM
        if too_far.any():
            if out_of_range == "raise":
                raise ConversionError(
                    f"{int(too_far.sum())} pixels exceed the 16UC1 range of {_UINT16_MAX_MM / 1000:.3f} m "
                    f"(largest {float(depth[too_far].max()):.3f} m); use 32FC1 or out_of_range='invalid'"
                )
            mm[too_far] = 0.0
        pixels = mm.astype("<u2")
    else:
        pixels = np.where(valid, depth, np.nan).astype("<f4")
    return _image(pixels, encoding, stamp, frame_id)


# ---------------------------------------------------------------------------------------- camera info


def _check_K(K: np.ndarray, what: str) -> np.ndarray:
    """Validated 3×3 pinhole intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (pixels) as float64."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ConversionError(f"{what} must be 3x3, got shape {K.shape}")
    if not np.isfinite(K).all():
        raise ConversionError(f"{what} has non-finite entries: {K.ravel().tolist()}")
    if not K.any():
        raise ConversionError(f"{what} is all zeros (uncalibrated camera)")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ConversionError(f"{what} must have fx > 0 and fy > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise ConversionError(f"{what} must have the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")
    return K


def camera_info_to_K(msg: CameraInfo, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """The (3, 3) float64 intrinsic matrix K (pixels) of a `sensor_msgs/CameraInfo`.

    Checks that K is finite with fx, fy > 0 and a [0, 0, 1] last row, that there is no binning or
    region of interest (K would then not apply to the image as published), and, when `image_size` =
    (height, width) of the accompanying image is given, that camera_info has the same size.
    Distortion coefficients are not applied: the images are used as published (aligned, rectified).
    """
    k = np.asarray(msg.k, dtype=np.float64)
    if k.size != 9:
        raise ConversionError(f"camera_info k must have 9 entries, got {k.size}")
    K = _check_K(k.reshape(3, 3), "camera_info k")
    if msg.binning_x > 1 or msg.binning_y > 1:
        raise ConversionError(f"camera_info binning ({msg.binning_x}, {msg.binning_y}) is not supported; expected 0 or 1")
    roi = msg.roi
    if roi.x_offset or roi.y_offset or (roi.width and (roi.width, roi.height) != (msg.width, msg.height)):
        raise ConversionError(
            f"camera_info roi (x={roi.x_offset}, y={roi.y_offset}, w={roi.width}, h={roi.height}) is not supported; "
            "expected the full image"
        )
    if image_size is not None:
        height, width = (int(v) for v in image_size)
        if (msg.height, msg.width) != (height, width):
            raise ConversionError(
                f"camera_info size {msg.height}x{msg.width} (HxW) does not match the image size {height}x{width}"
            )
    return K


def K_to_camera_info(K: np.ndarray, height: int, width: int, stamp: StampLike, frame_id: str) -> CameraInfo:
    """A `sensor_msgs/CameraInfo` for an undistorted pinhole camera: plumb_bob with zero distortion,
    R = identity, P = [K | 0]. `K` is (3, 3) in pixels; `height`, `width` in pixels."""
    K = _check_K(K, "K")
    if int(height) <= 0 or int(width) <= 0:
        raise ConversionError(f"camera_info size must be positive, got height={height}, width={width}")
    P = np.zeros((3, 4), dtype=np.float64)
    P[:, :3] = K
    return CameraInfo(
        header=_header(stamp, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.ravel().copy(),
        r=np.eye(3).ravel(),
        p=P.ravel(),
    )


# ---------------------------------------------------------------------------------------- point cloud

_POINTFIELD_DTYPES = {
    PointField.INT8: "i1",
    PointField.UINT8: "u1",
    PointField.INT16: "i2",
    PointField.UINT16: "u2",
    PointField.INT32: "i4",
    PointField.UINT32: "u4",
    PointField.FLOAT32: "f4",
    PointField.FLOAT64: "f8",
}


def points_to_pointcloud2(
    points: np.ndarray, rgb: np.ndarray | None, stamp: StampLike, frame_id: str
) -> PointCloud2:
    """(N, 3) points in metres, expressed in `frame_id`, as an unordered `sensor_msgs/PointCloud2`.

    Fields x, y, z are float32; with `rgb` ((N, 3) uint8) a field `rgb` holds the colour packed as
    0x00RRGGBB in a float32, the layout RViz's "RGB8" colour transformer (and PCL) reads.
    `is_dense` is True when every coordinate is finite.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ConversionError(f"points must have shape (N, 3), got {points.shape}")
    if not (np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)):
        raise ConversionError(f"points must be real-valued metres, got dtype {points.dtype}")
    n = points.shape[0]
    names, formats, offsets = ["x", "y", "z"], ["<f4", "<f4", "<f4"], [0, 4, 8]
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise ConversionError(f"rgb must have shape ({n}, 3) to match points, got {rgb.shape}")
        if rgb.dtype != np.uint8:
            raise ConversionError(f"rgb must be uint8, got {rgb.dtype}")
        names.append("rgb")
        formats.append("<u4")
        offsets.append(12)
    point_step = 4 * len(names)
    cloud = np.empty(n, dtype=np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step}))
    xyz = points.astype(np.float32)
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        c = rgb.astype(np.uint32)
        cloud["rgb"] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    fields = [PointField(name=name, offset=off, datatype=PointField.FLOAT32, count=1) for name, off in zip(names, offsets)]
    return PointCloud2(
        header=_header(stamp, frame_id),
        height=1,
        width=n,
        fields=fields,
        is_bigendian=False,
        point_step=point_step,
        row_step=point_step * n,
        data=_byte_array(cloud.view(np.uint8)),
        is_dense=bool(np.isfinite(xyz).all()),
    )


def pointcloud2_to_points(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """A `sensor_msgs/PointCloud2` as ((N, 3) float32 points in metres in msg.header.frame_id,
    (N, 3) uint8 RGB or None). N = height*width (organised clouds are flattened row-major).

    Reads fields x, y, z (float32 or float64) and, when present, a packed `rgb` field (float32 or
    uint32 holding 0x00RRGGBB); honours point_step, row_step and is_bigendian.
    """
    fields = {f.name: f for f in msg.fields}
    for name in ("x", "y", "z"):
        if name not in fields:
            raise ConversionError(f"point cloud has no field {name!r}; fields: {sorted(fields)}")
        if fields[name].datatype not in (PointField.FLOAT32, PointField.FLOAT64):
            raise ConversionError(f"point cloud field {name!r} must be FLOAT32 or FLOAT64, got datatype {fields[name].datatype}")
    if "rgb" in fields and fields["rgb"].datatype not in (PointField.FLOAT32, PointField.UINT32):
        raise ConversionError(f"point cloud field 'rgb' must be FLOAT32 or UINT32, got datatype {fields['rgb'].datatype}")
    order = ">" if msg.is_bigendian else "<"
    wanted = [n for n in ("x", "y", "z", "rgb") if n in fields]
    formats = [order + ("u4" if n == "rgb" else _POINTFIELD_DTYPES[fields[n].datatype]) for n in wanted]
    offsets = [int(fields[n].offset) for n in wanted]
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    height, width = int(msg.height), int(msg.width)
    end = max(off + np.dtype(fmt).itemsize for off, fmt in zip(offsets, formats))
    if point_step < end:
        raise ConversionError(f"point_step {point_step} is smaller than the field layout needs ({end} bytes)")
    if row_step < width * point_step:
        raise ConversionError(f"row_step {row_step} is smaller than width*point_step = {width}*{point_step} = {width * point_step}")
    buf = _message_bytes(msg.data)
    if buf.size != height * row_step:
        raise ConversionError(f"data has {buf.size} bytes, expected height*row_step = {height}*{row_step} = {height * row_step}")
    dtype = np.dtype({"names": wanted, "formats": formats, "offsets": offsets, "itemsize": point_step})
    if height * width == 0:
        return np.zeros((0, 3), np.float32), (np.zeros((0, 3), np.uint8) if "rgb" in fields else None)
    cloud = buf.reshape(height, row_step)[:, : width * point_step].copy().view(dtype).reshape(-1)
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1).astype(np.float32)
    rgb = None
    if "rgb" in fields:
        packed = cloud["rgb"].astype(np.uint32)
        rgb = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=1).astype(np.uint8)
    return points, rgb


# ----------------------------------------------------------------------------------- path and gripper


def _check_poses(X: np.ndarray, what: str, atol: float = 1e-6) -> np.ndarray:
    """Validated (T, 4, 4) rigid transforms (rotation orthonormal with det +1, last row [0, 0, 0, 1])."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[1:] != (4, 4):
        raise ConversionError(f"{what} must have shape (T, 4, 4), got {X.shape}")
    if not np.isfinite(X).all():
        bad = np.unique(np.nonzero(~np.isfinite(X))[0]).tolist()
        raise ConversionError(f"{what} has non-finite entries at steps {bad}")
    bottom_bad = np.abs(X[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1) > atol
    if bottom_bad.any():
        raise ConversionError(f"{what} last row must be [0, 0, 0, 1]; steps {np.nonzero(bottom_bad)[0].tolist()} are not")
    R = X[:, :3, :3]
    ortho_err = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    rot_bad = (ortho_err > atol) | (det <= 0)
    if rot_bad.any():
        i = int(np.nonzero(rot_bad)[0][0])
        raise ConversionError(
            f"{what} rotation is not a proper rotation at steps {np.nonzero(rot_bad)[0].tolist()} "
            f"(step {i}: max |R R^T - I| = {ortho_err[i]:.2e}, det = {det[i]:.6f})"
        )
    return X


def _pose_msgs(X: np.ndarray) -> list[Pose]:
    """Checked (T, 4, 4) poses as `geometry_msgs/Pose` messages (unit quaternions with w >= 0)."""
    quats = Rotation.from_matrix(X[:, :3, :3]).as_quat() if X.shape[0] else np.zeros((0, 4))  # x, y, z, w
    quats[quats[:, 3] < 0] *= -1.0
    out = []
    for i in range(X.shape[0]):
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in X[i, :3, 3])
        q = pose.orientation
        q.x, q.y, q.z, q.w = (float(v) for v in quats[i])
        out.append(pose)
    return out


def _pose_matrices(poses: Sequence[Pose], what: str) -> np.ndarray:
    """`geometry_msgs/Pose` messages as (T, 4, 4) float64; quaternions are normalised, and a non-finite
    value or a quaternion whose norm is not within 1e-3 of 1 raises ConversionError."""
    T = len(poses)
    if T == 0:
        return np.zeros((0, 4, 4))
    pos = np.array([[p.position.x, p.position.y, p.position.z] for p in poses], dtype=np.float64)
    quat = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w] for p in poses],
                    dtype=np.float64)
    if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
        raise ConversionError(f"{what} has non-finite positions or orientations")
    norms = np.linalg.norm(quat, axis=1)
    bad = np.abs(norms - 1.0) > 1e-3
    if bad.any():
        raise ConversionError(
            f"{what} orientation quaternions must be unit length; poses {np.nonzero(bad)[0].tolist()} have norms "
            f"{norms[bad].round(6).tolist()}"
        )
    X = np.tile(np.eye(4), (T, 1, 1))
    X[:, :3, :3] = Rotation.from_quat(quat / norms[:, None]).as_matrix()
    X[:, :3, 3] = pos
    return X


def poses_to_path(
    X_BE: np.ndarray,
    stamps: Sequence[StampLike] | np.ndarray,
    frame_id: str,
    header_stamp: StampLike | None = None,
) -> Path:
    """(T, 4, 4) poses `X_BE` (frame E expressed in frame B = `frame_id`, metres) as a `nav_msgs/Path`.

    `stamps` gives the time of each pose (T stamps); the Path header gets `header_stamp`, by default
    the first pose's stamp. Orientations are unit quaternions with w >= 0.
    """
    X = _check_poses(X_BE, "X_BE")
    stamp_list = list(stamps)
    if len(stamp_list) != X.shape[0]:
        raise ConversionError(f"got {len(stamp_list)} stamps for {X.shape[0]} poses")
    path = Path(header=_header(header_stamp if header_stamp is not None else (stamp_list[0] if stamp_list else 0.0), frame_id))
    path.poses = [PoseStamped(header=_header(t, frame_id), pose=pose) for t, pose in zip(stamp_list, _pose_msgs(X))]
    return path


def path_to_poses(msg: Path) -> np.ndarray:
    """A `nav_msgs/Path` as (T, 4, 4) float64 poses in msg.header.frame_id (metres).

    Quaternions are normalised; a quaternion whose norm is not within 1e-3 of 1 raises ConversionError.
    """
    return _pose_matrices([p.pose for p in msg.poses], "path")


def poses_to_pose_array(X: np.ndarray, stamp: StampLike, frame_id: str) -> PoseArray:
    """(A, 4, 4) poses expressed in `frame_id` (metres) as a `geometry_msgs/PoseArray`, e.g. the current
    TCP pose of each arm in the robot base frame."""
    return PoseArray(header=_header(stamp, frame_id), poses=_pose_msgs(_check_poses(X, "poses")))


def pose_array_to_poses(msg: PoseArray) -> np.ndarray:
    """A `geometry_msgs/PoseArray` as (A, 4, 4) float64 poses in msg.header.frame_id (checked as in
    `path_to_poses`)."""
    return _pose_matrices(msg.poses, "pose array")


def header(stamp: StampLike, frame_id: str = "") -> Header:
    """A `std_msgs/Header` with the given stamp (any StampLike) and frame."""
    return _header(stamp, frame_id)


def path_stamps(msg: Path) -> np.ndarray:
    """(T,) float64 seconds of the poses of a `nav_msgs/Path`."""
    return np.array([stamp_to_seconds(p.header.stamp) for p in msg.poses], dtype=np.float64)


def gripper_joint_state(
    widths: float | bool | Sequence[float] | Sequence[bool] | np.ndarray,
    names: str | Sequence[str],
    stamp: StampLike,
    *,
    open_width_m: float = 0.08,
    closed_width_m: float = 0.0,
) -> JointState:
    """A gripper command as `sensor_msgs/JointState`: one joint per gripper, position = finger opening
    (distance between the fingers) in metres.

    `widths` holds one value per name: openings in metres, or booleans meaning closed (True →
    `closed_width_m`) / open (False → `open_width_m`). velocity and effort are left empty.
    """
    name_list = [names] if isinstance(names, str) else list(names)
    raw = np.atleast_1d(np.asarray(widths))
    if raw.ndim != 1 or raw.size != len(name_list):
        raise ConversionError(f"got {raw.size} gripper widths {raw.shape} for {len(name_list)} joint names")
    if not name_list:
        raise ConversionError("gripper_joint_state needs at least one joint name")
    if any(not isinstance(n, str) or not n for n in name_list) or len(set(name_list)) != len(name_list):
        raise ConversionError(f"joint names must be unique non-empty strings, got {name_list}")
    if raw.dtype == np.bool_:
        for label, value in (("open_width_m", open_width_m), ("closed_width_m", closed_width_m)):
            if not (math.isfinite(value) and value >= 0):
                raise ConversionError(f"{label} must be finite and >= 0, got {value}")
        position = np.where(raw, float(closed_width_m), float(open_width_m))
    else:
        if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
            raise ConversionError(f"gripper widths must be metres or booleans, got dtype {raw.dtype}")
        position = raw.astype(np.float64)
        if not (np.isfinite(position).all() and (position >= 0).all()):
            raise ConversionError(f"gripper widths must be finite and >= 0 metres, got {position.tolist()}")
    return JointState(header=_header(stamp, ""), name=name_list, position=array.array("d", position.tolist()))
