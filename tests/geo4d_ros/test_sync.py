"""Approximate-time synchronisation of named streams with plain stamps (no rclpy needed)."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter

import pytest

from geo4d_ros.sync import DROP_REASONS, ApproximateTimeSync, SyncDrop, SyncSet

FOUR = ("color_n", "depth_n", "color_m", "depth_m")


def _check_accounting(sync: ApproximateTimeSync) -> None:
    """received = in emitted sets + dropped + pending, for every stream."""
    st = sync.stats()
    for s in sync.streams:
        assert st.received[s] == st.emitted + st.dropped_total(s) + st.pending[s], (s, st.as_dict())


def test_exact_stamps_pair_into_sets_in_order():
    emitted: list[SyncSet] = []
    sync = ApproximateTimeSync(FOUR, slop=0.01, callback=emitted.append)
    for k in range(5):
        t = 100.0 + 0.1 * k
        results = [sync.push(s, t, f"{s}@{k}") for s in FOUR]
        assert results[:3] == [None, None, None]  # only the last stream completes the set
        assert results[3] is emitted[-1]
    assert [e.index for e in emitted] == list(range(5))
    for k, e in enumerate(emitted):
        assert e.messages == {s: f"{s}@{k}" for s in FOUR}
        assert e["depth_m"] == f"depth_m@{k}"
        assert e.spread == 0.0 and e.stamp == pytest.approx(100.0 + 0.1 * k)
    st = sync.stats()
    assert st.emitted == 5 and st.dropped_total() == 0 and all(v == 0 for v in st.pending.values())
    assert st.received == dict.fromkeys(FOUR, 5)
    assert sync.latest() is emitted[-1]
    _check_accounting(sync)


def test_pairs_within_slop_and_not_beyond():
    sync = ApproximateTimeSync(("color", "depth"), slop=0.015)
    sync.push("color", 1.000, "c0")
    out = sync.push("depth", 1.012, "d0")
    assert out is not None and out.messages == {"color": "c0", "depth": "d0"}
    assert out.spread == pytest.approx(0.012)
    sync.push("color", 1.100, "c1")
    assert sync.push("depth", 1.117, "d1") is None  # 17 ms apart > slop
    assert sync.latest() is out
    st = sync.stats()
    assert st.dropped["color"]["no_match_within_slop"] == 1  # depth has moved past 1.100 + slop
    assert st.pending == {"color": 0, "depth": 1}
    _check_accounting(sync)


def test_out_of_order_message_is_placed_by_its_stamp():
    sync = ApproximateTimeSync(("a", "b"), slop=0.05)
    sync.push("a", 2.0, "a2")
    sync.push("a", 1.0, "a1")  # arrives late, older than the queued a2
    out = sync.push("b", 1.01, "b1")
    assert out is not None and out.messages == {"a": "a1", "b": "b1"}
    out = sync.push("b", 2.02, "b2")
    assert out is not None and out.messages == {"a": "a2", "b": "b2"}
    assert sync.stats().dropped_total() == 0
    _check_accounting(sync)


def test_slop_is_inclusive_and_zero_slop_needs_equal_stamps():
    sync = ApproximateTimeSync(("a", "b"), slop=0.25)  # exactly representable
    sync.push("a", 1.0, "a")
    assert sync.push("b", 1.25, "b") is not None
    exact = ApproximateTimeSync(("a", "b"), slop=0.0)
    exact.push("a", 2.0, "a")
    assert exact.push("b", 2.0 + 1e-9, "b") is None
    assert exact.stats().dropped["a"]["no_match_within_slop"] == 1
    exact.push("a", 3.0, "a3")
    assert exact.push("b", 3.0, "b3").messages == {"a": "a3", "b": "b3"}


def test_stamps_that_never_pair_are_dropped_as_no_match():
    sync = ApproximateTimeSync(("color", "depth"), slop=0.01, queue_size=100)
    for k in range(10):  # depth always 50 ms after color: never within 10 ms
        assert sync.push("color", 0.1 * k, k) is None
        assert sync.push("depth", 0.1 * k + 0.05, k) is None
    st = sync.stats()
    assert st.emitted == 0 and sync.latest() is None
    assert st.received == {"color": 10, "depth": 10}
    # Every message whose partner stream has moved past stamp + slop is known to be unmatchable.
    assert st.dropped["color"]["no_match_within_slop"] == 10
    assert st.dropped["depth"]["no_match_within_slop"] == 9
    assert st.pending == {"color": 0, "depth": 1}  # the last depth could still meet a color at 0.95 ± 0.01
    assert st.dropped_total(reason="queue_overflow") == 0
    _check_accounting(sync)


def test_a_lost_partner_drops_only_the_orphan():
    sync = ApproximateTimeSync(("color", "depth"), slop=0.01)
    sync.push("color", 1.0, "c0")  # its depth frame is lost by the driver
    sync.push("color", 1.1, "c1")
    out = sync.push("depth", 1.1, "d1")
    assert out is not None and out.messages == {"color": "c1", "depth": "d1"}
    st = sync.stats()
    assert st.dropped["color"]["no_match_within_slop"] == 1
    assert st.dropped_total() == 1
    _check_accounting(sync)


def test_queue_overflow_when_a_stream_is_silent():
    sync = ApproximateTimeSync(FOUR, slop=0.01, queue_size=10)
    for k in range(15):
        sync.push("color_n", 0.1 * k, k)
    st = sync.stats()
    assert st.dropped["color_n"]["queue_overflow"] == 5
    assert st.pending["color_n"] == 10
    assert st.dropped_total() == 5
    _check_accounting(sync)
    # the oldest were evicted: the oldest surviving color_n (k = 5) still pairs
    for s in ("depth_n", "color_m"):
        sync.push(s, 0.5, s)
    out = sync.push("depth_m", 0.5, "dm")
    assert out is not None and out["color_n"] == 5


def test_newest_set_wins_and_older_candidates_are_superseded():
    sync = ApproximateTimeSync(("color", "depth"), slop=0.05)
    sync.push("color", 1.00, "c_old")
    sync.push("color", 1.03, "c_new")
    out = sync.push("depth", 1.04, "d")  # both colors are within slop; the newest wins
    assert out is not None and out["color"] == "c_new"
    st = sync.stats()
    assert st.dropped["color"]["superseded"] == 1
    # a message not newer than the last emitted set of its stream can never be used again
    assert sync.push("color", 1.02, "late") is None
    assert sync.stats().dropped["color"]["superseded"] == 2
    _check_accounting(sync)


def test_newest_set_wins_across_four_streams():
    sync = ApproximateTimeSync(FOUR, slop=0.02, queue_size=20)
    # depth_m is a frame behind: each of its messages completes a set as soon as it arrives
    for t in (0.1, 0.2):
        for s in ("color_n", "depth_n", "color_m"):
            sync.push(s, t, f"{s}@{t}")
    sync.push("depth_m", 0.1, "depth_m@0.1")
    latest = sync.latest()
    assert latest is not None and latest.stamp == pytest.approx(0.1)  # emitted eagerly
    out = sync.push("depth_m", 0.2, "depth_m@0.2")
    assert out is not None and out.messages == {s: f"{s}@0.2" for s in FOUR}
    assert sync.latest() is out and sync.stats().emitted == 2

    # Now all four arrive for 0.3 and 0.4 while depth_m is late; then depth_m 0.4 arrives directly.
    for t in (0.3, 0.4):
        for s in ("color_n", "depth_n", "color_m"):
            sync.push(s, t, f"{s}@{t}")
    out = sync.push("depth_m", 0.4, "depth_m@0.4")
    assert out is not None and out.messages == {s: f"{s}@0.4" for s in FOUR}
    st = sync.stats()
    for s in ("color_n", "depth_n", "color_m"):
        assert st.dropped[s]["no_match_within_slop"] == 1  # the 0.3 frames had no depth_m partner
    assert all(v == 0 for v in st.pending.values())
    _check_accounting(sync)


def test_superseded_versus_no_match_classification():
    sync = ApproximateTimeSync(("a", "b"), slop=0.1)
    sync.push("a", 1.00, "a0")  # within slop of b@1.05: a valid but older candidate
    sync.push("a", 1.04, "a1")
    sync.push("a", 0.90, "a_far")  # out of order, 0.15 s from b@1.05: never matchable
    out = sync.push("b", 1.05, "b")
    assert out is not None and out["a"] == "a1"
    st = sync.stats()
    assert st.dropped["a"]["superseded"] == 1
    assert st.dropped["a"]["no_match_within_slop"] == 1
    _check_accounting(sync)


def test_reset_after_clock_jump_back():
    sync = ApproximateTimeSync(("a", "b"), slop=0.01)
    sync.push("a", 50.0, 1)
    assert sync.push("b", 50.0, 1) is not None
    sync.push("a", 60.0, 2)
    assert sync.push("a", 0.0, 3) is None  # sim restarted: stamps before the last set are useless
    assert sync.stats().dropped["a"]["superseded"] == 1
    sync.reset()
    assert sync.stats().dropped["a"]["reset"] == 1 and sync.stats().pending == {"a": 0, "b": 0}
    sync.push("a", 0.1, 4)
    assert sync.push("b", 0.1, 4) is not None
    _check_accounting(sync)


def test_on_drop_says_which_stream_had_no_frame_within_slop():
    drops: list[SyncDrop] = []
    sync = ApproximateTimeSync(("color", "depth"), slop=0.01, on_drop=drops.append)
    sync.push("color", 6.0, "c6")
    assert sync.push("depth", 6.5, "d6") is None  # depth is 0.5 s behind: color@6 can never pair now
    assert [(d.stream, d.stamp, d.reason) for d in drops] == [("color", 6.0, "no_match_within_slop")]
    assert drops[0].nearest == {"depth": 6.5} and drops[0].missing() == ["depth"]
    assert drops[0].describe({"color": "/cam/color", "depth": "/cam/depth"}) == (
        "frame stamped 6.000 s dropped: it never paired, no frame within slop 0.010 s on /cam/depth (nearest "
        "6.500 s, 0.500 s later); check the cameras' clocks and stamps (or raise the 'slop' parameter)")
    assert drops[0].describe(hint="its partner failed to decode").endswith("0.500 s later); its partner failed to decode")

    # A silent stream: the full queue names every stream that sent nothing within slop.
    drops.clear()
    sync = ApproximateTimeSync(FOUR, slop=0.01, queue_size=3, on_drop=drops.append)
    sync.push("depth_n", 0.0, "dn")
    for k in range(4):
        sync.push("color_n", 0.1 * k, k)
    assert [(d.stream, d.stamp, d.reason) for d in drops] == [("color_n", 0.0, "queue_overflow")]
    assert drops[0].missing() == ["color_m", "depth_m"]  # depth_n has a frame at the same stamp
    assert drops[0].describe() == (
        "frame stamped 0.000 s dropped: queue of 3 frames waiting for partners is full, no frame within slop "
        "0.010 s on color_m (nothing received yet); depth_m (nothing received yet); is that stream publishing?")


def test_on_drop_reports_each_counted_drop_once():
    """Jitter, lost frames, late frames, a silent stream and a reset: the described drops are exactly the
    counted ones, for every reason."""
    drops: list[SyncDrop] = []
    sync = ApproximateTimeSync(("a", "b", "c"), slop=0.01, queue_size=4, on_drop=drops.append)
    rng = random.Random(3)
    for k in range(300):
        if k == 150:
            sync.reset()
        for s in ("a", "b", "c"):
            if rng.random() < 0.1 or (s == "c" and 200 <= k < 220):
                continue  # lost by the driver, or c stopped for a while
            sync.push(s, 0.033 * k + rng.uniform(-0.004, 0.004), (s, k))
        if k % 37 == 5:
            sync.push("a", 0.033 * (k - 3), "late")
    st = sync.stats()
    assert st.emitted > 150
    described = Counter((d.stream, d.reason) for d in drops)
    assert described == Counter({(s, r): n for s, by in st.dropped.items() for r, n in by.items() if n})
    assert {r for _, r in described} == set(DROP_REASONS), described
    assert all(set(d.nearest) == set("abc") - {d.stream} for d in drops)
    _check_accounting(sync)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unique non-empty"):
        ApproximateTimeSync(("a", "a"), slop=0.1)
    with pytest.raises(ValueError, match="slop must be finite and >= 0"):
        ApproximateTimeSync(("a", "b"), slop=-0.1)
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        ApproximateTimeSync(("a", "b"), slop=0.1, queue_size=0)
    sync = ApproximateTimeSync(("a", "b"), slop=0.1)
    with pytest.raises(ValueError, match="unknown stream 'c'; streams: a, b"):
        sync.push("c", 0.0, None)
    with pytest.raises(ValueError, match="must be finite"):
        sync.push("a", float("nan"), None)
    assert sync.stats().received == {"a": 0, "b": 0}
    assert set(DROP_REASONS) >= {"superseded", "queue_overflow", "no_match_within_slop"}


def test_thread_safety_with_two_pushing_threads():
    n = 3000
    emitted: list[SyncSet] = []
    lock = threading.Lock()

    def on_set(s: SyncSet) -> None:
        with lock:
            emitted.append(s)

    sync = ApproximateTimeSync(("color", "depth"), slop=0.001, queue_size=n, callback=on_set)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def producer(stream: str) -> None:
        try:
            start.wait()
            for k in range(n):
                sync.push(stream, 0.1 * k, k)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(s,)) for s in ("color", "depth")]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads) and not errors
    st = sync.stats()
    assert st.received == {"color": n, "depth": n}
    assert st.emitted == n == len(emitted)  # every frame pairs exactly, whatever the interleaving
    assert st.dropped_total() == 0
    assert sorted(e.index for e in emitted) == list(range(n))
    assert all(e["color"] == e["depth"] for e in emitted)
    assert sync.latest().index == n - 1 and sync.latest()["color"] == n - 1
    _check_accounting(sync)
