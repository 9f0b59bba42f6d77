"""Run a task's scripted expert in the physics simulation, optionally rendering and recording it.

One call = one episode: build the station, randomise the objects from the seed, let them settle,
plan from their actual poses, execute, and decide success with the task predicate. Time 0 of the
recording is the start of the plan; frames are rendered at `fps` (10 Hz by default).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pydrake.systems.analysis import Simulator

from geo4d_core.data import CameraFrame, CameraSpec
from sim.control import X_HE, ArmKinematics, PlanningError, plan_arm_trajectory
from sim.scene import HOME_Q, MAX_FINGER_WIDTH, SceneConfig, Station, build_station
from sim.tasks.base import Outcome, Task

SETTLE_S = 1.0  # seconds the objects settle before the plan starts


@dataclass
class StepRecord:
    """What was observed at one recorded time step."""

    t: float  # seconds since the start of the plan
    X_WE: np.ndarray  # (A, 4, 4) end-effector poses of the arms in the world
    gripper_width: np.ndarray  # (A,) measured finger openings, metres
    frames: dict[str, CameraFrame]  # camera name -> rendered frame (empty without cameras)


@dataclass
class DemoResult:
    """The outcome of one scripted demonstration."""

    task: str  # task name
    seed: int  # seed of the randomisation
    outcome: Outcome  # success and reason
    num_steps: int  # recorded time steps
    sim_seconds: float  # simulated time, seconds
    wall_seconds: dict[str, float] = field(default_factory=dict)  # "simulate", "render", "plan" wall times
    object_poses: dict[str, np.ndarray] = field(default_factory=dict)  # final X_WO (4, 4) of each task object


def measured_state(station: Station, plant_context) -> tuple[np.ndarray, np.ndarray]:
    """(X_WE (A, 4, 4), finger openings (A,) in metres) of all arms from the simulated state."""
    plant = station.plant
    poses, widths = [], []
    for arm in station.arms:
        X_WH = plant.EvalBodyPoseInWorld(plant_context, plant.GetBodyByName("panda_hand", arm.instance))
        poses.append(X_WH.GetAsMatrix4() @ X_HE)
        q = plant.GetPositions(plant_context, arm.instance)
        widths.append(q[7] + q[8])
    return np.asarray(poses), np.asarray(widths, dtype=np.float32)


def run_demonstration(
    task: Task,
    seed: int,
    *,
    cameras: list[CameraSpec] | tuple = (),
    config: SceneConfig | None = None,
    fps: float = 10.0,
    on_start: Callable[[Station], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    sabotage: str | None = None,
) -> DemoResult:
    """Simulate one scripted demonstration of `task` from `seed`.

    Args:
        cameras: cameras to render at every recorded step (none: physics only, much faster).
        fps: recording rate, Hz.
        on_start: called with the built station before the first recorded step (e.g. to open a writer).
        on_step: called with every recorded step (t = 0 is the start of the plan).
        sabotage: "no_grasp" keeps the gripper open all the time (a deliberately broken expert, for
            testing failure detection); None for the real expert.
    """
    if sabotage not in (None, "no_grasp"):
        raise ValueError(f"sabotage must be None or 'no_grasp', got {sabotage!r}")
    station = build_station(task, cameras, config)
    simulator = Simulator(station.diagram)
    context = simulator.get_mutable_context()
    plant_context = station.plant.GetMyMutableContextFromRoot(context)
    for arm in station.arms:
        station.plant.SetPositions(plant_context, arm.instance,
                                   np.concatenate([HOME_Q, [MAX_FINGER_WIDTH / 2] * 2]))
    task.randomize(station, plant_context, np.random.default_rng(seed))
    simulator.Initialize()
    walls = {"simulate": 0.0, "render": 0.0, "plan": 0.0}
    start = time.perf_counter()
    simulator.AdvanceTo(SETTLE_S)
    walls["simulate"] += time.perf_counter() - start

    start = time.perf_counter()
    try:
        plan = task.plan(station, plant_context)
        t0 = context.get_time()
        for arm in station.arms:
            q0 = station.plant.GetPositions(plant_context, arm.instance)[:7]
            waypoints = plan.waypoints.get(arm.name, [])
            if sabotage == "no_grasp":
                waypoints = [dataclasses.replace(w, width=MAX_FINGER_WIDTH) for w in waypoints]
            if not waypoints:
                continue
            traj = plan_arm_trajectory(ArmKinematics(arm.X_WB), q0, MAX_FINGER_WIDTH, waypoints)
            arm.targets.set_plan(lambda t, traj=traj, t0=t0: traj(t - t0))
    except PlanningError as exc:
        return DemoResult(task.name, seed, Outcome(False, f"planning failed: {exc}"), 0, context.get_time(), walls)
    walls["plan"] += time.perf_counter() - start

    num_steps = int(round(plan.duration * fps)) + 1
    if on_start is not None:
        on_start(station)
    for k in range(num_steps):
        start = time.perf_counter()
        simulator.AdvanceTo(t0 + k / fps)
        walls["simulate"] += time.perf_counter() - start
        if on_step is not None:
            start = time.perf_counter()
            frames = {name: station.render(context, name) for name in station.sensors}
            walls["render"] += time.perf_counter() - start
            X_WE, widths = measured_state(station, plant_context)
            on_step(StepRecord(k / fps, X_WE, widths, frames))
    outcome = task.success(station, plant_context)
    poses = {name: station.plant.EvalBodyPoseInWorld(plant_context, body).GetAsMatrix4()
             for name, body in station.objects.items()}
    return DemoResult(task.name, seed, outcome, num_steps, context.get_time(), walls, poses)
