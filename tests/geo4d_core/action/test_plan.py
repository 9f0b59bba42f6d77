"""Tests for geo4d_core.action.plan."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.action.plan import Plan, PlanLimits, PlanRejectedError, PlanViolation
from geo4d_core.geometry import invert_pose, make_pose


def _pose(p, rotvec=(0.0, 0.0, 0.0)) -> np.ndarray:
    return make_pose(Rotation.from_rotvec(rotvec).as_matrix(), np.asarray(p, dtype=float))


def _plan(X_BE: np.ndarray, timestamps=None, arms=("arm",), **kw) -> Plan:
    n, a = X_BE.shape[:2]
    t = np.arange(1, n + 1) * 0.1 if timestamps is None else timestamps
    return Plan(
        timestamps=t,
        arms=arms,
        X_BE=X_BE,
        gripper_closed=kw.pop("gripper_closed", np.zeros((n, a), dtype=bool)),
        confidence=kw.pop("confidence", np.full((n, a), 0.9)),
        source_view=kw.pop("source_view", np.full((n, a), "n")),
        **kw,
    )


def _line(n: int, start=(0.3, 0.0, 0.4), step=(0.02, 0.0, 0.0)) -> np.ndarray:
    """(n, 1, 4, 4) poses moving `step` metres per step from `start`, fixed orientation."""
    return np.stack([_pose(np.add(start, np.multiply(i, step)))[None] for i in range(n)])


# ------------------------------------------------------------------------------------------- PlanLimits

def test_limits_defaults_roundtrip_and_validation():
    lim = PlanLimits()
    assert (lim.max_linear_speed, lim.max_angular_speed) == (1.0, 3.0)
    assert lim.workspace_lo == (-1.0, -1.0, -0.05) and lim.workspace_hi == (1.0, 1.0, 1.2)
    d = lim.to_dict()
    assert d["workspace_lo"] == [-1.0, -1.0, -0.05]
    json.dumps(d)
    back = PlanLimits.from_dict(d)
    assert back == lim
    custom = PlanLimits.from_dict({"max_linear_speed": 0.25, "workspace_hi": [0.5, 0.5, 0.5]})
    assert custom.max_linear_speed == 0.25 and custom.workspace_hi == (0.5, 0.5, 0.5)
    assert custom.max_angular_speed == 3.0
    with pytest.raises(ValueError, match="unknown keys.*max_speed"):
        PlanLimits.from_dict({"max_speed": 1.0})
    with pytest.raises(ValueError, match="max_linear_speed must be finite and > 0"):
        PlanLimits(max_linear_speed=0.0)
    with pytest.raises(ValueError, match="max_angular_speed"):
        PlanLimits(max_angular_speed=float("nan"))
    with pytest.raises(ValueError, match="violated on z"):
        PlanLimits(workspace_lo=(0, 0, 1.0), workspace_hi=(1, 1, 1.0))
    with pytest.raises(ValueError, match="3 entries"):
        PlanLimits(workspace_lo=(0, 0))


# ------------------------------------------------------------------------------------------ construction

def test_plan_converts_and_copies_inputs():
    X = _line(3)
    closed = np.array([[0], [1], [1]])
    plan = _plan(X, gripper_closed=closed, gripper_width=np.array([[0.08], [0.0], [0.0]]))
    assert plan.num_steps == 3 and plan.num_arms == 1
    assert plan.gripper_closed.dtype == bool and plan.gripper_closed[:, 0].tolist() == [False, True, True]
    assert plan.source_view.tolist() == [["n"], ["n"], ["n"]]
    X[0, 0, 0, 3] = 99.0  # the plan holds a copy
    assert plan.X_BE[0, 0, 0, 3] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("timestamps", np.array([0.1, 0.1, 0.3]), "strictly increasing; step 1"),
        ("timestamps", np.array([0.1, 0.2]), r"X_BE must have shape \(N, A, 4, 4\) = \(2, 1, 4, 4\)"),
        ("timestamps", np.array([-0.1, 0.1, 0.2]), ">= 0"),
        ("timestamps", np.array([0.1, np.nan, 0.3]), "finite"),
        ("arms", ("left", "right"), r"X_BE must have shape .*\(3, 2, 4, 4\)"),
        ("arms", ("a", "a"), "distinct"),
        ("arms", "arm", "sequence of names"),
        ("arms", (), "non-empty"),
        ("gripper_closed", np.zeros((3, 2), dtype=bool), r"gripper_closed must have shape \(N, A\) = \(3, 1\)"),
        ("gripper_closed", np.full((3, 1), 0.5), "booleans"),
        ("confidence", np.full((3, 1), 1.5), r"confidence must lie in \[0, 1\]"),
        ("confidence", np.zeros(3), r"confidence must have shape"),
        ("source_view", np.array([["n"], ["x"], ["m"]]), "'n' or 'm', got 'x'"),
        ("source_view", np.full((2, 1), "n"), "source_view must have shape"),
        ("gripper_width", np.full((3, 1), -0.01), "gripper_width must be finite and >= 0"),
        ("gripper_width", np.full((3,), 0.01), "gripper_width must have shape"),
    ],
)
def test_plan_rejects_bad_fields_with_clear_messages(field, value, match):
    kw = dict(timestamps=np.array([0.1, 0.2, 0.3]), arms=("arm",), X_BE=_line(3),
              gripper_closed=np.zeros((3, 1), dtype=bool), confidence=np.full((3, 1), 0.5),
              source_view=np.full((3, 1), "m"))
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        Plan(**kw)


def test_from_camera_poses_maps_to_the_base_frame():
    rng = np.random.default_rng(0)
    X_BC = _pose([0.5, -0.2, 0.8], rotvec=[2.0, 0.3, -0.5])
    X_CE = np.stack([
        np.stack([_pose(rng.uniform(-0.2, 0.2, 3) + [0, 0, 0.6], rng.normal(size=3)) for _ in range(2)])
        for _ in range(4)
    ])
    plan = Plan.from_camera_poses(
        timestamps=np.arange(4) * 0.1 + 0.1, X_CE=X_CE, X_BC=X_BC,
        gripper_closed=np.zeros((4, 2), bool), confidence=np.ones((4, 2)),
        source_view=np.array([["n", "m"]] * 4), arms=("left", "right"),
        gripper_width=np.full((4, 2), 0.04))
    assert plan.arms == ("left", "right") and plan.X_BE.shape == (4, 2, 4, 4)
    for i in range(4):
        for j in range(2):
            np.testing.assert_allclose(plan.X_BE[i, j], X_BC @ X_CE[i, j], atol=1e-12)
    # A point fixed in E maps consistently: p_B = X_BC p_C.
    p_E = np.array([0.0, 0.0, 0.1, 1.0])
    np.testing.assert_allclose(plan.X_BE[2, 1] @ p_E, X_BC @ (X_CE[2, 1] @ p_E), atol=1e-12)
    np.testing.assert_allclose(invert_pose(X_BC) @ plan.X_BE[0, 0], X_CE[0, 0], atol=1e-12)
    with pytest.raises(ValueError, match="X_BC .* must be a finite rigid transform"):
        Plan.from_camera_poses(np.array([0.1]), X_CE[:1, :1], 2.0 * X_BC, np.zeros((1, 1), bool),
                               np.ones((1, 1)), np.full((1, 1), "n"))
    with pytest.raises(ValueError, match=r"X_CE must have shape \(N, A, 4, 4\)"):
        Plan.from_camera_poses(np.array([0.1]), X_CE[0, 0], X_BC, np.zeros((1, 1), bool),
                               np.ones((1, 1)), np.full((1, 1), "n"))


# ------------------------------------------------------------------------------------------------ check

def test_a_slow_plan_inside_the_workspace_passes():
    plan = _plan(_line(5))  # 0.02 m per 0.1 s = 0.2 m/s
    assert plan.check(PlanLimits()) == []
    assert plan.validate(PlanLimits(), X_BE_current=_pose([0.29, 0.0, 0.4])) is plan


def test_linear_speed_violation_names_step_numbers_and_limit():
    X = _line(4)
    X[2, 0, :3, 3] += [0.15, 0.0, 0.0]  # step 1 -> 2: 0.17 m in 0.1 s; step 2 -> 3: 0.13 m
    v = _plan(X).check(PlanLimits(max_linear_speed=1.5))
    assert [(x.step, x.arm, x.kind) for x in v] == [(2, "arm", "linear_speed")]
    assert "1.7 m/s from step 1" in v[0].message and "0.17 m in 0.1 s" in v[0].message
    assert "max_linear_speed 1.5 m/s" in v[0].message
    # A looser limit accepts it, a tighter one also flags the way back.
    assert _plan(X).check(PlanLimits(max_linear_speed=1.8)) == []
    tight = _plan(X).check(PlanLimits(max_linear_speed=1.2))
    assert [(x.step, x.kind) for x in tight] == [(2, "linear_speed"), (3, "linear_speed")]


def test_speed_exactly_at_the_limit_is_allowed():
    X = _line(3, step=(0.1, 0.0, 0.0))  # exactly 1.0 m/s
    assert _plan(X).check(PlanLimits(max_linear_speed=1.0)) == []
    assert len(_plan(X).check(PlanLimits(max_linear_speed=0.999))) == 2


def test_angular_speed_violation():
    X = np.stack([_pose([0.3, 0, 0.4], [0, 0, a])[None] for a in (0.0, 0.1, 0.5)])  # 4 rad/s on the 2nd move
    v = _plan(X).check(PlanLimits())
    assert [(x.step, x.kind) for x in v] == [(2, "angular_speed")]
    assert "4 rad/s" in v[0].message and "0.4 rad in 0.1 s" in v[0].message and "3 rad/s" in v[0].message


def test_uneven_timestamps_are_used_per_pair():
    X = _line(3, step=(0.15, 0.0, 0.0))
    # 0.15 m over 0.2 s (0.75 m/s) is fine, 0.15 m over 0.1 s (1.5 m/s) is not.
    v = _plan(X, timestamps=np.array([0.1, 0.3, 0.4])).check(PlanLimits())
    assert [(x.step, x.kind) for x in v] == [(2, "linear_speed")]


def test_current_pose_uses_first_timestamp_or_step_period():
    X = _line(3, start=(0.3, 0.0, 0.4), step=(0.01, 0, 0))
    current = _pose([0.2, 0.0, 0.4])  # 0.1 m before step 0
    limits = PlanLimits(max_linear_speed=0.6)
    # First step at t = 0.25 s: 0.4 m/s, fine.
    assert _plan(X, timestamps=np.array([0.25, 0.35, 0.45])).check(limits, X_BE_current=current) == []
    # First step at t = 0.1 s: 1 m/s, too fast.
    v = _plan(X, timestamps=np.array([0.1, 0.2, 0.3])).check(limits, X_BE_current=current)
    assert [(x.step, x.kind) for x in v] == [(0, "linear_speed")]
    assert "from the current pose" in v[0].message and "0.1 m in 0.1 s" in v[0].message
    # First step at t = 0: the step period (0.5 s) is the time available: 0.2 m/s, fine.
    assert _plan(X, timestamps=np.array([0.0, 0.5, 1.0])).check(limits, X_BE_current=current) == []
    # ... and with a 0.05 s period, 2 m/s: too fast.
    v = _plan(X, timestamps=np.array([0.0, 0.05, 0.1])).check(limits, X_BE_current=current)
    assert v[0].step == 0 and "0.1 m in 0.05 s" in v[0].message
    # A single step at t = 0 has no time at all: any motion is an (infinite) speed violation.
    v = _plan(X[:1], timestamps=np.array([0.0])).check(limits, X_BE_current=current)
    assert v[0].kind == "linear_speed" and "inf" in v[0].message
    assert _plan(X[:1], timestamps=np.array([0.0])).check(limits, X_BE_current=X[0, 0]) == []
    # Without the current pose, nothing before step 0 is checked.
    assert _plan(X, timestamps=np.array([0.1, 0.2, 0.3])).check(limits) == []


def test_current_pose_is_validated():
    plan = _plan(_line(2), arms=("arm",))
    with pytest.raises(ValueError, match=r"X_BE_current must have shape \(A, 4, 4\) = \(1, 4, 4\)"):
        plan.check(PlanLimits(), X_BE_current=np.eye(3))
    bad = np.eye(4)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X_BE_current of arm 'arm' must be a finite rigid transform"):
        plan.check(PlanLimits(), X_BE_current=bad)


def test_workspace_violation_names_axis_and_box():
    X = _line(3, step=(0.0, 0.0, 0.0))
    X[1, 0, :3, 3] = [0.3, 0.0, -0.1]
    v = _plan(X).check(PlanLimits(max_linear_speed=10.0))
    kinds = [(x.step, x.kind) for x in v]
    assert (1, "workspace") in kinds
    w = next(x for x in v if x.kind == "workspace")
    assert "(0.3, 0, -0.1)" in w.message and "on axis z" in w.message and "(-1, -1, -0.05)" in w.message


def test_non_finite_and_non_rigid_poses_are_reported_and_skip_speed():
    X = _line(4)
    X[1, 0, 0, 3] = np.nan
    X[2, 0, :3, :3] *= 1.1  # scaled rotation
    v = _plan(X).check(PlanLimits())
    assert [(x.step, x.kind) for x in v] == [(1, "non_finite"), (2, "not_rigid")]
    assert "nan" in v[0].message
    assert "det R = 1.331" in v[1].message


def test_two_arms_are_checked_independently_and_validate_lists_everything():
    left, right = _line(3), _line(3, start=(0.3, 0.3, 0.4))
    right[2, 0, :3, 3] = [0.3, 2.0, 0.4]  # outside the box and too fast
    left[1, 0, :3, :3] = left[1, 0, :3, :3] @ Rotation.from_rotvec([0.5, 0, 0]).as_matrix()  # 5 rad/s
    X = np.concatenate([left, right], axis=1)
    plan = _plan(X, arms=("left", "right"))
    v = plan.check(PlanLimits())
    assert [(x.step, x.arm, x.kind) for x in v] == [
        (1, "left", "angular_speed"),
        (2, "left", "angular_speed"),
        (2, "right", "linear_speed"),
        (2, "right", "workspace"),
    ]
    with pytest.raises(PlanRejectedError) as info:
        plan.validate(PlanLimits())
    err = info.value
    assert isinstance(err, ValueError)
    assert err.violations == v
    text = str(err)
    assert "4 violation(s)" in text
    for x in v:
        assert x.message in text
    assert "arm 'right'" in text and "arm 'left'" in text


def test_plan_violation_kind_is_checked():
    with pytest.raises(ValueError, match="kind must be one of"):
        PlanViolation(step=0, arm="arm", kind="too_fast", message="x")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- serialise

def test_to_dict_from_dict_roundtrip_through_json():
    X = np.concatenate([_line(3), _line(3, start=(0.2, -0.3, 0.5))], axis=1)
    plan = _plan(X, arms=("left", "right"), gripper_closed=np.array([[0, 1], [1, 1], [1, 0]], bool),
                 confidence=np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 1.0]]),
                 source_view=np.array([["n", "m"], ["m", "m"], ["n", "n"]]),
                 gripper_width=np.array([[0.08, 0.0], [0.0, 0.0], [0.0, 0.05]]))
    d = json.loads(json.dumps(plan.to_dict()))
    back = Plan.from_dict(d)
    assert back.arms == ("left", "right")
    np.testing.assert_array_equal(back.timestamps, plan.timestamps)
    np.testing.assert_array_equal(back.X_BE, plan.X_BE)
    np.testing.assert_array_equal(back.gripper_closed, plan.gripper_closed)
    np.testing.assert_array_equal(back.confidence, plan.confidence)
    np.testing.assert_array_equal(back.source_view, plan.source_view)
    np.testing.assert_array_equal(back.gripper_width, plan.gripper_width)
    no_width = _plan(_line(2))
    assert Plan.from_dict(no_width.to_dict()).gripper_width is None
    # A rejected plan with NaN poses can still be logged and read back.
    X_nan = _line(2)
    X_nan[0, 0, 0, 0] = np.nan
    again = Plan.from_dict(json.loads(json.dumps(_plan(X_nan).to_dict())))
    assert math.isnan(again.X_BE[0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"missing keys \['confidence'\]"):
        Plan.from_dict({k: v for k, v in d.items() if k != "confidence"})
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        Plan.from_dict({**d, "extra": 1})


def test_prefix_before_the_first_violation_passes_the_checks():
    X = _line(6)
    X[4, 0, :3, 3] += [0.3, 0.0, 0.0]  # a jump into step 4
    plan = _plan(X, gripper_closed=np.array([[False], [False], [True], [True], [True], [True]]),
                 gripper_width=np.full((6, 1), 0.02))
    limits = PlanLimits(max_linear_speed=1.0)
    first_bad = min(v.step for v in plan.check(limits, X_BE_current=X[0]))
    assert first_bad == 4
    head = plan.prefix(first_bad)
    assert head.num_steps == 4 and head.arms == plan.arms
    np.testing.assert_array_equal(head.X_BE, X[:4])
    np.testing.assert_array_equal(head.timestamps, plan.timestamps[:4])
    assert head.gripper_closed[:, 0].tolist() == [False, False, True, True]
    assert head.gripper_width.shape == (4, 1)
    assert head.check(limits, X_BE_current=X[0]) == []
    for bad in (0, 7, 2.5):
        with pytest.raises(ValueError, match="Plan.prefix"):
            plan.prefix(bad)
