"""Problem counting and rate-limited logging (no rclpy)."""

from geo4d_ros.problems import ProblemLog


def test_every_problem_is_counted_but_logged_at_most_once_per_period():
    now = [0.0]
    lines: list[str] = []
    log = ProblemLog(lines.append, period=5.0, clock=lambda: now[0])
    assert log.report("/cam/depth", "too_little_depth", "only 3% valid")
    for _ in range(30):  # a 30 Hz camera for one second
        now[0] += 1 / 30
        assert not log.report("/cam/depth", "too_little_depth", "only 3% valid")
    assert log.report("/cam/color", "bad_image", "mono8")  # another key is not held back
    now[0] = 5.5
    assert log.report("/cam/depth", "too_little_depth", "only 2% valid")
    assert lines == ["/cam/depth: only 3% valid", "/cam/color: mono8",
                     "/cam/depth: only 2% valid (30 more since the last report)"]
    assert log.count("/cam/depth") == 32 and log.count(kind="bad_image") == 1 and log.count() == 33
    assert log.counts() == {"/cam/depth": {"too_little_depth": 32}, "/cam/color": {"bad_image": 1}}
    assert log.latest().last_message == "only 2% valid"
    assert log.get("/cam/color", "bad_image").count == 1 and log.get("/x", "y") is None
