"""The task interface: what a task adds to the station, how it randomises, its scripted expert and its
success predicate. Poses are 4×4 arrays `X_AB` in metres (DESIGN.md §3); W is the table-centre frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydrake.multibody.parsing import Parser
from pydrake.multibody.plant import MultibodyPlant

from sim.scene import SceneConfig, Station


@dataclass
class Waypoint:
    """A Cartesian target of one arm's end effector E (Panda TCP, between the finger tips)."""

    t: float  # time at which E reaches the pose, seconds from the start of the demonstration
    X_WE: np.ndarray  # (4, 4) target pose of E in the world
    width: float  # finger opening commanded from this waypoint on, metres (0 = close fully)
    straight: bool = True  # move in a straight Cartesian line from the previous waypoint


@dataclass
class DemoPlan:
    """A scripted demonstration: per arm, the waypoints in time order."""

    waypoints: dict[str, list[Waypoint]]  # arm name -> waypoints
    duration: float  # seconds to simulate (the last waypoint plus settling time)
    notes: dict[str, float] = field(default_factory=dict)  # task-specific numbers for debugging


@dataclass
class Outcome:
    """What the success predicate found."""

    success: bool  # the task predicate holds
    reason: str  # a short human-readable explanation (why it failed, or what succeeded)


class Task(ABC):
    """One manipulation task in the station."""

    name: ClassVar[str]  # task name, e.g. "PutSpatulaOnTable"
    default_episodes: ClassVar[int]  # number of demonstrations in the paper's dataset

    @abstractmethod
    def arm_bases(self) -> dict[str, np.ndarray]:
        """Arm name -> (4, 4) pose X_WB of the arm base (panda_link0) in the world."""

    @abstractmethod
    def add_objects(self, plant: MultibodyPlant, parser: Parser, config: SceneConfig) -> dict[str, object]:
        """Add fixtures and free objects to the plant (before Finalize); return name -> Body of the
        objects whose labels and poses matter."""

    @abstractmethod
    def randomize(self, station: Station, plant_context, rng: np.random.Generator) -> None:
        """Set the randomised initial poses of the free objects in `plant_context`."""

    @abstractmethod
    def plan(self, station: Station, plant_context) -> DemoPlan:
        """The scripted expert's plan, computed from the objects' actual poses in `plant_context`."""

    @abstractmethod
    def success(self, station: Station, plant_context) -> Outcome:
        """Decide success from the simulated state."""
