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
    import importlib

    classes = [getattr(importlib.import_module(f"sim.tasks.{module}"), cls) for module, cls in _TASKS]
    return {c.name: c for c in classes}


# (module, class) of every task, in the paper's order.
_TASKS = [
    ("store_cereal_box_under_shelf", "StoreCerealBoxUnderShelf"),
    ("put_spatula_on_table", "PutSpatulaOnTable"),
    ("place_apple_from_bowl_into_bin", "PlaceAppleFromBowlIntoBin"),
]


__all__ = ["DemoPlan", "Outcome", "Task", "Waypoint", "make_task", "task_names"]
