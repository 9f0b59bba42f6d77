"""Kinematics and trajectories of one Panda: forward/inverse kinematics of the end effector E and
smooth joint trajectories through Cartesian waypoints.

E is the Panda tool-centre point: the hand frame moved 0.1034 m along its +z axis, between the finger
tips (+z pointing out of the hand, +y along the finger opening). Poses are 4×4 arrays `X_AB` in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydrake.math import RigidTransform, RotationMatrix
from pydrake.multibody.inverse_kinematics import InverseKinematics
from pydrake.multibody.parsing import Parser
from pydrake.multibody.plant import MultibodyPlant
from pydrake.multibody.tree import FixedOffsetFrame
from pydrake.solvers import Solve
from pydrake.trajectories import PiecewisePolynomial

from geo4d_core.geometry import interpolate_pose
from sim.drake_models import map_drake_models
from sim.scene import HOME_Q, PANDA_URL
from sim.tasks.base import Waypoint

X_HE = np.eye(4)
X_HE[2, 3] = 0.1034  # E in the hand frame, metres


class PlanningError(RuntimeError):
    """A motion cannot be planned (unreachable pose, IK failure, joint jump)."""

    def __init__(self, message: str, *, step: int | None = None):
        super().__init__(message)
        self.step = step  # index of the first plan step that cannot be planned, when a plan step is to blame


class ArmKinematics:
    """A Panda alone, welded at X_WB, for kinematics of the end effector E in world coordinates."""

    def __init__(self, X_WB: np.ndarray):
        self.plant = MultibodyPlant(time_step=0.0)
        parser = Parser(self.plant)
        map_drake_models(parser)
        parser.AddModelsFromUrl(PANDA_URL)
        self.plant.WeldFrames(self.plant.world_frame(), self.plant.GetFrameByName("panda_link0"), RigidTransform(X_WB))
        self.frame_E = self.plant.AddFrame(
            FixedOffsetFrame("panda_tcp", self.plant.GetFrameByName("panda_hand"), RigidTransform(X_HE)))
        self.plant.Finalize()
        self.context = self.plant.CreateDefaultContext()

    def fk(self, q_arm: np.ndarray) -> np.ndarray:
        """X_WE (4, 4) for the 7 arm joint angles (radians)."""
        self.plant.SetPositions(self.context, np.concatenate([q_arm, [0.02, 0.02]]))
        return self.frame_E.CalcPoseInWorld(self.context).GetAsMatrix4()

    def ik(self, X_WE: np.ndarray, q_seed: np.ndarray, *, pos_tol: float = 1e-3, rot_tol: float = 0.01) -> np.ndarray:
        """Arm joint angles (7,) that put E at X_WE (within pos_tol metres, rot_tol radians), close to
        q_seed. Raises PlanningError when no solution is found."""
        ik = InverseKinematics(self.plant, self.context, with_joint_limits=True)
        p = X_WE[:3, 3]
        ik.AddPositionConstraint(self.frame_E, np.zeros(3), self.plant.world_frame(), p - pos_tol, p + pos_tol)
        ik.AddOrientationConstraint(self.plant.world_frame(), RotationMatrix(X_WE[:3, :3]), self.frame_E,
                                    RotationMatrix(), rot_tol)
        q = ik.q()
        prog = ik.prog()
        seed = np.concatenate([q_seed, [0.02, 0.02]])
        prog.AddBoundingBoxConstraint(0.02, 0.02, q[7:])
        prog.AddQuadraticErrorCost(np.diag([1.0] * 7 + [0.0, 0.0]), seed, q)
        for guess in (seed, np.concatenate([HOME_Q, [0.02, 0.02]])):  # the seed, then a neutral pose
            prog.SetInitialGuess(q, guess)
            result = Solve(prog)
            if result.is_success():
                return result.GetSolution(q)[:7]
        raise PlanningError(f"no IK solution for E at p_W={np.round(p, 3).tolist()}")


@dataclass
class ArmTrajectory:
    """Joint trajectory and finger opening of one arm as functions of time (seconds)."""

    q: PiecewisePolynomial  # (7,) arm joint angles, radians
    times: np.ndarray  # (N,) knot times, seconds
    widths: np.ndarray  # (N,) finger opening commanded while moving towards each knot, metres
    X_WE: np.ndarray  # (N, 4, 4) planned E poses at the knots

    def __post_init__(self) -> None:
        self._qdot = self.q.derivative(1)  # evaluated at every plant step: build it once

    def __call__(self, t: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(q (7,), v (7,), finger width) at time t, clamped to the trajectory's ends."""
        t = float(np.clip(t, self.times[0], self.times[-1]))
        k = min(int(np.searchsorted(self.times, t, side="left")), len(self.times) - 1)
        v = self._qdot.value(t).ravel() if self.times[-1] > t > self.times[0] else np.zeros(7)
        return self.q.value(t).ravel(), v, float(self.widths[k])


