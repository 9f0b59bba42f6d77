"""Running geo4d nodes as programs: the loopback environment, one multi-threaded executor, a spin that
ends on Ctrl-C / SIGTERM, on ROS shutdown or when the node says it is done, and an orderly teardown.

Signals only set an event (`stop_on_signals`): a Ctrl-C that lands while a node or an executor is being
built, or while they are torn down, cannot leave half-built rclpy objects to be destroyed after the
context is gone (which crashed the process at exit). A second signal raises KeyboardInterrupt as usual.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import rclpy
from rclpy.executors import ExternalShutdownException, Executor, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from geo4d_ros.env import apply_loopback_env

__all__ = ["init_ros", "run_node_main", "spin_until", "stop_on_signals"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[threading.Event]:
    """While active, the first of `signals` sets the yielded event (the program stops at its next check);
    a second one raises KeyboardInterrupt. The previous handlers come back on exit. Main thread only."""
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001 - signal.signal's handler signature
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def init_ros(args: list[str] | None = None) -> None:
    """rclpy.init with the command-line `--ros-args` and without rclpy's own signal handlers (signals
    are `stop_on_signals`' job; enter it after this call)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def spin_until(executor: Executor, *events: threading.Event | None) -> None:
    """Spin `executor` until ROS shuts down, Ctrl-C, or one of `events` (None entries ignored) is set."""
    watched = [e for e in events if e is not None]
    try:
        while rclpy.ok() and not any(e.is_set() for e in watched):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def teardown(nodes: list, executor: Executor | None) -> None:
    """Stop each node's own threads (`shutdown()`, if it has one), then the executor, then destroy the
    nodes (newest first) and shut rclpy down."""
    for node in reversed(nodes):
        if hasattr(node, "shutdown"):
            node.shutdown()
    if executor is not None:
        executor.shutdown()
    for node in reversed(nodes):
        node.destroy_node()
    rclpy.try_shutdown()


def run_node_main(make_node: Callable[[], rclpy.node.Node], args: list[str] | None = None) -> None:
    """The `main()` of a node executable: loopback discovery (DESIGN.md §6), rclpy.init with the
    command-line `--ros-args`, spin until Ctrl-C / SIGTERM (or the node's `done` event, if it has one),
    then `teardown`."""
    apply_loopback_env()
    init_ros(args)
    with stop_on_signals() as stop:  # after rclpy.init: whatever rclpy does to signal handlers there, ours win
        nodes: list = []
        executor = None
        try:
            if not stop.is_set():
                nodes.append(make_node())
                executor = MultiThreadedExecutor()
                executor.add_node(nodes[0])
                spin_until(executor, stop, getattr(nodes[0], "done", None))
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            teardown(nodes, executor)
