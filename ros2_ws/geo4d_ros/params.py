"""Parameters of the world-model node: one typed dataclass, loadable from the ROS parameter YAML
(`config/geo4d.yaml`, the `ros__parameters` layout) and declared as ROS parameters on the node.

Frames: `base_frame` is the robot base B (plans are expressed in it); `camera_n_frame` is camera n's
optical frame (OpenCV axes, +z forward). `camera_n_extrinsic` is X_BC_n, camera n in B, written as
[x, y, z, qx, qy, qz, qw] (metres, unit quaternion), the `static_transform_publisher` order.
Only camera n is calibrated: camera m's points come out of the model already in camera n's frame.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

__all__ = ["NODE_NAME", "ParamsError", "WorldModelNodeParams", "load_params_file", "default_params_file"]

NODE_NAME = "geo4d_world_model"  # the node's default name; the key of its block in the parameter YAML


class ParamsError(ValueError):
    """A parameter has a bad value; the message names the parameter and what was expected."""


@dataclass
class WorldModelNodeParams:
    """Everything the world-model node can be configured with (ROS parameters of the same names)."""

    # --- input topics (RealSense driver names; remap or override per camera) ---
    # Colour image of camera n (rgb8 or bgr8).
    color_n_topic: str = "/camera_n/color/image_raw"
    # Depth of camera n aligned to its colour image (16UC1 millimetres or 32FC1 metres).
    depth_n_topic: str = "/camera_n/aligned_depth_to_color/image_raw"
    # CameraInfo of camera n's colour image (K of the aligned depth too).
    info_n_topic: str = "/camera_n/color/camera_info"
    # Colour image of camera m.
    color_m_topic: str = "/camera_m/color/image_raw"
    # Depth of camera m aligned to its colour image.
    depth_m_topic: str = "/camera_m/aligned_depth_to_color/image_raw"
    # CameraInfo of camera m's colour image.
    info_m_topic: str = "/camera_m/color/camera_info"
    # geometry_msgs/PoseArray: current end-effector (TCP) pose of each arm in base_frame, in `arms` order.
    ee_pose_topic: str = "/geo4d/robot/ee_poses"
    # sensor_msgs/JointState: current finger opening of each arm in metres (name = arm name).
    gripper_state_topic: str = "/geo4d/robot/gripper_state"

    # --- output topics ---
    # nav_msgs/Path of planned TCP poses in base_frame; with several arms "/<arm>" is appended.
    path_topic: str = "/geo4d/plan/path"
    # sensor_msgs/JointState: gripper command of the plan's first step, position = opening in metres.
    gripper_command_topic: str = "/geo4d/plan/gripper"
    # trajectory_msgs/JointTrajectory: gripper openings of every plan step (time_from_start = step time).
    gripper_trajectory_topic: str = "/geo4d/plan/gripper_trajectory"
    # std_msgs/String (JSON): why the last plan was rejected by the plan checks (never published as a plan).
    rejected_topic: str = "/geo4d/plan/rejected"
    # sensor_msgs/PointCloud2 of the predicted view-n points (camera_n_frame), coloured by predicted RGB.
    cloud_n_topic: str = "/geo4d/prediction/points_n"
    # sensor_msgs/PointCloud2 of the predicted view-m points, already in camera_n_frame.
    cloud_m_topic: str = "/geo4d/prediction/points_m"
    # sensor_msgs/Image (rgb8) of predicted view n at step `preview_step`.
    image_n_topic: str = "/geo4d/prediction/color_n"
    # sensor_msgs/Image (rgb8) of predicted view m at step `preview_step`.
    image_m_topic: str = "/geo4d/prediction/color_m"
    # std_msgs/String (JSON): stage latencies, frame counters (received / paired / dropped by reason), errors.
    status_topic: str = "/geo4d/status"

    # --- frames and calibration ---
    # Robot base frame B of the plans.
    base_frame: str = "panda_link0"
    # Camera n's optical frame (frame of the predicted point clouds).
    camera_n_frame: str = "camera_n_color_optical_frame"
    # X_BC_n as [x, y, z, qx, qy, qz, qw]: camera n's optical frame in base_frame, metres.
    camera_n_extrinsic: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    # Where X_BC_n comes from: "parameter" (camera_n_extrinsic) or "tf" (base_frame <- camera_n_frame, every cycle).
    camera_n_extrinsic_source: str = "parameter"
    # Arm names, in the order of ee_pose_topic's poses; plans cover every arm.
    arms: list[str] = field(default_factory=lambda: ["arm"])

    # --- model and planning ---
    # World-model checkpoint folder (save_pretrained format); empty = the node waits for one (status says so).
    checkpoint: str = ""
    # torch device of the model: "cpu", "cuda", "cuda:1", ...
    device: str = "cpu"
    # Euler sampling steps per planning cycle.
    sampler_steps: int = 10
    # Plan steps published per cycle (<= the model's horizon h); 0 = all h.
    horizon: int = 0
    # Seed of the first cycle's sampling noise; cycle k uses seed + k.
    seed: int = 0
    # Time between plan steps, seconds (the 10 Hz control rate).
    dt: float = 0.1
    # Gripper closed when the finger-centroid distance is below this, metres; <= 0 = derived from the hand.
    gripper_delta: float = 0.0
    # A plan step whose best view's tracking confidence is below this holds the last pose, [0, 1].
    min_confidence: float = 0.6
    # Hand pose tracker: "icp" (built-in, CPU) or "foundationpose" (NVIDIA FoundationPose, CUDA GPU).
    tracker: str = "icp"
    # Gripper mesh for FoundationPose (vertices in metres in the hand frame); needed with tracker foundationpose.
    foundationpose_mesh: str = ""
    # Plan workspace box in base_frame, lower corner, metres.
    workspace_lo: list[float] = field(default_factory=lambda: [-1.0, -1.0, -0.05])
    # Plan workspace box in base_frame, upper corner, metres.
    workspace_hi: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.2])
    # Largest allowed TCP speed between plan steps, m/s.
    max_linear_speed: float = 1.0
    # Largest allowed TCP rotation speed between plan steps, rad/s.
    max_angular_speed: float = 3.0

    # --- input handling ---
    # Largest spread of the four image stamps in one synchronized pair, seconds.
    slop: float = 0.02
    # Messages kept per image stream while waiting for partners.
    queue_size: int = 10
    # A pair is rejected when less than this fraction of a depth image is valid (finite and > 0).
    min_valid_depth_fraction: float = 0.2
    # Robot state older than this (relative to the image pair) is refused, seconds; <= 0 = no limit.
    max_state_age: float = 0.5
    # How long a cycle waits for camera_info / robot state that arrive just after the images, seconds.
    input_wait: float = 0.5
    # Minimum time between the starts of two planning cycles, seconds (0 = back to back).
    min_cycle_period: float = 0.0
    # Publish the predicted point clouds and preview images (RViz); off saves time on big images.
    publish_predictions: bool = True
    # Which predicted step the preview image and clouds show (1 .. h; -1 = the last).
    preview_step: int = -1
    # Period of the status message, seconds.
    status_period: float = 1.0
    # The same error (topic + problem) is logged at most once per this many seconds; counts continue.
    error_log_period: float = 5.0

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> "WorldModelNodeParams":
        """Raise ParamsError naming the first bad parameter."""
        for f in fields(self):
            if f.name.endswith("_topic") and not (isinstance(getattr(self, f.name), str) and getattr(self, f.name)):
                raise ParamsError(f"parameter {f.name!r} must be a non-empty topic name, got {getattr(self, f.name)!r}")
        if len(self.camera_n_extrinsic) != 7 or not all(math.isfinite(float(v)) for v in self.camera_n_extrinsic):
            raise ParamsError("parameter 'camera_n_extrinsic' must be 7 finite numbers [x, y, z, qx, qy, qz, qw], "
                              f"got {list(self.camera_n_extrinsic)}")
        qnorm = float(np.linalg.norm(np.asarray(self.camera_n_extrinsic[3:], dtype=float)))
        if abs(qnorm - 1.0) > 1e-3:
            raise ParamsError(f"parameter 'camera_n_extrinsic' quaternion must have unit norm, got norm {qnorm:.6f}")
        if self.camera_n_extrinsic_source not in ("parameter", "tf"):
            raise ParamsError("parameter 'camera_n_extrinsic_source' must be 'parameter' or 'tf', "
                              f"got {self.camera_n_extrinsic_source!r}")
        if not self.arms or len(set(self.arms)) != len(self.arms) or not all(isinstance(a, str) and a for a in self.arms):
            raise ParamsError(f"parameter 'arms' must be distinct non-empty names, got {list(self.arms)}")
        for name in ("workspace_lo", "workspace_hi"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(float(x)) for x in v):
                raise ParamsError(f"parameter {name!r} must be 3 finite numbers (x, y, z metres), got {list(v)}")
        if any(lo >= hi for lo, hi in zip(self.workspace_lo, self.workspace_hi)):
            raise ParamsError(f"parameter 'workspace_lo' {list(self.workspace_lo)} must be below 'workspace_hi' "
                              f"{list(self.workspace_hi)} on every axis")
        positive = ("dt", "max_linear_speed", "max_angular_speed", "status_period")
        for name in positive:
            if not float(getattr(self, name)) > 0:
                raise ParamsError(f"parameter {name!r} must be > 0, got {getattr(self, name)}")
        non_negative = ("slop", "input_wait", "min_cycle_period", "error_log_period", "horizon")
        for name in non_negative:
            if not float(getattr(self, name)) >= 0:
                raise ParamsError(f"parameter {name!r} must be >= 0, got {getattr(self, name)}")
        if self.sampler_steps < 1:
            raise ParamsError(f"parameter 'sampler_steps' must be >= 1, got {self.sampler_steps}")
        if self.queue_size < 1:
            raise ParamsError(f"parameter 'queue_size' must be >= 1, got {self.queue_size}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ParamsError(f"parameter 'min_confidence' must be in [0, 1], got {self.min_confidence}")
        if self.tracker not in ("icp", "foundationpose"):
            raise ParamsError(f"parameter 'tracker' must be 'icp' or 'foundationpose', got {self.tracker!r}")
        if self.tracker == "foundationpose" and not self.foundationpose_mesh:
            raise ParamsError("parameter 'foundationpose_mesh' must name the gripper mesh file when 'tracker' is "
                              "'foundationpose'")
        if not 0.0 <= self.min_valid_depth_fraction <= 1.0:
            raise ParamsError(f"parameter 'min_valid_depth_fraction' must be in [0, 1], got {self.min_valid_depth_fraction}")
        if self.preview_step == 0:
            raise ParamsError("parameter 'preview_step' counts from 1 (or -1 for the last step), got 0")
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def X_BC_n(self) -> np.ndarray:
        """Camera n's optical frame in the robot base frame, (4, 4) metres."""
        return self.pose_from_extrinsic(self.camera_n_extrinsic)

    @staticmethod
    def pose_from_extrinsic(values) -> np.ndarray:
        """(4, 4) pose of [x, y, z, qx, qy, qz, qw] (metres; the quaternion is normalised)."""
        v = np.asarray(values, dtype=np.float64)
        X = np.eye(4)
        X[:3, :3] = Rotation.from_quat(v[3:] / np.linalg.norm(v[3:])).as_matrix()
        X[:3, 3] = v[:3]
        return X

    @staticmethod
    def extrinsic_from_pose(X_BC: np.ndarray) -> list[float]:
        """[x, y, z, qx, qy, qz, qw] of a (4, 4) pose (the inverse of `X_BC_n`)."""
        X = np.asarray(X_BC, dtype=np.float64)
        return [float(v) for v in X[:3, 3]] + [float(v) for v in Rotation.from_matrix(X[:3, :3]).as_quat()]

    def path_topic_for(self, arm: str) -> str:
        """The Path topic of one arm: `path_topic`, with "/<arm>" appended when there are several arms."""
        return self.path_topic if len(self.arms) == 1 else f"{self.path_topic}/{arm}"

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "WorldModelNodeParams":
        """Build from a flat name -> value mapping; unknown names and wrong types raise ParamsError."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParamsError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        defaults = cls.__new__(cls)
        for f in fields(cls):  # defaults without validation, to read the expected types
            setattr(defaults, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        kwargs = {name: _coerce(name, value, getattr(defaults, name)) for name, value in values.items()}
        return cls(**{**{f.name: getattr(defaults, f.name) for f in fields(cls)}, **kwargs})

    def to_mapping(self) -> dict[str, Any]:
        """Flat name -> value mapping (ROS parameter types: str, int, float, bool, lists of them)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), (list, tuple)) else v) for f in fields(self)}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of `default`, or ParamsError naming the parameter."""
    def fail(expected: str) -> ParamsError:
        return ParamsError(f"parameter {name!r} must be {expected}, got {value!r} ({type(value).__name__})")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        if default and isinstance(default[0], str):
            if not all(isinstance(v, str) for v in value):
                raise fail("a list of strings")
            return list(value)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise fail("a list of numbers")
        return [float(v) for v in value]
    raise fail(type(default).__name__)  # pragma: no cover - every field has one of the types above


def default_params_file() -> Path:
    """The parameter YAML shipped with the package (`config/geo4d.yaml`): installed under
    share/geo4d/config, or the repository's copy when running from a checkout."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "config" / "geo4d.yaml"]  # repository checkout: ros2_ws/geo4d_ros/params.py
    try:
        from ament_index_python.packages import get_package_share_directory  # a ROS install

        candidates.insert(0, Path(get_package_share_directory("geo4d")) / "config" / "geo4d.yaml")
    except Exception:  # noqa: BLE001 - no ament index (pip install): fall back to the checkout / sys.prefix
        pass
    candidates.append(Path(sys.prefix) / "share" / "geo4d" / "config" / "geo4d.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"geo4d.yaml not found in {[str(p) for p in candidates]}")


def load_params_file(path: str | Path, node_name: str = NODE_NAME,
                     overrides: Mapping[str, Any] | None = None) -> WorldModelNodeParams:
    """Parameters from a ROS parameter YAML (`<node>: {ros__parameters: {...}}`, or `/**` for every node,
    or a flat mapping), with `overrides` applied on top."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"parameter file {path} must hold a mapping, got {type(data).__name__}")
    values: dict[str, Any] = {}
    blocks = [data[k] for k in ("/**", node_name, f"/{node_name}") if isinstance(data.get(k), dict)]
    if blocks:
        for block in blocks:
            if "ros__parameters" not in block:
                raise ParamsError(f"parameter file {path}: the '{node_name}' block needs a 'ros__parameters' key")
            values.update(block["ros__parameters"] or {})
    elif any(isinstance(v, dict) and "ros__parameters" in v for v in data.values()):
        raise ParamsError(f"parameter file {path} has no block for node '{node_name}' (blocks: {sorted(data)})")
    else:
        values.update(data)
    values.update(overrides or {})
    return WorldModelNodeParams.from_mapping(values)