def plan_arm_trajectory(kin: ArmKinematics, q_start: np.ndarray, width_start: float,
                        waypoints: list[Waypoint], *, dt: float = 0.1, max_speed: float = 2.0,
                        max_slowdown: float = 1.0) -> ArmTrajectory:
    """Joint trajectory from q_start through Cartesian waypoints.

    Straight segments are sampled every `dt` seconds along the SE(3) interpolation (slerp + linear) and
    solved by IK seeded with the previous sample, so E moves in a straight line; the samples are joined
    by a shape-preserving cubic with zero velocity at both ends. Non-straight waypoints are reached by
    one joint-space move.

    Joint speed. A sample whose largest joint move would be faster than `max_speed` rad/s on average is
    slowed down (retimed) to exactly `max_speed`, by at most a factor `max_slowdown` of its nominal time;
    every later sample moves later by the same delay, so the trajectory keeps its path and finishes
    late. `max_slowdown = 1` (the default, for the scripted expert whose timing is designed) allows no
    retiming. A move that would need more than `max_slowdown` (an IK branch flip, or a plan far too fast
    for the arm) raises PlanningError, as does an unreachable sample.
    """
    if not max_slowdown >= 1.0:
        raise ValueError(f"max_slowdown must be >= 1 (1 = no retiming), got {max_slowdown}")
    times, qs, widths, poses = [0.0], [np.asarray(q_start, float)], [width_start], [kin.fk(q_start)]
    t_nominal, delay = 0.0, 0.0  # the plan's own time of the last sample; seconds of retiming so far
    for wp in waypoints:
        t0, X0 = t_nominal, poses[-1]
        if wp.t <= t0:
            raise PlanningError(f"waypoint times must increase: {wp.t} after {t0}")
        n = max(1, int(np.ceil((wp.t - t0) / dt))) if wp.straight else 1
        seg = (wp.t - t0) / n  # nominal seconds per sample
        for i in range(1, n + 1):
            s = i / n
            X = interpolate_pose(X0, wp.X_WE, s)
            q = kin.ik(X, qs[-1])
            step = float(np.max(np.abs(q - qs[-1])))
            if step > max_speed * seg * max_slowdown:
                raise PlanningError(f"joint jump of {step:.2f} rad in {seg:.2f} s at t={t0 + s * (wp.t - t0):.2f} s"
                                    + (f" (more than {max_slowdown:g}x slower than planned at {max_speed:g} rad/s)"
                                       if max_slowdown > 1.0 else ""))
            delay += max(0.0, step / max_speed - seg)
            times.append(t0 + s * (wp.t - t0) + delay)
            qs.append(q)
            widths.append(wp.width)
            poses.append(X)
        t_nominal = wp.t
    times_a = np.asarray(times)
    traj = PiecewisePolynomial.CubicShapePreserving(times_a, np.asarray(qs).T, zero_end_point_derivatives=True)
    return ArmTrajectory(traj, times_a, np.asarray(widths), np.asarray(poses))


__all__ = ["ArmKinematics", "ArmTrajectory", "PlanningError", "X_HE", "plan_arm_trajectory"]
