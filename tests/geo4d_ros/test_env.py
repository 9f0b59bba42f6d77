"""The loopback-only ROS environment, and a real rclpy round trip under it."""

import os

import pytest

from geo4d_ros.env import apply_loopback_env


def test_apply_loopback_env_sets_discovery_range_domain_and_logs(tmp_path):
    env: dict[str, str] = {}
    apply_loopback_env(env, domain_id=57, log_dir=str(tmp_path))
    assert env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "57", "ROS_LOG_DIR": str(tmp_path)}
    with pytest.raises(ValueError, match="ROS_DOMAIN_ID"):
        apply_loopback_env({}, domain_id=500)


def test_rclpy_publish_subscribe_on_loopback(monkeypatch, tmp_path):
    for key, value in apply_loopback_env({}, domain_id=100 + os.getpid() % 100, log_dir=str(tmp_path)).items():
        monkeypatch.setenv(key, value)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("geo4d_env_test", context=context)
        received: list[str] = []
        node.create_subscription(String, "geo4d_env_test", lambda m: received.append(m.data), 10)
        pub = node.create_publisher(String, "geo4d_env_test", 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for i in range(200):  # bounded: publish until the subscriber has matched and received one
            pub.publish(String(data=f"hello {i}"))
            executor.spin_once(timeout_sec=0.05)
            if received:
                break
        assert received and received[0].startswith("hello")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
