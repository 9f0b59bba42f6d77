"""sim.isolation: one unit of work in a spawned process with a time limit."""

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.isolation import SubprocessCrash, SubprocessTimeout, call_with_timeout


def test_result_comes_back_from_the_child():
    assert call_with_timeout(math.factorial, (6,), timeout=120) == 720


def test_no_timeout_runs_in_this_process():
    assert call_with_timeout(math.factorial, (5,), timeout=0) == 120


def test_a_stuck_child_is_killed_after_the_timeout():
    start = time.perf_counter()
    with pytest.raises(SubprocessTimeout, match="timed out"):
        call_with_timeout(time.sleep, (600,), timeout=1)
    assert time.perf_counter() - start < 60  # killed, not waited for


def test_an_exception_in_the_child_is_reported_with_its_type_and_text():
    with pytest.raises(SubprocessCrash, match="ValueError: math domain error"):
        call_with_timeout(math.sqrt, (-1.0,), timeout=120)


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _running(pid: int) -> bool:
    try:  # the field after "(comm)" is the state; a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from Linux /proc")
def test_a_child_exits_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", "import time; from sim.isolation import call_with_timeout; "
                               "call_with_timeout(time.sleep, (600,), timeout=900)"], cwd=Path(__file__).parents[2])
    try:
        def worker():
            for pid in _children(parent.pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                    return pid
            return None
        child = _wait_for(worker, 60)
        assert child is not None, "the spawned child did not start"
        assert _running(child)
        parent.send_signal(signal.SIGKILL)  # no chance to clean up
        parent.wait()
        assert _wait_for(lambda: not _running(child), 30), "the orphaned child kept running"
    finally:
        if parent.poll() is None:
            parent.kill()
