"""`geo4d bringup` starts the node graph: the world-model node alone (robot workstation), and with
`--sim` the whole loop over ROS topics: a simulated robot publishing RealSense-like cameras, the world
model planning on them, the robot executing or holding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (pip install -e '.[ros]')")

from std_msgs.msg import String  # noqa: E402

from geo4d_ros.world_model_node import RELIABLE_QOS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GEO4D = str(Path(sys.executable).with_name("geo4d"))


def _env(tmp_path, domain: int) -> dict:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain),
               ROS_LOG_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    return env


def test_bringup_starts_the_world_model_node_and_stops_on_ctrl_c(ros_context, tmp_path):
    domain = int(os.environ["ROS_DOMAIN_ID"])
    proc = subprocess.Popen([GEO4D, "bringup", "--checkpoint", str(ROOT / "models" / "spatula_tiny"),
                             "--camera-n", "cam_left", "--set", "status_period=0.2", "--domain-id", str(domain)],
                            env=_env(tmp_path, domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("geo4d_bringup_test", context=ros_context)
    statuses: list[dict] = []
    cv = threading.Condition()

    def on_status(msg):
        with cv:
            statuses.append(json.loads(msg.data))
            cv.notify_all()

    node.create_subscription(String, "/geo4d/status", on_status, RELIABLE_QOS)
    topics_seen: set[str] = set()
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        import time

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (statuses and statuses[-1]["model"] == "loaded"):
            assert proc.poll() is None, proc.communicate()[0]
            executor.spin_once(timeout_sec=0.1)
        assert statuses and statuses[-1]["model"] == "loaded", statuses[-1:] or "no status within 120 s"
        topics_seen = {name for name, _ in node.get_topic_names_and_types()}
        assert "/cam_left/color/image_raw" in topics_seen  # the --camera-n namespace reached the node
        assert {"/geo4d/plan/path", "/geo4d/plan/gripper", "/geo4d/prediction/points_n"} <= topics_seen
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0, out
    assert "geo4d_world_model running" in out


@pytest.mark.slow
def test_bringup_sim_runs_a_planning_cycle_over_ros(tmp_path):
    domain = 150 + os.getpid() % 50
    proc = subprocess.run([GEO4D, "bringup", "--sim", "PutSpatulaOnTable", "--seed", "0", "--max-cycles", "1",
                           "--domain-id", str(domain), "--set", "sampler_steps=2"],
                          env=_env(tmp_path, domain), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("\n{") + 1:])
    result, status = report["result"], report["world_model"]
    assert result["cycles"] == 1 and "max_cycles" in result["reason"]
    # The world model received both cameras over ROS, planned once, and the robot got its answer: a plan
    # (executed) or the plan checks' rejection (held) -- never a timeout.
    assert status["cycles"] == 1 and status["pairs"] >= 1
    assert status["plans_published"] + status["plans_rejected"] == 1
    assert result["plans_executed"] + result["plans_rejected"] == 1 and result["plan_timeouts"] == 0
    assert result["sim_time_s"] > 0


def test_node_executable_starts_with_ros_args_and_stops_on_ctrl_c(tmp_path):
    """What the launch files run: `geo4d_world_model --ros-args ...` comes up, reads its parameters from the
    command line and exits cleanly on SIGINT."""
    domain = 100 + os.getpid() % 50
    exe = str(Path(sys.executable).with_name("geo4d_world_model"))
    proc = subprocess.Popen([exe, "--ros-args", "-p", "color_n_topic:=/left/color/image_raw"],
                            env=_env(tmp_path, domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "geo4d world model: cameras" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(timeout=120), "".join(lines)
        assert "/left/color/image_raw" in "".join(lines) and "no checkpoint set" in "".join(lines)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    assert proc.returncode == 0, "".join(lines)
