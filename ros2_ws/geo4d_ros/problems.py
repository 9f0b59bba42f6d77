"""Counting and rate-limited logging of input problems (bad encodings, missing camera_info, ...).

Every problem is counted, keyed by (source, kind) where source is a topic or a component name
("checkpoint", "plan"); the first occurrence is logged at once and later ones at most once per `period`
seconds per key, with the number suppressed in between, so a camera publishing garbage at 30 Hz
cannot flood the log while the status message still reports every occurrence. No rclpy dependency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Problem", "ProblemLog"]


@dataclass
class Problem:
    """The record of one (source, kind) problem."""

    source: str  # topic name or component ("checkpoint", "plan", "world_model")
    kind: str  # short machine-readable kind, e.g. "bad_encoding", "missing_camera_info"
    count: int  # occurrences so far
    last_message: str  # the latest full message
    last_time: float  # monotonic time of the latest occurrence, seconds


class ProblemLog:
    """Counts problems and logs them rate-limited.

    Args:
        log: called with the text to log (e.g. a node logger's `error`).
        period: at most one log line per (source, kind) per this many seconds.
        clock: monotonic time source in seconds (replaceable in tests).
    """

    def __init__(self, log: Callable[[str], None], period: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not period >= 0:
            raise ValueError(f"period must be >= 0 seconds, got {period}")
        self._log = log
        self.period = float(period)
        self._clock = clock
        self._lock = threading.Lock()
        self._problems: dict[tuple[str, str], Problem] = {}
        self._last_logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def report(self, source: str, kind: str, message: str) -> bool:
        """Count one occurrence; log it unless this key was logged less than `period` ago. Returns
        whether it was logged."""
        key = (source, kind)
        now = self._clock()
        with self._lock:
            problem = self._problems.get(key)
            if problem is None:
                problem = self._problems[key] = Problem(source, kind, 0, message, now)
            problem.count += 1
            problem.last_message, problem.last_time = message, now
            last = self._last_logged.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            self._last_logged[key] = now
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self._log(f"{source}: {message}{more}")
        return True

    def counts(self) -> dict[str, dict[str, int]]:
        """source -> kind -> occurrences."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (source, kind), p in self._problems.items():
                out.setdefault(source, {})[kind] = p.count
            return out

    def count(self, source: str | None = None, kind: str | None = None) -> int:
        """Occurrences matching a source and/or kind (None = any)."""
        with self._lock:
            return sum(p.count for (s, k), p in self._problems.items()
                       if (source is None or s == source) and (kind is None or k == kind))

    def get(self, source: str, kind: str) -> Problem | None:
        """The record of one (source, kind), or None if it never happened."""
        with self._lock:
            return self._problems.get((source, kind))

    def latest(self) -> Problem | None:
        """The most recent problem, if any."""
        with self._lock:
            return max(self._problems.values(), key=lambda p: p.last_time, default=None)
