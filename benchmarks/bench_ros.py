"""ROS path of the world-model node, without the model: per-cycle overhead (decode, pairing, plan and
prediction publishing) and end-to-end latency over loopback, from publishing the four camera images to
receiving the plan, at RealSense-like sizes.

The model is replaced by a policy that returns a stored planning-cycle output (one real cycle of the tiny
world model, computed once), so the numbers are what the ROS side adds to a cycle. Usage:
python benchmarks/bench_ros.py [--cycles 30] [--sizes 256x320 480x640]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np


class _StoredPolicy:
    """Returns one precomputed PolicyOutput (the ROS path is measured, not the model)."""

    def __init__(self, output, config):
        self.output, self.config = output, config

    def predict_action(self, obs_n, obs_m, state):
        return self.output


def _stored_output():
    """One real planning cycle: the committed tiny model on a simulated PutSpatulaOnTable frame."""
    from pathlib import Path

    from geo4d_core.model.world_model import WorldModel
    from geo4d_core.policy import PolicyConfig, WorldModelPolicy
    from sim.robot import SimRobot, SimRobotConfig

    robot = SimRobot(SimRobotConfig(task="PutSpatulaOnTable", seed=0))
    frame = robot.observe()
    model = WorldModel.from_pretrained(Path(__file__).resolve().parents[1] / "models" / "spatula_tiny")
    config = PolicyConfig(steps=2)
    out = WorldModelPolicy(model, robot.X_BC_n, config).predict_action(frame.obs_n, frame.obs_m, frame.state)
    out.violations = []  # publish it whatever the checks say: the ROS path is measured
    return out, config, frame.state.X_BE[0]


def _run(size: tuple[int, int], cycles: int, stored) -> dict:
    import rclpy
    from geometry_msgs.msg import PoseArray
    from nav_msgs.msg import Path
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from geo4d_ros.conversions import (
        K_to_camera_info,
        depth_to_image,
        gripper_joint_state,
        poses_to_pose_array,
        rgb_to_image,
    )
    from geo4d_ros.params import WorldModelNodeParams
    from geo4d_ros.world_model_node import RELIABLE_QOS, SENSOR_QOS, WorldModelNode

    out, config, X_BE = stored
    H, W = size
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 2.0, (H, W)).astype(np.float32)
    K = np.array([[600.0, 0, (W - 1) / 2], [0, 600.0, (H - 1) / 2], [0, 0, 1]])
    context = rclpy.Context()
    rclpy.init(context=context)
    node = WorldModelNode(WorldModelNodeParams(), context=context)
    node.policy = _StoredPolicy(out, config)
    node.model_status = "stored output (benchmark)"
    p = node.params
    driver = rclpy.create_node("geo4d_bench_driver", context=context)
    pubs = {k: driver.create_publisher(Image, t, SENSOR_QOS) for k, t in (
        ("color_n", p.color_n_topic), ("depth_n", p.depth_n_topic), ("color_m", p.color_m_topic),
        ("depth_m", p.depth_m_topic))}
    info = {c: driver.create_publisher(CameraInfo, t, SENSOR_QOS) for c, t in (("n", p.info_n_topic), ("m", p.info_m_topic))}
    ee = driver.create_publisher(PoseArray, p.ee_pose_topic, RELIABLE_QOS)
    grip = driver.create_publisher(JointState, p.gripper_state_topic, RELIABLE_QOS)
    arrived: dict[float, float] = {}
    cv = threading.Condition()

    def on_path(msg):
        with cv:
            arrived[msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9] = time.perf_counter()
            cv.notify_all()

    driver.create_subscription(Path, p.path_topic, on_path, RELIABLE_QOS)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(driver)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    with cv:
        cv.wait_for(lambda: all(x.get_subscription_count() > 0 for x in [*pubs.values(), *info.values(), ee, grip])
                    and node.pub_paths["arm"].get_subscription_count() > 0, timeout=30)
    latencies, overheads = [], []
    for k in range(cycles + 2):
        stamp = 100.0 + k
        ee.publish(poses_to_pose_array(X_BE[None], stamp, p.base_frame))
        grip.publish(gripper_joint_state(0.08, "arm", stamp))
        for c in ("n", "m"):
            info[c].publish(K_to_camera_info(K, H, W, stamp, c))
        sent = time.perf_counter()
        for c in ("n", "m"):
            pubs[f"color_{c}"].publish(rgb_to_image(rgb, stamp, c))
            pubs[f"depth_{c}"].publish(depth_to_image(depth, stamp, c, "16UC1"))
        with cv:
            ok = cv.wait_for(lambda: stamp in arrived, timeout=30)
        if ok and k >= 2:  # two warm-up cycles
            latencies.append(arrived[stamp] - sent)
            lat = node.latency
            overheads.append(lat["prepare_s"] + lat["plan_publish_s"] + lat["prediction_publish_s"])
    status = node.status()
    node.shutdown()
    executor.shutdown()
    rclpy.shutdown(context=context)
    lat = np.array(latencies) * 1e3
    return {"size": f"{H}x{W}", "cycles": len(latencies), "overhead_ms": float(np.median(overheads) * 1e3),
            "p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "dropped": sum(sum(v["dropped"].values()) for v in status["frames"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--sizes", nargs="+", default=["256x320", "480x640"])
    args = parser.parse_args()
    from geo4d_ros.env import apply_loopback_env

    apply_loopback_env(domain_id=90 + os.getpid() % 40)
    stored = _stored_output()
    rows = [_run(tuple(int(v) for v in s.split("x")), args.cycles, stored) for s in args.sizes]
    print("ROS path of the world-model node without the model (stored cycle output), loopback, one process")
    print(f"{'images':>8s} {'cycles':>6s} {'overhead ms':>11s} {'e2e p50':>8s} {'p90':>7s} {'p99':>7s} "
          f"{'max':>7s} {'dropped':>7s}")
    for r in rows:
        print(f"{r['size']:>8s} {r['cycles']:6d} {r['overhead_ms']:11.1f} {r['p50']:8.1f} {r['p90']:7.1f} "
              f"{r['p99']:7.1f} {r['max']:7.1f} {r['dropped']:7d}")
    print("overhead = pair checks + plan publishing + prediction clouds/images (median, in the node); e2e = "
          "first image published -> plan received (ms): decode, transport, pairing, publishing")


if __name__ == "__main__":
    main()
