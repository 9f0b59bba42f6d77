"""The LBM-style tasks: registry by name."""

from __future__ import annotations

from sim.tasks.base import DemoPlan, Outcome, Task, Waypoint


def task_names() -> list[str]:
    """Names of all tasks, in the paper's order."""
    return list(_registry())


def make_task(name: str) -> Task:
    """The task called `name` (clear error listing the known names)."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(registry)}")
    return registry[name]()


def _registry() -> dict[str, type[Task]]:
    from sim.tasks.put_spatula_on_table import PutSpatulaOnTable

    return {cls.name: cls for cls in (PutSpatulaOnTable,)}


__all__ = ["DemoPlan", "Outcome", "Task", "Waypoint", "make_task", "task_names"]
