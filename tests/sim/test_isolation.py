"""sim.isolation: one unit of work in a spawned process with a time limit."""

import math
import time

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
