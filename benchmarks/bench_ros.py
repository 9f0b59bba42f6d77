"""ROS path of the world-model node, without the model: the node's own work per cycle (decoding and
pairing the four camera images in its subscription callbacks, plus the cycle's checks and plan /
prediction publishing) and end-to-end latency over loopback, from publishing the four camera images to
receiving the plan, at RealSense-like sizes.

The model is replaced by a policy that returns a stored planning-cycle output (one real cycle of the tiny
world model, computed once), so the numbers are what the ROS side adds to a cycle. The node's image
callback and planning cycle are wrapped with timers (the node itself is unchanged). Usage:
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
        stamp_to_seconds,
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
    arrived: dict[float, float] = {}  # pair stamp -> time the plan was received
    callback_s: dict[float, dict[str, float]] = {}  # pair stamp -> stream -> seconds in the image callback
    cycle_latency: dict[float, dict[str, float]] = {}  # pair stamp -> the node's stage latencies of its cycle
    cv = threading.Condition()

    # Time the node's image callback (decode Image -> numpy, counting, approximate-time push) per frame.
    on_image = node._on_image

    def timed_on_image(stream, msg):
        t0 = time.perf_counter()
        on_image(stream, msg)
        dt = time.perf_counter() - t0
        with cv:
            callback_s.setdefault(stamp_to_seconds(msg.header.stamp), {})[stream] = dt
            cv.notify_all()

    node._on_image = timed_on_image  # the subscriptions look the method up at each call
    run_cycle = node.run_cycle

    def recorded_cycle():
        pair = node.sync.latest()  # the pair this cycle plans on (one pair per cycle here)
        published = run_cycle()
        with cv:
            if published and pair is not None:
                cycle_latency[pair.stamps["color_n"]] = dict(node.latency)
            cv.notify_all()
        return published

    node.run_cycle = recorded_cycle  # the planning thread looks it up at each cycle

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
    latencies, inputs, cycle_work, node_work = [], [], [], []
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
            ok = cv.wait_for(lambda: stamp in arrived and stamp in cycle_latency
                             and len(callback_s.get(stamp, {})) == 4, timeout=30)
        if ok and k >= 2:  # two warm-up cycles
            latencies.append(arrived[stamp] - sent)
            lat = cycle_latency[stamp]
            inputs.append(sum(callback_s[stamp].values()))
            cycle_work.append(lat["prepare_s"] + lat["plan_publish_s"] + lat["prediction_publish_s"])
            node_work.append(inputs[-1] + cycle_work[-1])
    status = node.status()
    node.shutdown()
    executor.shutdown()
    spin.join(timeout=10)
    driver.destroy_node()
    node.destroy_node()
    rclpy.shutdown(context=context)
    lat = np.array(latencies) * 1e3
    return {"size": f"{H}x{W}", "cycles": len(latencies), "input_ms": float(np.median(inputs) * 1e3),
            "cycle_ms": float(np.median(cycle_work) * 1e3), "node_ms": float(np.median(node_work) * 1e3),
            "p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "dropped": sum(sum(v["dropped"].values()) for v in status["frames"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--sizes", nargs="+", default=["256x320", "480x640"])
    args = parser.parse_args()
    from geo4d_ros.env import apply_loopback_env

    apply_loopback_env(domain_id=200 + os.getpid() % 30)  # apart from the tests' 100..199
    stored = _stored_output()
    rows = [_run(tuple(int(v) for v in s.split("x")), args.cycles, stored) for s in args.sizes]
    print("ROS path of the world-model node without the model (stored cycle output), loopback, one process")
    print(f"{'images':>8s} {'cycles':>6s} {'decode+pair':>11s} {'cycle':>7s} {'node':>7s} {'e2e p50':>8s} "
          f"{'p90':>7s} {'p99':>7s} {'max':>7s} {'dropped':>7s}")
    for r in rows:
        print(f"{r['size']:>8s} {r['cycles']:6d} {r['input_ms']:11.1f} {r['cycle_ms']:7.1f} {r['node_ms']:7.1f} "
              f"{r['p50']:8.1f} {r['p90']:7.1f} {r['p99']:7.1f} {r['max']:7.1f} {r['dropped']:7d}")
    print("ms, medians over the cycles. decode+pair = time in the node's image callbacks for the pair's four frames "
          "(Image -> numpy, approximate-time pairing), summed; cycle = pair checks + plan publishing + predicted "
          "clouds/images; node = decode+pair + cycle, per cycle; e2e = first image published -> plan received "
          "(serialisation, transport, decode, pairing, cycle, publishing)")


if __name__ == "__main__":
    main()
