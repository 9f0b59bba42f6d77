"""The node programs' main loop: signals stop it at the next check (never half-way through building or
tearing down rclpy objects), and teardown runs in order."""

from __future__ import annotations

import os
import signal

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (pip install -e '.[ros]')")

from geo4d_ros.env import apply_loopback_env  # noqa: E402
from geo4d_ros.runner import run_node_main, stop_on_signals  # noqa: E402


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_sets_the_stop_event_second_raises_and_handlers_come_back(sig):
    before = signal.getsignal(sig)
    with stop_on_signals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), sig)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)  # the handler runs before the next bytecode of this thread
    assert signal.getsignal(sig) is before


def test_signal_while_the_node_is_built_stops_cleanly_and_tears_down_in_order(monkeypatch, tmp_path):
    """The race behind a crash at exit: Ctrl-C right after the node's constructor, before the executor
    exists. The program must return normally, having stopped the node's threads before destroying it."""
    for key, value in apply_loopback_env({}, domain_id=100 + os.getpid() % 100, log_dir=str(tmp_path)).items():
        monkeypatch.setenv(key, value)
    calls: list[str] = []
    before = signal.getsignal(signal.SIGINT)

    class Node(rclpy.node.Node):
        def __init__(self):
            super().__init__("geo4d_runner_test")
            calls.append("built")
            os.kill(os.getpid(), signal.SIGINT)  # lands before make_node returns

        def shutdown(self):
            calls.append("shutdown")

        def destroy_node(self):
            calls.append("destroy")
            super().destroy_node()

    run_node_main(Node, [])
    assert calls == ["built", "shutdown", "destroy"]
    assert not rclpy.ok()
    assert signal.getsignal(signal.SIGINT) is before

