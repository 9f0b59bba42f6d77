"""Run one unit of simulation work (a dataset attempt, an evaluation trial) in a fresh process with a
time limit.

Drake's VTK renderer on Mesa EGL has been seen to hang forever on one particular frame (see
`sim.generate`); nothing inside the process can interrupt it, so long-running jobs run each unit in a
spawned child (a fresh interpreter: Drake and VTK do not survive fork) and kill it after `timeout`.
A child whose parent dies (killed, or an interrupted evaluation) exits within `ORPHAN_CHECK_S` seconds
instead of rendering on for minutes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import threading
import time
from typing import Any, Callable

__all__ = ["ORPHAN_CHECK_S", "SubprocessTimeout", "SubprocessCrash", "call_with_timeout"]

ORPHAN_CHECK_S = 1.0  # how often a child checks that its parent is still alive, seconds


class SubprocessTimeout(TimeoutError):
    """The child did not finish within its time limit and was killed."""


class SubprocessCrash(RuntimeError):
    """The function raised in the child (the message carries the exception type and text) or the child
    died without a result."""


def _exit_when_orphaned(parent_pid: int) -> None:
    """Exit this process as soon as its parent `parent_pid` is gone (it was re-parented)."""
    while os.getppid() == parent_pid:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(3)


def _child(fn: Callable, args: tuple, results, parent_pid: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="orphan-check", daemon=True).start()
    try:
        results.put(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def call_with_timeout(fn: Callable, args: tuple = (), *, timeout: float) -> Any:
    """`fn(*args)` in a spawned child process, killed after `timeout` seconds (<= 0: call in this process).

    `fn` must be importable by name (a module-level function) and its arguments and result picklable.

    Raises:
        SubprocessTimeout: the child ran past `timeout` (it has been killed).
        SubprocessCrash: `fn` raised in the child, or the child died without a result.
    """
    if timeout <= 0:
        return fn(*args)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_child, args=(fn, args, results, os.getpid()), daemon=False)
    child.start()
    deadline = time.monotonic() + timeout
    try:
        while True:  # wake every few seconds to notice a child that died without a result (e.g. a segfault)
            left = deadline - time.monotonic()
            if left <= 0:
                child.kill()
                raise SubprocessTimeout("timed out (killed)")
            try:
                status, value = results.get(timeout=min(left, 5.0))
                break
            except queue_module.Empty:
                if not child.is_alive() and results.empty():
                    raise SubprocessCrash(f"the child process died (exit code {child.exitcode}) without a result")
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            child.join()
    if status == "error":
        raise SubprocessCrash(value)
    return value
