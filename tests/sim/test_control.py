"""Panda kinematics and joint trajectories through Cartesian waypoints (sim/control.py)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.geometry import make_pose, rotation_distance
from sim.control import ArmKinematics, PlanningError, plan_arm_trajectory
from sim.scene import HOME_Q
from sim.tasks.base import Waypoint

DT = 0.1 * (1 + 1e-6)  # one IK sample per 0.1 s step despite float rounding (as sim.execution does)


@pytest.fixture(scope="module")
def kin():
    return ArmKinematics(np.eye(4))


def turned(X, angle):
    """X turned by `angle` radians about its own z axis (the Panda's last joint is about that axis)."""
    return X @ make_pose(Rotation.from_euler("z", angle).as_matrix(), np.zeros(3))


def test_a_step_too_fast_for_the_joints_is_slowed_down_on_the_same_path(kin):
    X0 = kin.fk(HOME_Q)
    wps = [Waypoint(0.1, turned(X0, 0.4), 0.08), Waypoint(0.2, turned(X0, 0.45), 0.08)]  # 0.4 rad in 0.1 s
    with pytest.raises(PlanningError, match="joint jump of 0.[34]"):
        plan_arm_trajectory(kin, HOME_Q, 0.08, wps, max_speed=2.0, dt=DT)  # no retiming: the expert's rule
    traj = plan_arm_trajectory(kin, HOME_Q, 0.08, wps, max_speed=2.0, max_slowdown=3.0, dt=DT)
    q = np.array([traj(t)[0] for t in traj.times])
    steps = np.abs(np.diff(q, axis=0)).max(axis=1)  # largest joint move per step, rad
    assert steps[0] > 0.3 and steps[1] < 0.2
    # the first step takes (its joint move) / (2 rad/s) instead of 0.1 s; the second keeps its 0.1 s
    np.testing.assert_allclose(traj.times, [0.0, steps[0] / 2.0, steps[0] / 2.0 + 0.1], atol=1e-9)
    for t, X in zip(traj.times[1:], [w.X_WE for w in wps]):  # same path: every waypoint reached
        assert rotation_distance(kin.fk(traj(t)[0]), X) < 0.011  # the IK orientation tolerance, rad
    # a step that would need more than max_slowdown times its duration is refused
    with pytest.raises(PlanningError, match=r"more than 1.5x slower"):
        plan_arm_trajectory(kin, HOME_Q, 0.08, wps, max_speed=2.0, max_slowdown=1.5, dt=DT)
    with pytest.raises(ValueError, match="max_slowdown"):
        plan_arm_trajectory(kin, HOME_Q, 0.08, wps, max_slowdown=0.5)


def test_a_slow_enough_plan_keeps_its_timing(kin):
    X0 = kin.fk(HOME_Q)
    wps = [Waypoint(0.1 * k, turned(X0, 0.02 * k), 0.08) for k in range(1, 6)]
    a = plan_arm_trajectory(kin, HOME_Q, 0.08, wps, dt=DT)
    b = plan_arm_trajectory(kin, HOME_Q, 0.08, wps, max_slowdown=3.0, dt=DT)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_allclose(a.times, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], atol=1e-12)
