"""Shared fixtures of the ROS tests. `ros_context`: an rclpy context on loopback with a test-specific
domain. `make_rig`: a test rig around the world-model node: a driver node that publishes camera frames and robot state
like a RealSense driver and a robot would, records everything the world-model node publishes, and an
executor spinning both nodes in a background thread. Waiting is condition-based with a deadline."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Callable

import os

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import Path
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from geo4d_ros.env import apply_loopback_env
from geo4d_ros.conversions import (
    K_to_camera_info,
    depth_to_image,
    gripper_joint_state,
    poses_to_pose_array,
    rgb_to_image,
)
from geo4d_ros.world_model_node import RELIABLE_QOS, SENSOR_QOS, WorldModelNode


class Rig:
    """Drives a `WorldModelNode` over real topics on loopback."""

    def __init__(self, context, node: WorldModelNode):
        self.context, self.wm = context, node
        p = node.params
        self.node = rclpy.create_node("geo4d_test_driver", context=context)
        self.cv = threading.Condition()
        self.got: dict[str, list] = defaultdict(list)
        self.pubs = {
            "color_n": self.node.create_publisher(Image, p.color_n_topic, SENSOR_QOS),
            "depth_n": self.node.create_publisher(Image, p.depth_n_topic, SENSOR_QOS),
            "info_n": self.node.create_publisher(CameraInfo, p.info_n_topic, SENSOR_QOS),
            "color_m": self.node.create_publisher(Image, p.color_m_topic, SENSOR_QOS),
            "depth_m": self.node.create_publisher(Image, p.depth_m_topic, SENSOR_QOS),
            "info_m": self.node.create_publisher(CameraInfo, p.info_m_topic, SENSOR_QOS),
            "ee": self.node.create_publisher(PoseArray, p.ee_pose_topic, RELIABLE_QOS),
            "gripper": self.node.create_publisher(JointState, p.gripper_state_topic, RELIABLE_QOS),
        }
        outputs = [(f"path/{arm}", Path, p.path_topic_for(arm), RELIABLE_QOS) for arm in p.arms] + [
            ("gripper", JointState, p.gripper_command_topic, RELIABLE_QOS),
            ("gripper_traj", JointTrajectory, p.gripper_trajectory_topic, RELIABLE_QOS),
            ("rejected", String, p.rejected_topic, RELIABLE_QOS),
            ("status", String, p.status_topic, RELIABLE_QOS),
            ("cloud_n", PointCloud2, p.cloud_n_topic, SENSOR_QOS),
            ("cloud_m", PointCloud2, p.cloud_m_topic, SENSOR_QOS),
            ("image_n", Image, p.image_n_topic, SENSOR_QOS),
        ]
        for key, kind, topic, qos in outputs:
            self.node.create_subscription(kind, topic, lambda msg, k=key: self._store(k, msg), qos)
        self.executor = MultiThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _store(self, key: str, msg) -> None:
        with self.cv:
            self.got[key].append(msg)
            self.cv.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        """Wait until `predicate()` holds (re-checked on every received message and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out after {timeout} s waiting for {what}; status: {self.wm.status()}"
                self.cv.wait(min(0.05, remaining))

    def wait_connected(self) -> None:
        """Wait until every driver publisher reaches the node and every output reaches the driver."""
        self.wait(lambda: all(pub.get_subscription_count() > 0 for pub in self.pubs.values()),
                  "the world-model node's subscriptions")
        self.wait(lambda: self.wm.pub_status.get_subscription_count() > 0
                  and all(pub.get_subscription_count() > 0 for pub in self.wm.pub_paths.values()),
                  "the driver's subscriptions")

    def status(self) -> dict:
        with self.cv:
            return json.loads(self.got["status"][-1].data)

    # -------------------------------------------------------------- publishing
    def publish_info(self, cam: str, K: np.ndarray, height: int, width: int, stamp: float = 0.0) -> None:
        self.pubs[f"info_{cam}"].publish(K_to_camera_info(K, height, width, stamp, f"camera_{cam}"))

    def publish_state(self, X_BE: np.ndarray, widths: np.ndarray, stamp: float) -> None:
        arms = self.wm.params.arms
        self.pubs["ee"].publish(poses_to_pose_array(np.asarray(X_BE), stamp, self.wm.params.base_frame))
        self.pubs["gripper"].publish(gripper_joint_state(np.asarray(widths, dtype=float), list(arms), stamp))

    def publish_images(self, cam: str, rgb: np.ndarray | Image, depth: np.ndarray | Image, stamp: float, *,
                       color_encoding: str = "rgb8", depth_encoding: str = "32FC1") -> None:
        frame = f"camera_{cam}_color_optical_frame"
        color_msg = rgb if isinstance(rgb, Image) else rgb_to_image(rgb, stamp, frame, color_encoding)
        depth_msg = depth if isinstance(depth, Image) else depth_to_image(depth, stamp, frame, depth_encoding)
        self.pubs[f"color_{cam}"].publish(color_msg)
        self.pubs[f"depth_{cam}"].publish(depth_msg)

    def close(self) -> None:
        self.wm.shutdown()
        self.executor.shutdown()
        self._thread.join(timeout=10)
        self.node.destroy_node()
        self.wm.destroy_node()


@pytest.fixture
def ros_context(monkeypatch, tmp_path):
    """An initialised rclpy context with the loopback discovery range, a test-specific ROS_DOMAIN_ID and
    a temporary ROS_LOG_DIR."""
    domain = 100 + os.getpid() % 100  # parallel test runs on one machine do not talk to each other
    for key, value in apply_loopback_env({}, domain_id=domain, log_dir=str(tmp_path)).items():
        monkeypatch.setenv(key, value)
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def make_rig(ros_context):
    """make_rig(params, model=None) -> a connected Rig around a new WorldModelNode; closed afterwards."""
    rigs = []

    def make(params, model=None) -> Rig:
        node = WorldModelNode(params, model=model, context=ros_context)
        rig = Rig(ros_context, node)
        rigs.append(rig)
        rig.wait_connected()
        return rig

    yield make
    for rig in rigs:
        rig.close()
