"""The world-model node: two RGB-D cameras in, an end-effector plan out (DESIGN.md §1, §6).

Inputs (defaults follow the RealSense driver; all are parameters, and remappable):
  /camera_{n,m}/color/image_raw                      rgb8 / bgr8
  /camera_{n,m}/aligned_depth_to_color/image_raw     16UC1 (mm) / 32FC1 (m)
  /camera_{n,m}/color/camera_info                    K of the colour (and aligned depth) image
  /geo4d/robot/ee_poses      geometry_msgs/PoseArray, TCP pose of each arm in the robot base frame B
  /geo4d/robot/gripper_state sensor_msgs/JointState, finger opening of each arm (name = arm), metres
Outputs: the plan (`nav_msgs/Path` per arm in B; gripper commands as `sensor_msgs/JointState` for the
first step and `trajectory_msgs/JointTrajectory` for every step), rejected plans' reasons, predicted
point clouds (camera n's frame) and colour images, and a JSON status.

Threads: subscription callbacks only decode and queue (no model work); the four image streams are paired
by approximate time (`geo4d_ros.sync`); a worker thread runs one planning cycle at a time, always on the
newest pair, so a slow model skips stale pairs instead of queueing them. Every bad input is counted and
logged rate-limited (`geo4d_ros.problems`), frames whose stamps never pair included, and the node keeps
serving.

Calibration: camera n's extrinsic X_BC_n is the `camera_n_extrinsic` parameter, or, with
`camera_n_extrinsic_source: tf`, the newest `base_frame` <- `camera_n_frame` transform from tf2_ros,
looked up every cycle (tf2_ros comes with a ROS 2 install; it is not on PyPI). Without a transform
(no tf2_ros, nothing published yet) the cycle plans nothing and the status says why.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from nav_msgs.msg import Path

from geo4d_core.action.gripper_state import GripperStateConfig
from geo4d_core.action.hand import MAX_OPENING
from geo4d_core.action.plan import Plan, PlanLimits
from geo4d_ros.conversions import (
    ConversionError,
    camera_info_to_K,
    gripper_joint_state,
    header,
    image_to_depth,
    image_to_rgb,
    points_to_pointcloud2,
    pose_array_to_poses,
    poses_to_path,
    rgb_to_image,
    stamp_to_seconds,
)
from geo4d_ros.params import NODE_NAME, ParamsError, WorldModelNodeParams
from geo4d_ros.problems import ProblemLog
from geo4d_ros.sync import ApproximateTimeSync, SyncDrop, SyncSet

__all__ = ["WorldModelNode", "main", "truncate_plan", "SENSOR_QOS"]

STREAMS = ("color_n", "depth_n", "color_m", "depth_m")
# Synchroniser drops that mean bad input (stamps that never pair, a stream that stopped): reported as problems
# of the dropped frame's topic. "superseded" (a newer pair won) and "reset" are only counted.
REPORTED_DROPS = ("no_match_within_slop", "queue_overflow")
# Best effort, keep the newest few: matches both reliable and best-effort camera publishers.
SENSOR_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.BEST_EFFORT, history=QoSHistoryPolicy.KEEP_LAST)
RELIABLE_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST)


def truncate_plan(plan: Plan, steps: int) -> Plan:
    """The first `steps` steps of a plan (all of them when steps <= 0 or >= its length)."""
    if steps <= 0 or steps >= plan.num_steps:
        return plan
    return dataclasses.replace(
        plan, timestamps=plan.timestamps[:steps], X_BE=plan.X_BE[:steps], gripper_closed=plan.gripper_closed[:steps],
        confidence=plan.confidence[:steps], source_view=plan.source_view[:steps],
        gripper_width=None if plan.gripper_width is None else plan.gripper_width[:steps])


def plan_openings(plan: Plan) -> np.ndarray:
    """(N, A) commanded finger openings in metres (closed = 0, open = fully open, or the plan's widths)."""
    if plan.gripper_width is not None:
        return np.asarray(plan.gripper_width, dtype=np.float64)
    return np.where(plan.gripper_closed, 0.0, MAX_OPENING)


@dataclass
class _CameraInfo:
    K: np.ndarray  # (3, 3) pixels
    size: tuple[int, int]  # (height, width) of the images it describes


@dataclass
class _RobotState:
    X_BE: np.ndarray  # (A, 4, 4) in B
    stamp: float  # seconds
    X_BE_prev: np.ndarray | None  # the previous message's poses


class WorldModelNode(Node):
    """Subscribes to two RGB-D cameras and the robot state; publishes plans (see the module doc).

    Args:
        params: defaults of the ROS parameters (ROS parameter overrides, e.g. from a launch file, win).
        model: an already loaded `WorldModel` (tests, `geo4d bringup`); None = load `params.checkpoint`
            in the worker thread.
        start_worker: start the planning thread (False: call `run_cycle()` yourself, e.g. in benchmarks).
    """

    def __init__(self, params: WorldModelNodeParams | None = None, *, node_name: str = NODE_NAME, model=None,
                 start_worker: bool = True, **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        defaults = params or WorldModelNodeParams()
        for name, value in defaults.to_mapping().items():
            self.declare_parameter(name, value, ParameterDescriptor(dynamic_typing=True))
        values = {name: self.get_parameter(name).value for name in defaults.to_mapping()}
        try:
            self.params = WorldModelNodeParams.from_mapping(values)
        except ParamsError as exc:
            self.get_logger().fatal(str(exc))
            raise
        p = self.params
        self.problems = ProblemLog(self.get_logger().error, p.error_log_period)
        self._topics = {"color_n": p.color_n_topic, "depth_n": p.depth_n_topic, "color_m": p.color_m_topic,
                        "depth_m": p.depth_m_topic}
        self.sync = ApproximateTimeSync(STREAMS, p.slop, p.queue_size, callback=self._on_pair,
                                        on_drop=self._on_sync_drop)
        self._info_topics = {"n": p.info_n_topic, "m": p.info_m_topic}
        self._infos: dict[str, _CameraInfo] = {}
        self._undecodable: dict[str, float] = {}  # stream -> stamp of its latest frame that failed to decode
        self._state: _RobotState | None = None
        self._opening: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._processed_index = -1
        self.counters = {"received": dict.fromkeys(STREAMS, 0), "decode_errors": dict.fromkeys(STREAMS, 0),
                         "cycles": 0, "cycles_failed": 0, "pairs_rejected": 0, "plans_published": 0,
                         "plans_rejected": 0}
        self._counters_lock = threading.Lock()  # callbacks and the planning worker both count
        self.latency: dict[str, float] = {}
        self.model = model
        self.model_status = "loaded" if model is not None else ("loading" if p.checkpoint else "no checkpoint set")
        self.policy = None
        if model is not None:
            self.policy = self._make_policy(model)
        self._tf_buffer = None  # tf2_ros.Buffer when camera_n_extrinsic_source is "tf" and tf2_ros imports
        if p.camera_n_extrinsic_source == "tf":
            try:
                import tf2_ros
            except ImportError as exc:
                self.problems.report("tf", "unavailable", f"camera_n_extrinsic_source is 'tf' but tf2_ros cannot "
                                     f"be imported ({exc}); install ROS 2's tf2_ros or set camera_n_extrinsic_source: "
                                     "parameter. No plans until then")
            else:
                self._tf_buffer = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)

        for stream, topic in self._topics.items():
            self.create_subscription(Image, topic, lambda msg, s=stream: self._on_image(s, msg), SENSOR_QOS)
        for cam, topic in self._info_topics.items():
            self.create_subscription(CameraInfo, topic, lambda msg, c=cam: self._on_info(c, msg), SENSOR_QOS)
        self.create_subscription(PoseArray, p.ee_pose_topic, self._on_ee_poses, RELIABLE_QOS)
        self.create_subscription(JointState, p.gripper_state_topic, self._on_gripper_state, RELIABLE_QOS)

        self.pub_paths = {arm: self.create_publisher(Path, p.path_topic_for(arm), RELIABLE_QOS) for arm in p.arms}
        self.pub_gripper = self.create_publisher(JointState, p.gripper_command_topic, RELIABLE_QOS)
        self.pub_gripper_traj = self.create_publisher(JointTrajectory, p.gripper_trajectory_topic, RELIABLE_QOS)
        self.pub_rejected = self.create_publisher(String, p.rejected_topic, RELIABLE_QOS)
        self.pub_cloud = {"n": self.create_publisher(PointCloud2, p.cloud_n_topic, SENSOR_QOS),
                          "m": self.create_publisher(PointCloud2, p.cloud_m_topic, SENSOR_QOS)}
        self.pub_image = {"n": self.create_publisher(Image, p.image_n_topic, SENSOR_QOS),
                          "m": self.create_publisher(Image, p.image_m_topic, SENSOR_QOS)}
        self.pub_status = self.create_publisher(String, p.status_topic, RELIABLE_QOS)
        self.create_timer(p.status_period, self.publish_status)
        self.create_service(Trigger, "~/reload_model", self._on_reload)

        self._worker: threading.Thread | None = None
        if start_worker:
            self._worker = threading.Thread(target=self._work, name="geo4d_planning", daemon=True)
            self._worker.start()
        self.get_logger().info(
            f"geo4d world model: cameras {p.color_n_topic} / {p.color_m_topic}, plans on {p.path_topic} "
            f"in {p.base_frame}, model: {self.model_status}")

    # ------------------------------------------------------------------ model
    def _make_policy(self, model):
        from geo4d_core.policy import PolicyConfig, WorldModelPolicy

        p = self.params
        gripper = PolicyConfig().extraction.gripper
        if p.gripper_delta > 0:
            gripper = dataclasses.replace(gripper, closed_below_opening=p.gripper_delta)
        limits = PlanLimits(max_linear_speed=p.max_linear_speed, max_angular_speed=p.max_angular_speed,
                            workspace_lo=tuple(p.workspace_lo), workspace_hi=tuple(p.workspace_hi))
        # The policy's tracking settings (as in simulation), with the node's gripper threshold and hold rule.
        extraction = dataclasses.replace(PolicyConfig().extraction, gripper=gripper, min_confidence=p.min_confidence)
        if p.tracker == "foundationpose":
            from geo4d_core.action.foundationpose import FoundationPoseConfig, FoundationPoseTracker

            fp = FoundationPoseConfig(mesh_path=p.foundationpose_mesh)
            FoundationPoseTracker.check_available(fp)  # fail at load time, naming what is missing
            extraction = dataclasses.replace(extraction, tracker="foundationpose", foundationpose=fp)
        config = PolicyConfig(steps=p.sampler_steps, seed=p.seed, dt=p.dt, extraction=extraction, limits=limits)
        horizon = int(model.config.horizon)
        if p.horizon > horizon:
            raise ValueError(f"parameter 'horizon' = {p.horizon} exceeds the model's horizon h = {horizon}")
        return WorldModelPolicy(model, p.X_BC_n, config)

    def load_model(self) -> bool:
        """Load `checkpoint` (in the calling thread). On failure the node keeps running without a model,
        the status says why, and `~/reload_model` can try again."""
        from geo4d_core.model.world_model import WorldModel

        p = self.params
        if not p.checkpoint:
            self.model_status = "no checkpoint set"
            self.problems.report("checkpoint", "not_set", "parameter 'checkpoint' is empty: no plans until one is set "
                                 "and ~/reload_model is called")
            return False
        self.model_status = "loading"
        start = time.perf_counter()
        try:
            model = WorldModel.from_pretrained(p.checkpoint, device=p.device)
            policy = self._make_policy(model)
        except Exception as exc:  # noqa: BLE001 - any load failure leaves the node serving, without a model
            self.model_status = f"failed: {type(exc).__name__}: {exc}"
            self.problems.report("checkpoint", "load_failed", f"cannot load world model from {p.checkpoint!r} "
                                 f"on {p.device!r}: {type(exc).__name__}: {exc}")
            return False
        with self._lock:
            self.model, self.policy = model, policy
        self.model_status = "loaded"
        self.latency["model_load_s"] = time.perf_counter() - start
        self.get_logger().info(f"loaded world model {p.checkpoint} ({self.latency['model_load_s']:.1f} s)")
        return True

    def _on_reload(self, request, response):
        response.success = self.load_model()
        response.message = self.model_status
        return response

    # ------------------------------------------------------------------ callbacks (never block)
    def _on_image(self, stream: str, msg: Image) -> None:
        self._count("received", stream)
        topic = self._topics[stream]
        stamp = stamp_to_seconds(msg.header.stamp)
        try:
            pixels = image_to_rgb(msg) if stream.startswith("color") else image_to_depth(msg)
        except ConversionError as exc:
            self._count("decode_errors", stream)
            self._undecodable[stream] = stamp
            self.problems.report(topic, "bad_image", str(exc))
            return
        self.sync.push(stream, stamp, pixels)

    def _on_info(self, cam: str, msg: CameraInfo) -> None:
        try:
            K = camera_info_to_K(msg)
        except ConversionError as exc:
            self.problems.report(self._info_topics[cam], "bad_camera_info", str(exc))
            return
        with self._wake:
            self._infos[cam] = _CameraInfo(K, (int(msg.height), int(msg.width)))
            self._wake.notify_all()

    def _on_ee_poses(self, msg: PoseArray) -> None:
        p = self.params
        if len(msg.poses) != len(p.arms):
            self.problems.report(p.ee_pose_topic, "wrong_arm_count",
                                 f"got {len(msg.poses)} poses for arms {p.arms} (one per arm, in that order)")
            return
        try:
            X = pose_array_to_poses(msg)
        except ConversionError as exc:
            self.problems.report(p.ee_pose_topic, "bad_pose", str(exc))
            return
        with self._wake:
            prev = self._state.X_BE if self._state is not None else None
            self._state = _RobotState(X, stamp_to_seconds(msg.header.stamp), prev)
            self._wake.notify_all()

    def _on_gripper_state(self, msg: JointState) -> None:
        openings = dict(zip(msg.name, msg.position))
        bad = [arm for arm in self.params.arms if arm in openings and not np.isfinite(openings[arm])]
        if bad:
            self.problems.report(self.params.gripper_state_topic, "bad_value", f"non-finite opening for arms {bad}")
            return
        with self._lock:
            self._opening.update({k: float(v) for k, v in openings.items() if k in self.params.arms})

    def _on_pair(self, pair: SyncSet) -> None:
        with self._wake:
            self._wake.notify()

    def _on_sync_drop(self, drop: SyncDrop) -> None:
        """A frame the synchroniser gave up on: report never-pairing stamps and full queues, naming the
        frame's topic and the topics that had no frame within `slop` of it."""
        if drop.reason not in REPORTED_DROPS:
            return
        hint = None
        bad = [s for s in drop.missing() if abs(self._undecodable.get(s, np.inf) - drop.stamp) <= drop.slop]
        if bad:  # its partner did arrive, but could not be decoded
            partners = " and ".join(f"{self._topics[s]} at {self._undecodable[s]:.3f} s" for s in bad)
            hint = f"its partner on {partners} failed to decode (bad_image)"
        self.problems.report(self._topics[drop.stream], drop.reason, drop.describe(self._topics, hint))

    # ------------------------------------------------------------------ planning
    def _work(self) -> None:
        if self.model is None and self.params.checkpoint:
            self.load_model()
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stop or self._newest_unprocessed() is not None)
                if self._stop:
                    return
            self.run_cycle()
            if self.params.min_cycle_period > 0:
                with self._wake:
                    self._wake.wait(self.params.min_cycle_period)

    def _newest_unprocessed(self) -> SyncSet | None:
        pair = self.sync.latest()
        return pair if pair is not None and pair.index > self._processed_index else None

    def shutdown(self) -> None:
        """Stop the planning thread (waits for the current cycle)."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join()

    def camera_n_extrinsic(self) -> np.ndarray | None:
        """X_BC_n (4, 4, metres) for this cycle: the parameter, or the newest TF transform (None after
        reporting why there is none)."""
        p = self.params
        if p.camera_n_extrinsic_source == "parameter":
            return p.X_BC_n
        if self._tf_buffer is None:
            self._reject("tf", "unavailable", "camera_n_extrinsic_source is 'tf' but tf2_ros is not available; "
                         "not planning")
            return None
        from rclpy.time import Time

        try:
            t = self._tf_buffer.lookup_transform(p.base_frame, p.camera_n_frame, Time()).transform
        except Exception as exc:  # noqa: BLE001 - tf2's Lookup/Connectivity/Extrapolation exceptions
            self._reject("tf", "lookup_failed", f"no transform {p.base_frame} <- {p.camera_n_frame}: "
                         f"{type(exc).__name__}: {exc}; not planning")
            return None
        xyzq = [t.translation.x, t.translation.y, t.translation.z,
                t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w]
        if not (np.all(np.isfinite(xyzq)) and np.linalg.norm(xyzq[3:]) > 0.5):
            self._reject("tf", "bad_transform", f"transform {p.base_frame} <- {p.camera_n_frame} is not a pose: "
                         f"{xyzq}; not planning")
            return None
        return WorldModelNodeParams.pose_from_extrinsic(xyzq)

    def _reject(self, source: str, kind: str, message: str) -> None:
        self._count("pairs_rejected")
        self.problems.report(source, kind, message)

    def _observations(self, pair: SyncSet):
        """(obs_n, obs_m) from a synchronized pair, or None after reporting what is wrong."""
        from geo4d_core.model.world_model import Observation

        p = self.params
        with self._wake:  # camera_info may arrive just after the first images
            self._wake.wait_for(lambda: self._stop or len(self._infos) == 2, p.input_wait)
        obs = {}
        for cam in ("n", "m"):
            rgb, depth = pair.messages[f"color_{cam}"], pair.messages[f"depth_{cam}"]
            if rgb.shape[:2] != depth.shape:
                self._reject(self._topics[f"depth_{cam}"], "size_mismatch",
                             f"depth is {depth.shape[1]}x{depth.shape[0]} but colour ({self._topics[f'color_{cam}']}) "
                             f"is {rgb.shape[1]}x{rgb.shape[0]}; use depth aligned to colour")
                return None
            info = self._infos.get(cam)
            if info is None:
                self._reject(self._info_topics[cam], "missing_camera_info",
                             "no camera_info received yet; cannot use the images without intrinsics")
                return None
            if info.size != rgb.shape[:2]:
                self._reject(self._info_topics[cam], "size_mismatch",
                             f"camera_info is for {info.size[1]}x{info.size[0]} images but the colour image is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
                return None
            valid = float((depth > 0).mean())
            if valid < p.min_valid_depth_fraction:
                self._reject(self._topics[f"depth_{cam}"], "too_little_depth",
                             f"only {valid:.0%} of the depth pixels are valid (0, NaN and inf count as invalid); need at least "
                             f"{p.min_valid_depth_fraction:.0%}")
                return None
            obs[cam] = Observation(rgb, depth, info.K)
        return obs["n"], obs["m"]

    def _robot_state(self, stamp: float):
        from geo4d_core.policy import RobotState

        p = self.params

        def current() -> bool:  # the state published with the images may arrive just after them
            return self._state is not None and (p.max_state_age <= 0 or abs(stamp - self._state.stamp) <= p.max_state_age)

        with self._wake:
            self._wake.wait_for(lambda: self._stop or current(), p.input_wait)
            state, openings = self._state, dict(self._opening)
        if state is None:
            self._reject(p.ee_pose_topic, "no_robot_state", "no end-effector pose received yet; the tracker needs "
                         "the robot's current pose")
            return None
        if p.max_state_age > 0 and abs(stamp - state.stamp) > p.max_state_age:
            self._reject(p.ee_pose_topic, "stale_robot_state", f"end-effector pose stamped {state.stamp:.3f} s is "
                         f"{abs(stamp - state.stamp):.3f} s from the image pair ({stamp:.3f} s); limit {p.max_state_age} s")
            return None
        width = np.array([openings.get(arm, MAX_OPENING) for arm in p.arms])
        closed = width < (p.gripper_delta if p.gripper_delta > 0 else GripperStateConfig().closed_below_opening)
        return RobotState(state.X_BE, closed, tuple(p.arms), state.X_BE_prev, width)

    def run_cycle(self) -> bool:
        """One planning cycle on the newest synchronized pair; returns whether a plan was published."""
        pair = self.sync.latest()
        if pair is None or pair.index <= self._processed_index:
            return False
        self._processed_index = pair.index
        t0 = time.perf_counter()
        stamp = pair.stamps["color_n"]
        obs = self._observations(pair)
        state = self._robot_state(stamp) if obs is not None else None
        if obs is None or state is None:
            return False
        with self._lock:
            policy = self.policy
        if policy is None:
            self._reject("checkpoint", "no_model", f"no world model ({self.model_status}); not planning")
            return False
        X_BC_n = self.camera_n_extrinsic()
        if X_BC_n is None:
            return False
        policy.X_BC_n = X_BC_n
        t1 = time.perf_counter()
        try:
            out = policy.predict_action(obs[0], obs[1], state)
        except Exception as exc:  # noqa: BLE001 - a failed cycle is reported; the node keeps serving
            self._count("cycles_failed")
            self.problems.report("world_model", "cycle_failed", f"planning cycle failed: {type(exc).__name__}: {exc}")
            return False
        t2 = time.perf_counter()
        self._count("cycles")
        p = self.params
        plan = truncate_plan(out.plan, p.horizon)
        violations = plan.check(policy.config.limits, X_BE_current=state.X_BE) if plan is not out.plan else out.violations
        published = False
        if violations:
            self._count("plans_rejected")
            reasons = [str(v) for v in violations]
            self.pub_rejected.publish(String(data=json.dumps({"stamp": stamp, "reasons": reasons})))
            self.problems.report("plan", "rejected", f"plan not published: {'; '.join(reasons[:3])}"
                                 + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""))
        else:
            self.publish_plan(plan, stamp)
            self._count("plans_published")
            published = True
        t3 = time.perf_counter()
        if p.publish_predictions and out.prediction is not None:
            self._publish_prediction(out.prediction, stamp)
        t4 = time.perf_counter()
        self.last_output = out
        self.last_plan = plan if published else None
        self.latency.update({"prepare_s": t1 - t0, "predict_s": out.timings["predict_s"],
                             "extract_s": out.timings["extract_s"], "plan_publish_s": t3 - t2,
                             "prediction_publish_s": t4 - t3, "cycle_s": t4 - t0})
        self.publish_status()
        return published

    def publish_plan(self, plan: Plan, stamp: float) -> None:
        """Publish a checked plan: one Path per arm (B), the first step's gripper command, the gripper
        trajectory. Pose stamps = observation stamp + the plan's step times."""
        p = self.params
        stamps = [stamp + float(t) for t in plan.timestamps]
        for a, arm in enumerate(plan.arms):
            self.pub_paths[arm].publish(poses_to_path(plan.X_BE[:, a], stamps, p.base_frame, header_stamp=stamp))
        widths = plan_openings(plan)
        self.pub_gripper.publish(gripper_joint_state(widths[0], list(plan.arms), stamps[0]))
        traj = JointTrajectory(header=header(stamp), joint_names=list(plan.arms))
        for k, t in enumerate(plan.timestamps):
            sec = int(np.floor(t))
            traj.points.append(JointTrajectoryPoint(positions=[float(w) for w in widths[k]],
                                                    time_from_start=Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)))))
        self.pub_gripper_traj.publish(traj)

    def _publish_prediction(self, pred, stamp: float) -> None:
        p = self.params
        k = p.preview_step - 1 if p.preview_step > 0 else pred.rgb_n.shape[0] - 1
        k = min(k, pred.rgb_n.shape[0] - 1)
        t = stamp + (k + 1) * p.dt
        for view, rgb, pts, valid in (("n", pred.rgb_n, pred.points_n, pred.valid_n),
                                      ("m", pred.rgb_m, pred.points_m_in_n, pred.valid_m)):
            mask = valid[k]
            self.pub_cloud[view].publish(points_to_pointcloud2(pts[k][mask], rgb[k][mask], t, p.camera_n_frame))
            self.pub_image[view].publish(rgb_to_image(rgb[k], t, p.camera_n_frame if view == "n" else "camera_m"))

    # ------------------------------------------------------------------ status
    def _count(self, name: str, stream: str | None = None) -> None:
        """Add one to counter `name` (per stream for "received" / "decode_errors")."""
        with self._counters_lock:
            if stream is None:
                self.counters[name] += 1
            else:
                self.counters[name][stream] += 1

    def status(self) -> dict[str, Any]:
        """Counters, latencies and problems as a JSON-ready dict (also published on `status_topic`)."""
        stats = self.sync.stats()
        latest = self.problems.latest()
        with self._counters_lock:  # one consistent snapshot
            c = {k: dict(v) if isinstance(v, dict) else v for k, v in self.counters.items()}
        return {
            "model": self.model_status,
            "frames": {s: {"received": c["received"][s], "decode_errors": c["decode_errors"][s],
                           "dropped": {r: n for r, n in stats.dropped[s].items() if n}, "pending": stats.pending[s]}
                       for s in STREAMS},
            "pairs": stats.emitted,
            "pairs_rejected": c["pairs_rejected"],
            "cycles": c["cycles"],
            "cycles_failed": c["cycles_failed"],
            "plans_published": c["plans_published"],
            "plans_rejected": c["plans_rejected"],
            "latency_s": {k: round(v, 4) for k, v in self.latency.items()},
            "problems": self.problems.counts(),
            "last_problem": None if latest is None else f"{latest.source}: {latest.last_message}",
        }

    def publish_status(self) -> None:
        self.pub_status.publish(String(data=json.dumps(self.status())))


def main(args: list[str] | None = None) -> None:
    """`geo4d_world_model --ros-args --params-file config/geo4d.yaml [-p checkpoint:=DIR]`."""
    from geo4d_ros.runner import run_node_main

    run_node_main(WorldModelNode, args)


if __name__ == "__main__":
    main()
