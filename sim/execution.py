"""Execute a geo4d `Plan` (end-effector targets from action extraction) on the arms of a Drake station.

A `Plan` holds per step a timestamp (seconds after the observation the plan was made from), the
tool-centre-point poses `X_BE` of its arms in the robot base frame B and the gripper commands
(`geo4d_core/action/plan.py`). Here every arm's steps become Cartesian waypoints in the world W
(`X_WE = X_WB @ X_BE`), the waypoints become a smooth joint trajectory from the arm's *measured* joint
positions (`sim.control.plan_arm_trajectory`: straight Cartesian lines solved by IK; a step faster than
the joint speed limit is slowed down to it, up to `max_slowdown`, and a bigger jump is refused),
and the trajectory is installed on the arm's `JointTargetSource`, starting at the current simulation
time. After the last step the arm holds the last pose with the last commanded finger opening.

Anything that cannot be planned (unreachable pose, IK failure, joint jump) raises
`sim.control.PlanningError` naming the arm and the plan step; callers treat it as a safety stop. No arm
gets a new plan unless every arm of the plan could be planned.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from geo4d_core.action.plan import Plan
from sim.control import ArmKinematics, ArmTrajectory, PlanningError, plan_arm_trajectory
from sim.scene import MAX_FINGER_WIDTH, Station
from sim.tasks.base import Waypoint

__all__ = ["PlanExecutor", "install", "plan_to_waypoints", "plan_widths"]


def plan_widths(plan: Plan, arm: str) -> np.ndarray:
    """(N,) finger openings commanded by `plan` for `arm`, metres.

    The plan's explicit `gripper_width` when it has one (clipped to [0, MAX_FINGER_WIDTH]); otherwise
    0 (close fully: the fingers stop on the object and squeeze it) for a closed step and
    MAX_FINGER_WIDTH for an open one. A `gripper_width` must be a *command*: a measured opening around
    a grasped object commands no squeezing force.
    """
    if arm not in plan.arms:
        raise ValueError(f"arm {arm!r} is not in the plan; plan arms: {plan.arms}")
    a = plan.arms.index(arm)
    if plan.gripper_width is not None:
        return np.clip(plan.gripper_width[:, a], 0.0, MAX_FINGER_WIDTH)
    return np.where(plan.gripper_closed[:, a], 0.0, MAX_FINGER_WIDTH)


def plan_to_waypoints(plan: Plan, arm: str, X_WB: np.ndarray, t_start: float) -> list[Waypoint]:
    """One straight-line `Waypoint` per plan step of `arm`: E at `X_WB @ plan.X_BE[k, a]` at time
    `t_start + plan.timestamps[k]` (seconds), with the finger opening of `plan_widths`.

    Args:
        plan: the plan (poses in the robot base frame B).
        arm: one of `plan.arms`.
        X_WB: (4, 4) pose of the plan's base frame B in the world W, metres (not the arm's link-0 pose).
        t_start: the time of the plan's start (its timestamps count from there), seconds.
    """
    X_WB = np.asarray(X_WB, dtype=float)
    if X_WB.shape != (4, 4):
        raise ValueError(f"X_WB (plan base frame in the world) must have shape (4, 4), got {X_WB.shape}")
    widths = plan_widths(plan, arm)
    X_WE = X_WB @ plan.X_BE[:, plan.arms.index(arm)]  # (N, 4, 4), batched matmul
    times = float(t_start) + plan.timestamps
    return [Waypoint(float(t), X, float(w), straight=True) for t, X, w in zip(times, X_WE, widths)]


class PlanExecutor:
    """Installs plans on the arms of one station; build once per station (it parses one Panda model per
    arm for kinematics)."""

    def __init__(self, station: Station, *, ik_dt: float = 0.1, max_joint_speed: float = 2.0,
                 max_slowdown: float = 3.0):
        """
        Args:
            station: the station whose arms execute the plans.
            ik_dt: longest time between two IK samples along a straight segment, seconds.
            max_joint_speed: fastest average joint speed between two samples, rad/s; a faster step of the
                plan is slowed down to it (the plan runs late, on the same path).
            max_slowdown: most a step may be slowed down (factor of its planned duration); a step that
                needs more is a planning error (an IK branch flip, or a plan far too fast for the arm).
        """
        self.station = station
        self.ik_dt = float(ik_dt)
        self.max_joint_speed = float(max_joint_speed)
        self.max_slowdown = float(max_slowdown)
        self.kinematics = {arm.name: ArmKinematics(arm.X_WB) for arm in station.arms}

    def trajectories(self, plan: Plan, *, context, X_WB: np.ndarray) -> dict[str, ArmTrajectory]:
        """Arm name -> joint trajectory of `plan` from the arms' measured joint positions in the root
        diagram `context`; trajectory time 0 is the current simulation time. Installs nothing.

        A step at t = 0 (the plan's current pose) is not a target, since the arm is at its measured
        pose at t = 0 by definition; its finger command applies from the start.

        Raises:
            ValueError: the plan names an arm the station lacks.
            PlanningError: a step of an arm cannot be planned (the message names the arm and step; its
                `step` attribute is the index of that plan step).
        """
        plant = self.station.plant
        plant_context = plant.GetMyContextFromRoot(context)
        names = [a.name for a in self.station.arms]
        unknown = [a for a in plan.arms if a not in names]
        if unknown:
            raise ValueError(f"plan arms {unknown} are not arms of the station; station arms: {names}")
        out = {}
        for arm_name in plan.arms:
            arm = self.station.arm(arm_name)
            q0 = plant.GetPositions(plant_context, arm.instance)[:7]
            waypoints = plan_to_waypoints(plan, arm_name, X_WB, 0.0)
            first = int(np.searchsorted(plan.timestamps, 0.0, side="right"))  # steps at t = 0 are not targets
            width0 = waypoints[max(first - 1, 0)].width
            waypoints = waypoints[first:]
            if not waypoints:  # a plan made only of its current pose: hold here with its finger command
                waypoints = [Waypoint(self.ik_dt, self.kinematics[arm_name].fk(q0), width0)]
                first = 0
            try:
                out[arm_name] = self._plan(arm_name, q0, width0, waypoints)
            except PlanningError as exc:
                k = first + self._failing_step(arm_name, q0, width0, waypoints)
                raise PlanningError(
                    f"arm {arm_name!r}, plan step {k} (t = {plan.timestamps[k]:.3g} s, "
                    f"p_B = {np.round(plan.X_BE[k, plan.arms.index(arm_name), :3, 3], 3).tolist()}): {exc}",
                    step=k) from exc
        return out

    def execute(self, plan: Plan, *, context, X_WB: np.ndarray) -> None:
        """Plan every arm of `plan` (see `trajectories`) and install the trajectories on their joint
        target sources, starting at the current time of the root diagram `context`. Arms not in the
        plan keep their current command.

        Raises PlanningError (arm and step in the message) without installing anything when any arm
        fails.
        """
        trajectories = self.trajectories(plan, context=context, X_WB=X_WB)
        install(self.station, trajectories, context, t0=context.get_time())

    def _plan(self, arm: str, q0: np.ndarray, width0: float, waypoints: list[Waypoint]) -> ArmTrajectory:
        # The relative slack keeps a 0.1 s step at one IK sample despite float rounding of the timestamps.
        return plan_arm_trajectory(self.kinematics[arm], q0, width0, waypoints, dt=self.ik_dt * (1.0 + 1e-6),
                                   max_speed=self.max_joint_speed, max_slowdown=self.max_slowdown)

    def _failing_step(self, arm: str, q0: np.ndarray, width0: float, waypoints: list[Waypoint]) -> int:
        """Index of the first waypoint whose prefix fails to plan (bisection; planning is deterministic
        and sequential, so failure is monotone in the prefix length). Only runs after a failure."""
        lo, hi = 0, len(waypoints) - 1  # the full list fails: the answer lies in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                self._plan(arm, q0, width0, waypoints[: mid + 1])
                lo = mid + 1
            except PlanningError:
                hi = mid
        return lo


def install(station: Station, trajectories: dict[str, ArmTrajectory], context, *, t0: float) -> dict[str, Callable]:
    """Install joint trajectories (trajectory time 0 = simulation time `t0`) on the arms' target sources;
    returns arm name -> the installed function of simulation time (to restore it later).

    The target sources' output is cached per context; a new plan function is invisible to a context that
    already evaluated the output at its current time, so the time-dependent cache entries of `context`
    are invalidated (re-setting its time does exactly that).
    """
    fns = {}
    for name, traj in trajectories.items():
        fns[name] = lambda t, traj=traj, t0=t0: traj(t - t0)
        station.arm(name).targets.set_plan(fns[name])
    context.SetTime(context.get_time())
    return fns
