"""Approximate-time synchronisation of N named streams (our own equivalent of message_filters'
ApproximateTimeSynchronizer), in pure Python with no rclpy dependency so it is testable with plain stamps.

Stamps are float seconds (the node passes ``stamp_to_seconds(msg.header.stamp)``). A *set* holds one
message per stream whose stamps all lie within ``slop`` seconds of each other (max - min <= slop).

Policy ("always the newest synchronized set"):

- Each stream keeps a bounded queue (``queue_size`` messages) sorted by stamp.
- A set is emitted as soon as one exists (eagerly, like the Python message_filters); when several
  exist the newest wins (largest newest stamp; within that, for each stream the newest message).
  Choose ``slop`` below half the frame period so that each message has at most one partner per stream
  and eager emission is also the closest match.
- Emission consumes the set's messages and drops every older message of each stream, so stamps of
  emitted sets strictly increase per stream.
- Every message that is not emitted is counted as dropped, per stream, with a reason:

  ``superseded``            it could have been part of a set, but a newer set was emitted instead (or
                            it arrived with a stamp not newer than a set already emitted);
  ``no_match_within_slop``  no set containing it existed or can exist any more: some other stream has
                            moved past ``stamp + slop`` without a message within ``slop`` of it, or
                            it was dropped as older than an emitted set without ever having a match;
  ``queue_overflow``        its stream's queue was full (typically another stream has stopped);
  ``reset``                 `reset()` cleared it (e.g. after the clock jumped back).

  Invariant per stream: received = emitted-in-sets + dropped (all reasons) + pending.

  With ``on_drop``, every dropped message is also described by a `SyncDrop` (its stream, stamp, reason
  and the stamp nearest to it on each other stream), so a node can report *why* stamps never pair
  (e.g. one camera 0.5 s behind the other) instead of only counting.

The "can exist any more" test assumes each stream arrives in stamp order (true for a camera driver);
an out-of-order message is still accepted and placed by its stamp.

Thread-safe: all state changes happen under one lock; the optional callbacks run after the lock is
released, in the pushing thread (with several pushing threads, callbacks may run concurrently and out
of order; `latest()` always returns the newest set).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DROP_REASONS", "ApproximateTimeSync", "SyncDrop", "SyncSet", "SyncStats"]

DROP_REASONS: tuple[str, ...] = ("superseded", "queue_overflow", "no_match_within_slop", "reset")


@dataclass(frozen=True)
class SyncSet:
    """One synchronized set: a message per stream and its stamp (seconds)."""

    index: int  # 0-based count of sets emitted before this one
    messages: dict[str, Any]  # stream name -> message
    stamps: dict[str, float]  # stream name -> header stamp, seconds

    @property
    def stamp(self) -> float:
        """The newest stamp in the set, seconds."""
        return max(self.stamps.values())

    @property
    def spread(self) -> float:
        """max - min of the stamps in the set, seconds (<= slop)."""
        return max(self.stamps.values()) - min(self.stamps.values())

    def __getitem__(self, stream: str) -> Any:
        return self.messages[stream]


@dataclass(frozen=True)
class SyncDrop:
    """One dropped message and what it lacked (passed to `on_drop`)."""

    stream: str  # the stream the message came from
    stamp: float  # its header stamp, seconds
    reason: str  # one of DROP_REASONS
    nearest: dict[str, float | None]  # each other stream -> its stamp nearest to `stamp` (queued or newest received); None = nothing received
    slop: float  # the synchroniser's slop, seconds
    queue_size: int  # the synchroniser's queue size per stream

    def missing(self) -> list[str]:
        """The other streams without a message within slop of `stamp` (all other streams if none is)."""
        out = [o for o, t in self.nearest.items() if t is None or abs(t - self.stamp) > self.slop]
        return out or list(self.nearest)

    def describe(self, names: Mapping[str, str] | None = None, hint: str | None = None) -> str:
        """A one-line explanation; `names` maps stream names to what to call them (e.g. topics); `hint`
        replaces the default advice at the end (e.g. when the caller knows the partner was unusable)."""
        name = (lambda s: names.get(s, s)) if names is not None else (lambda s: s)

        def partners() -> str:
            parts = []
            for o in self.missing():
                t = self.nearest[o]
                if t is None:
                    parts.append(f"{name(o)} (nothing received yet)")
                else:
                    d = t - self.stamp
                    parts.append(f"{name(o)} (nearest {t:.3f} s, {abs(d):.3f} s {'later' if d > 0 else 'earlier'})")
            return "; ".join(parts)

        head = f"frame stamped {self.stamp:.3f} s dropped"
        if self.reason == "no_match_within_slop":
            hint = hint or "check the cameras' clocks and stamps (or raise the 'slop' parameter)"
            return f"{head}: it never paired, no frame within slop {self.slop:.3f} s on {partners()}; {hint}"
        if self.reason == "queue_overflow":
            hint = hint or "is that stream publishing?"
            return (f"{head}: queue of {self.queue_size} frames waiting for partners is full, no frame within slop "
                    f"{self.slop:.3f} s on {partners()}; {hint}")
        tail = f"; {hint}" if hint else ""
        if self.reason == "superseded":
            return f"{head}: a newer synchronized set was emitted instead{tail}"
        return f"{head}: {self.reason}{tail}"


@dataclass(frozen=True)
class SyncStats:
    """A snapshot of the synchroniser's counters."""

    received: dict[str, int]  # messages pushed, per stream
    emitted: int  # sets emitted
    dropped: dict[str, dict[str, int]]  # stream -> reason -> messages dropped
    pending: dict[str, int]  # messages queued now, per stream
    last_set_stamp: float | None = None  # newest stamp of the last emitted set, seconds

    def dropped_total(self, stream: str | None = None, reason: str | None = None) -> int:
        """Dropped messages, summed over streams and/or reasons unless one is named."""
        streams = [stream] if stream is not None else list(self.dropped)
        return sum(
            count for s in streams for r, count in self.dropped[s].items() if reason is None or r == reason
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form for status messages / JSON."""
        return {
            "received": dict(self.received),
            "emitted": self.emitted,
            "dropped": {s: dict(r) for s, r in self.dropped.items()},
            "pending": dict(self.pending),
            "last_set_stamp": self.last_set_stamp,
        }


class ApproximateTimeSync:
    """Pairs messages of N named streams whose stamps lie within `slop` seconds (see module doc).

    Args:
        streams: stream names, e.g. ("color_n", "depth_n", "color_m", "depth_m").
        slop: the largest allowed max - min of the stamps in a set, seconds (>= 0).
        queue_size: messages kept per stream while waiting for partners (>= 1).
        callback: called with each emitted SyncSet (outside the lock, in the pushing thread).
        on_drop: called with a `SyncDrop` for each dropped message (outside the lock, in the pushing
            thread, or in the thread calling `reset()`).
    """

    def __init__(
        self,
        streams: Sequence[str],
        slop: float,
        queue_size: int = 10,
        callback: Callable[[SyncSet], None] | None = None,
        on_drop: Callable[[SyncDrop], None] | None = None,
    ) -> None:
        names = list(streams)
        if not names:
            raise ValueError("ApproximateTimeSync needs at least one stream")
        if len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names):
            raise ValueError(f"stream names must be unique non-empty strings, got {names}")
        if not (math.isfinite(slop) and slop >= 0):
            raise ValueError(f"slop must be finite and >= 0 seconds, got {slop}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.streams: tuple[str, ...] = tuple(names)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self.callback = callback
        self.on_drop = on_drop
        self._drops: list[SyncDrop] = []  # described drops of the current push, reported after the lock
        self._lock = threading.Lock()
        self._stamps: dict[str, list[float]] = {s: [] for s in names}  # sorted stamps of queued messages
        self._msgs: dict[str, list[Any]] = {s: [] for s in names}  # messages, parallel to _stamps
        self._newest: dict[str, float | None] = {s: None for s in names}  # newest stamp ever received
        self._last_emitted: dict[str, float | None] = {s: None for s in names}  # stamp in last set
        self._received = {s: 0 for s in names}
        self._dropped = {s: dict.fromkeys(DROP_REASONS, 0) for s in names}
        self._emitted = 0
        self._latest: SyncSet | None = None

    # ------------------------------------------------------------------------------------- public

    def push(self, stream: str, stamp: float, msg: Any) -> SyncSet | None:
        """Add a message of `stream` with header stamp `stamp` (seconds); returns the set it completed.

        Raises ValueError for an unknown stream or a non-finite stamp (the message is not counted).
        """
        if stream not in self._stamps:
            raise ValueError(f"unknown stream {stream!r}; streams: {', '.join(self.streams)}")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp of stream {stream!r} must be finite, got {stamp}")
        with self._lock:
            out = self._push_locked(stream, stamp, msg)
            drops, self._drops = self._drops, []
        self._report(drops)
        if out is not None and self.callback is not None:
            self.callback(out)
        return out

    def latest(self) -> SyncSet | None:
        """The newest synchronized set emitted so far (None before the first)."""
        with self._lock:
            return self._latest

    def stats(self) -> SyncStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return SyncStats(
                received=dict(self._received),
                emitted=self._emitted,
                dropped={s: dict(r) for s, r in self._dropped.items()},
                pending={s: len(q) for s, q in self._stamps.items()},
                last_set_stamp=None if self._latest is None else self._latest.stamp,
            )

    def reset(self) -> None:
        """Forget queued messages (counted as dropped, reason "reset") and the stamps of the last set,
        e.g. after the clock jumped back (simulation restart, bag loop). Counters and latest() stay."""
        with self._lock:
            for s in self.streams:
                for t in self._stamps[s]:
                    self._count_drop(s, t, "reset")
            for s in self.streams:
                self._stamps[s].clear()
                self._msgs[s].clear()
                self._newest[s] = None
                self._last_emitted[s] = None
            drops, self._drops = self._drops, []
        self._report(drops)

    # ----------------------------------------------------------------------------------- internals

    def _report(self, drops: list[SyncDrop]) -> None:
        if self.on_drop is not None:
            for drop in drops:
                self.on_drop(drop)

    def _nearest(self, stream: str, t: float) -> float | None:
        """The stamp of `stream` nearest to t among its queued messages and its newest one."""
        q = self._stamps[stream]
        j = bisect.bisect_left(q, t)
        candidates = q[max(j - 1, 0) : j + 1]
        if self._newest[stream] is not None:
            candidates.append(self._newest[stream])
        return min(candidates, key=lambda c: abs(c - t), default=None)

    def _count_drop(self, stream: str, stamp: float, reason: str) -> None:
        """Count a dropped message (call before removing it) and describe it when someone listens."""
        self._dropped[stream][reason] += 1
        if self.on_drop is not None:
            nearest = {o: self._nearest(o, stamp) for o in self.streams if o != stream}
            self._drops.append(SyncDrop(stream, stamp, reason, nearest, self.slop, self.queue_size))

    def _drop(self, stream: str, index: int, reason: str) -> None:
        self._count_drop(stream, self._stamps[stream][index], reason)
        del self._stamps[stream][index]
        del self._msgs[stream][index]

    def _push_locked(self, stream: str, stamp: float, msg: Any) -> SyncSet | None:
        self._received[stream] += 1
        last = self._last_emitted[stream]
        if last is not None and stamp <= last:
            self._count_drop(stream, stamp, "superseded")  # a set at least this new was already emitted
            return None
        newest = self._newest[stream]
        self._newest[stream] = stamp if newest is None else max(newest, stamp)
        i = bisect.bisect_right(self._stamps[stream], stamp)
        self._stamps[stream].insert(i, stamp)
        self._msgs[stream].insert(i, msg)

        # Before this push no complete set existed (each push emits the newest one and everything
        # older is dropped), so a new set must contain the new message.
        chosen = self._find_set({stream: i})
        out = None
        if chosen is not None:
            out = self._emit(chosen, new_stream=stream, new_index=i)
        self._prune_unmatchable()
        for s in self.streams:
            while len(self._stamps[s]) > self.queue_size:
                self._drop(s, 0, "queue_overflow")
        return out

    def _find_set(self, fixed: dict[str, int]) -> dict[str, int] | None:
        """Indices (stream -> queue index) of the newest set containing the `fixed` queue entries."""
        fixed_stamps = [self._stamps[s][i] for s, i in fixed.items()]
        lo, hi = max(fixed_stamps), min(fixed_stamps) + self.slop  # range of the set's newest stamp
        if lo > hi:
            return None
        free = [s for s in self.streams if s not in fixed]
        for s in free:
            if not self._stamps[s]:
                return None
        pivots = {lo}
        for s in free:
            q = self._stamps[s]
            pivots.update(q[bisect.bisect_right(q, lo) : bisect.bisect_right(q, hi)])
        for pivot in sorted(pivots, reverse=True):
            chosen = dict(fixed)
            for s in free:
                q = self._stamps[s]
                j = bisect.bisect_right(q, pivot) - 1  # newest message with stamp <= pivot
                if j < 0 or q[j] < pivot - self.slop:
                    break
                chosen[s] = j
            else:
                return chosen
        return None

    def _emit(self, chosen: dict[str, int], new_stream: str, new_index: int) -> SyncSet:
        # Classify the older messages first (against the queues as they are, before removal).
        drops: list[tuple[str, int, str]] = []
        for s, j in chosen.items():
            for k in range(j):
                if s == new_stream:
                    # an older message of the stream that just completed a set: was it pairable?
                    reason = "no_match_within_slop"
                else:
                    reason = "superseded" if self._find_set({new_stream: new_index, s: k}) else "no_match_within_slop"
                drops.append((s, k, reason))
        messages = {s: self._msgs[s][j] for s, j in chosen.items()}
        stamps = {s: self._stamps[s][j] for s, j in chosen.items()}
        for s, k, reason in drops:
            self._count_drop(s, self._stamps[s][k], reason)
        for s, j in chosen.items():
            del self._stamps[s][: j + 1]
            del self._msgs[s][: j + 1]
            self._last_emitted[s] = stamps[s]
        out = SyncSet(index=self._emitted, messages={s: messages[s] for s in self.streams}, stamps={s: stamps[s] for s in self.streams})
        self._emitted += 1
        self._latest = out
        return out

    def _prune_unmatchable(self) -> None:
        """Drop queued messages that can no longer be part of any set (reason no_match_within_slop).

        A message at stamp t is unmatchable when no set contains it now (true after every push) and
        every other stream has already moved past t + slop, or when some stream that moved past
        t + slop holds no message within slop of t.
        """
        if len(self.streams) == 1:
            return
        for s in self.streams:
            others = [self._newest[o] for o in self.streams if o != s and self._newest[o] is not None]
            if not others:
                continue
            # only messages older than (some other stream's newest - slop) can be unmatchable
            end = bisect.bisect_left(self._stamps[s], max(others) - self.slop)
            k = 0
            while k < end:
                if self._unmatchable(s, self._stamps[s][k]):
                    self._drop(s, k, "no_match_within_slop")
                    end -= 1
                else:
                    k += 1

    def _unmatchable(self, stream: str, t: float) -> bool:
        all_closed = True
        for other in self.streams:
            if other == stream:
                continue
            newest = self._newest[other]
            if newest is None or newest <= t + self.slop:
                all_closed = False  # future messages of `other` may still land within slop of t
                continue
            q = self._stamps[other]
            j = bisect.bisect_left(q, t - self.slop)
            if j == len(q) or q[j] > t + self.slop:
                return True
        return all_closed
