"""Running geo4d nodes as programs: the loopback environment, one multi-threaded executor, a spin that
ends on Ctrl-C, on ROS shutdown or when the node says it is done, and an orderly teardown."""

from __future__ import annotations

import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, Executor, MultiThreadedExecutor

from geo4d_ros.env import apply_loopback_env

__all__ = ["run_node_main", "spin_until"]


def spin_until(executor: Executor, done: threading.Event | None = None) -> None:
    """Spin `executor` until ROS shuts down, Ctrl-C, or `done` is set."""
    try:
        while rclpy.ok() and not (done is not None and done.is_set()):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def run_node_main(make_node: Callable[[], rclpy.node.Node], args: list[str] | None = None) -> None:
    """The `main()` of a node executable: loopback discovery (DESIGN.md §6), rclpy.init with the
    command-line `--ros-args`, spin until Ctrl-C (or the node's `done` event, if it has one), then the
    node's `shutdown()` (if any), destroy and rclpy shutdown."""
    apply_loopback_env()
    rclpy.init(args=args)
    node, executor = None, None
    try:  # Ctrl-C may come at any time, also while the node or the executor is being built
        node = make_node()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        spin_until(executor, getattr(node, "done", None))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None and hasattr(node, "shutdown"):
            node.shutdown()
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
