"""The simulated robot over ROS: a Drake trial (`sim.robot.SimRobot`) that publishes its two cameras
exactly as RealSense drivers would and executes the plans it receives, so the whole loop runs over
ROS topics with no hardware (`geo4d bringup --sim TASK`, `launch/sim_bringup.launch.py`).

Lock-step loop (in a worker thread; callbacks only store messages):
  1. observe: publish, all stamped with the trial's simulated time t, camera n and m colour (rgb8),
     aligned depth (16UC1 millimetres) and camera_info on the RealSense topic names, the TCP poses
     (`geometry_msgs/PoseArray`, frame `base_frame` = the simulation world W), the finger openings
     (`sensor_msgs/JointState`, name = arm) and every joint (`/joint_states`);
  2. wait up to `plan_timeout` wall seconds for a plan stamped t: the Path of every arm and the gripper
     JointTrajectory from the world-model node;
  3. execute its first `execute_steps` steps on the simulated arm (or hold one control period when no
     plan came, counted), and repeat until the task succeeds, the trial times out, `max_cycles` plans
     were executed, or an arm cannot follow a plan (a safety stop).
The outcome is published on `~/result` (std_msgs/String, JSON) and kept in `result`.

Needs pydrake (the `[sim]` extra) besides rclpy; imports `sim`, so it is the one ROS module that does.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseArray
from nav_msgs.msg import Path
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from geo4d_ros.conversions import (
    ConversionError,
    K_to_camera_info,
    depth_to_image,
    gripper_joint_state,
    header,
    path_stamps,
    path_to_poses,
    poses_to_pose_array,
    rgb_to_image,
    stamp_to_seconds,
)
from geo4d_ros.problems import ProblemLog
from geo4d_ros.world_model_node import RELIABLE_QOS, SENSOR_QOS

__all__ = ["SimRobotNode", "SimRobotNodeParams"]


@dataclass
class SimRobotNodeParams:
    """Settings of the simulated robot node (ROS parameters of the same names)."""

    task: str = "PutSpatulaOnTable"  # task name (sim.tasks.task_names())
    seed: int = 0  # trial seed: object placement and the test camera pair
    height: int = 128  # rendered image height, pixels
    width: int = 160  # rendered image width, pixels
    max_seconds: float = 30.0  # trial time limit, simulated seconds
    max_cycles: int = 0  # stop after this many planning cycles (0 = until success or timeout)
    execute_steps: int = 0  # plan steps executed per cycle before observing again (0 = all)
    plan_timeout: float = 120.0  # wall seconds to wait for a plan before holding one control period
    camera_n_namespace: str = "camera_n"  # RealSense namespace of camera n (topics /<ns>/color/image_raw, ...)
    camera_m_namespace: str = "camera_m"  # RealSense namespace of camera m
    ee_pose_topic: str = "/geo4d/robot/ee_poses"  # PoseArray of the arms' TCP poses (base_frame)
    gripper_state_topic: str = "/geo4d/robot/gripper_state"  # JointState of finger openings, metres
    joint_states_topic: str = "/joint_states"  # JointState of every arm and finger joint
    path_topic: str = "/geo4d/plan/path"  # plans: Path per arm ("/<arm>" appended with several arms)
    gripper_trajectory_topic: str = "/geo4d/plan/gripper_trajectory"  # gripper openings of every plan step
    rejected_topic: str = "/geo4d/plan/rejected"  # reasons of rejected plans (stop waiting, hold one period)
    base_frame: str = "world"  # frame of the published poses (the simulation world = robot base B)
    extra: dict[str, Any] = field(default_factory=dict)  # further SimRobotConfig fields (from Python only)

    def camera_topics(self, cam: str) -> dict[str, str]:
        """RealSense topic names of camera "n" or "m"."""
        ns = self.camera_n_namespace if cam == "n" else self.camera_m_namespace
        return {"color": f"/{ns}/color/image_raw", "depth": f"/{ns}/aligned_depth_to_color/image_raw",
                "info": f"/{ns}/color/camera_info"}


class SimRobotNode(Node):
    """Runs one simulated trial in lock-step with plans received over ROS (see the module doc)."""

    def __init__(self, params: SimRobotNodeParams | None = None, *, robot=None, start: bool = True,
                 node_name: str = "geo4d_sim_robot", **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        from rcl_interfaces.msg import ParameterDescriptor

        from sim.robot import SimRobotConfig

        defaults = params or SimRobotNodeParams()
        values = {}
        for f in fields(SimRobotNodeParams):  # ROS parameters (e.g. from a launch file) override the defaults
            if f.name != "extra":
                self.declare_parameter(f.name, getattr(defaults, f.name), ParameterDescriptor(dynamic_typing=True))
                values[f.name] = self.get_parameter(f.name).value
        p = self.params = replace(defaults, **values)
        from sim.robot import sample_camera_pair
        from sim.tasks import make_task

        self.config = SimRobotConfig(task=p.task, seed=p.seed, height=p.height, width=p.width,
                                     max_seconds=p.max_seconds, **p.extra)
        # Known before the station is built (the world-model node needs them at start-up): camera n's
        # extrinsic in B = W and the arm names. The station itself is built in the loop's thread, because
        # VTK's EGL context belongs to the thread that first renders.
        self.camera_pair = sample_camera_pair(self.config) if robot is None else robot.cameras
        self.X_BC_n = np.asarray(self.camera_pair[0].X_WC, dtype=np.float64)
        self.arms = tuple(make_task(p.task).arm_bases()) if robot is None else tuple(robot.arms)
        self.robot = robot
        self._owns_robot = robot is None  # built (and released) by the loop's thread
        self.problems = ProblemLog(self.get_logger().error)
        self._pubs: dict[str, Any] = {}
        for cam in ("n", "m"):
            topics = p.camera_topics(cam)
            self._pubs[f"color_{cam}"] = self.create_publisher(Image, topics["color"], SENSOR_QOS)
            self._pubs[f"depth_{cam}"] = self.create_publisher(Image, topics["depth"], SENSOR_QOS)
            self._pubs[f"info_{cam}"] = self.create_publisher(CameraInfo, topics["info"], SENSOR_QOS)
        self._pubs["ee"] = self.create_publisher(PoseArray, p.ee_pose_topic, RELIABLE_QOS)
        self._pubs["gripper"] = self.create_publisher(JointState, p.gripper_state_topic, RELIABLE_QOS)
        self._pubs["joints"] = self.create_publisher(JointState, p.joint_states_topic, RELIABLE_QOS)
        self._pubs["result"] = self.create_publisher(String, "~/result", RELIABLE_QOS)
        self._lock = threading.Condition()
        self._paths: dict[str, Path] = {}
        self._gripper: JointTrajectory | None = None
        self._rejected: dict[float, list[str]] = {}  # observation stamp -> reasons its plan was rejected
        for arm in self.arms:
            topic = p.path_topic if len(self.arms) == 1 else f"{p.path_topic}/{arm}"
            self.create_subscription(Path, topic, lambda msg, a=arm: self._store_path(a, msg), RELIABLE_QOS)
        self.create_subscription(JointTrajectory, p.gripper_trajectory_topic, self._store_gripper, RELIABLE_QOS)
        self.create_subscription(String, p.rejected_topic, self._store_rejected, RELIABLE_QOS)
        self.cycles: list[dict[str, Any]] = []  # per executed or skipped cycle: t, got_plan, wall times
        self.result: dict[str, Any] | None = None
        self.done = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        """Run the trial loop in a background thread."""
        self._thread = threading.Thread(target=self.run, name="geo4d_sim_robot", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ subscriptions
    def _store_path(self, arm: str, msg: Path) -> None:
        with self._lock:
            self._paths[arm] = msg
            self._lock.notify_all()

    def _store_gripper(self, msg: JointTrajectory) -> None:
        with self._lock:
            self._gripper = msg
            self._lock.notify_all()

    def _store_rejected(self, msg: String) -> None:
        try:
            data = json.loads(msg.data)
            stamp, reasons = float(data["stamp"]), list(data["reasons"])
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self._rejected[stamp] = reasons
            self._lock.notify_all()

    def _plan_for(self, stamp: float):
        """The received plan stamped `stamp` (all arms + gripper trajectory), or None."""
        def stamped(msg) -> bool:
            return msg is not None and abs(stamp_to_seconds(msg.header.stamp) - stamp) < 1e-6

        if not (all(stamped(self._paths.get(arm)) for arm in self.arms) and stamped(self._gripper)):
            return None
        return {arm: self._paths[arm] for arm in self.arms}, self._gripper

    # ------------------------------------------------------------------ publishing
    def publish_observation(self, obs) -> float:
        """Publish cameras and robot state of a `SimObservation`; returns the stamp (trial seconds)."""
        p, stamp = self.params, float(obs.t)
        for cam, o in (("n", obs.obs_n), ("m", obs.obs_m)):
            frame = f"{p.camera_n_namespace if cam == 'n' else p.camera_m_namespace}_color_optical_frame"
            H, W = o.depth.shape
            self._pubs[f"info_{cam}"].publish(K_to_camera_info(o.K, H, W, stamp, frame))
            self._pubs[f"color_{cam}"].publish(rgb_to_image(o.rgb, stamp, frame, "rgb8"))
            self._pubs[f"depth_{cam}"].publish(depth_to_image(o.depth, stamp, frame, "16UC1", out_of_range="invalid"))
        self._pubs["ee"].publish(poses_to_pose_array(obs.state.X_BE, stamp, p.base_frame))
        self._pubs["gripper"].publish(gripper_joint_state(np.asarray(obs.state.gripper_width, float),
                                                          list(self.arms), stamp))
        self._pubs["joints"].publish(self._joint_states(stamp))
        return stamp

    def _joint_states(self, stamp: float) -> JointState:
        station, ctx = self.robot.station, self.robot.plant_context
        names, positions = [], []
        for arm in station.arms:
            q = station.plant.GetPositions(ctx, arm.instance)
            names += [f"{arm.name}/panda_joint{i}" for i in range(1, 8)] + [f"{arm.name}/panda_finger_joint1",
                                                                             f"{arm.name}/panda_finger_joint2"]
            positions += [float(v) for v in q]
        return JointState(header=header(stamp), name=names, position=positions)

    # ------------------------------------------------------------------ the loop
    def to_plan(self, paths: dict[str, Path], gripper: JointTrajectory, stamp: float):
        """A geo4d `Plan` (B = world) from the received Paths and gripper trajectory."""
        from geo4d_core.action.plan import Plan
        from sim.robot import GRIPPER_CLOSED_BELOW

        X = np.stack([path_to_poses(paths[arm]) for arm in self.arms], axis=1)  # (N, A, 4, 4)
        t = path_stamps(paths[self.arms[0]]) - stamp
        index = {name: i for i, name in enumerate(gripper.joint_names)}
        missing = [arm for arm in self.arms if arm not in index]
        if missing or len(gripper.points) != X.shape[0]:
            raise ConversionError(f"gripper trajectory has joints {list(gripper.joint_names)} and "
                                  f"{len(gripper.points)} points; need arms {list(self.arms)} and {X.shape[0]} points")
        widths = np.array([[pt.positions[index[arm]] for arm in self.arms] for pt in gripper.points])
        return Plan(timestamps=t, arms=self.arms, X_BE=X, gripper_closed=widths < GRIPPER_CLOSED_BELOW,
                    confidence=np.ones(widths.shape), source_view=np.full(widths.shape, "n"), gripper_width=widths)

    def run(self) -> dict[str, Any]:
        """The lock-step loop (see the module doc); returns and publishes the result."""
        from sim.control import PlanningError
        from sim.robot import SimRobot

        if self.robot is None:
            self.robot = SimRobot(self.config, cameras=self.camera_pair)
        p, robot = self.params, self.robot
        # Wait (up to plan_timeout) for the cameras' subscribers, so the first frames are not lost to discovery.
        deadline = time.monotonic() + p.plan_timeout
        cameras = [self._pubs[f"{kind}_{cam}"] for kind in ("color", "depth", "info") for cam in ("n", "m")]
        with self._lock:
            while not self._stop and time.monotonic() < deadline and not all(
                    pub.get_subscription_count() > 0 for pub in cameras):
                self._lock.wait(0.05)
        reason = "stopped"
        executed = 0
        while not self._stop:
            start = time.perf_counter()
            obs = robot.observe()
            stamp = self.publish_observation(obs)
            with self._lock:
                got = self._lock.wait_for(lambda: self._stop or stamp in self._rejected
                                          or self._plan_for(stamp) is not None, p.plan_timeout)
                plan_msgs = self._plan_for(stamp) if got and not self._stop else None
                rejected = self._rejected.pop(stamp, None)
            if self._stop:
                break
            waited = time.perf_counter() - start
            record = {"t": stamp, "got_plan": plan_msgs is not None, "wait_s": waited}
            if plan_msgs is None and rejected is not None:
                record["rejected"] = rejected
                robot.hold(1.0 / robot.config.fps)
            elif plan_msgs is None:
                self.problems.report("plan", "timeout", f"no plan for the observation at t={stamp:.2f} s within "
                                     f"{p.plan_timeout} s; holding one control period")
                robot.hold(1.0 / robot.config.fps)
            else:
                try:
                    plan = self.to_plan(*plan_msgs, stamp)
                    steps = p.execute_steps if 0 < p.execute_steps <= plan.num_steps else plan.num_steps
                    t0 = time.perf_counter()
                    robot.execute(plan, steps=steps)
                    record["execute_s"] = time.perf_counter() - t0
                    executed += 1
                except (ConversionError, ValueError) as exc:
                    self.problems.report("plan", "bad_plan", f"cannot execute the received plan: {exc}")
                    robot.hold(1.0 / robot.config.fps)
                except PlanningError as exc:
                    reason = f"safety stop: {exc}"
                    self.cycles.append(record)
                    break
            self.cycles.append(record)
            outcome = robot.outcome()
            if outcome.success:
                reason = f"success: {outcome.reason}"
                break
            if robot.timed_out:
                reason = f"timeout after {robot.time:.1f} s: {outcome.reason}"
                break
            if p.max_cycles and len(self.cycles) >= p.max_cycles:
                reason = f"stopped after {len(self.cycles)} planning cycles (max_cycles): {outcome.reason}"
                break
        outcome = robot.outcome()
        self.result = {"task": p.task, "seed": p.seed, "success": bool(outcome.success), "reason": reason,
                       "plans_executed": executed, "cycles": len(self.cycles), "sim_time_s": robot.time,
                       "timings_s": {k: round(v, 3) for k, v in robot.timings.items()},
                       "plans_rejected": sum("rejected" in c for c in self.cycles),
                       "plan_timeouts": self.problems.count("plan", "timeout")}
        try:
            self._pubs["result"].publish(String(data=json.dumps(self.result)))
            self.get_logger().info(f"trial finished: {self.result}")
        except Exception:  # noqa: BLE001 - ROS already shut down (Ctrl-C): the result is still returned
            pass
        if self._owns_robot:  # VTK's render window must be destroyed in the thread that rendered with it
            self.robot = robot = None
            import gc

            gc.collect()
        self.done.set()
        return self.result

    def shutdown(self) -> None:
        """Stop the loop (after the current step)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()


def main(args: list[str] | None = None) -> None:
    """`geo4d_sim_robot --ros-args -p task:=PutSpatulaOnTable -p seed:=3` (what sim_bringup.launch.py runs)."""
    from geo4d_ros.runner import run_node_main

    run_node_main(SimRobotNode, args)


if __name__ == "__main__":
    main()
