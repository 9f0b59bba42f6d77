"""Closed-loop trials (sim.closed_loop): the loop's rules, the oracle's true future, and one short trial of
the committed tiny world model end to end with its video and point-cloud snapshot."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from geo4d_core.action.plan import Plan, PlanViolation
from geo4d_core.geometry import depth_to_pointmap, transform_points
from geo4d_core.policy import PolicyConfig
from geo4d_core.policy.world_model_policy import PolicyOutput
from sim.closed_loop import TrialConfig, TrialResult, run_trial, true_prediction
from sim.evaluation import run_one_trial
from sim.robot import SimRobot, SimRobotConfig
from sim.video import draw_trajectory, orbit_camera, render_point_cloud

TASK = "PutSpatulaOnTable"
CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "spatula_tiny"


# ----------------------------------------------------------------------------- no Drake

def test_trial_config_validation():
    with pytest.raises(ValueError, match="policy"):
        TrialConfig(task=TASK, policy="magic")
    with pytest.raises(ValueError, match="checkpoint"):
        TrialConfig(task=TASK, policy="world_model")
    with pytest.raises(ValueError, match="chunk"):
        TrialConfig(task=TASK, policy="oracle", chunk=0)
    with pytest.raises(ValueError, match="max_rejections"):
        TrialConfig(task=TASK, policy="oracle", max_rejections=0)
    cfg = TrialConfig(task=TASK, policy="oracle", seed=3)
    assert cfg.robot_config().seed == 3 and cfg.robot_config().fps == pytest.approx(10.0)
    assert "record_video" not in cfg.to_dict() and cfg.to_dict()["policy_config"]["steps"] == 10


def test_draw_trajectory_marks_open_and_closed_positions():
    K = np.array([[100.0, 0, 80], [0, 100.0, 64], [0, 0, 1]])
    image = np.zeros((128, 160, 3), np.uint8)
    p_C = np.array([[0.0, 0.0, 1.0], [0.3, 0.0, 1.0], [np.nan, 0, 1], [0.0, 0.0, -1.0]])  # centre, right, bad, behind
    out = draw_trajectory(image, p_C, K, np.array([False, True, False, False]))
    assert image.sum() == 0  # a copy is drawn on
    assert out[64, 80, 1] > 150 and out[64, 80, 0] < 100  # open: green at the centre
    assert out[64, 110, 0] > 150 and out[64, 110, 1] < 100  # closed: red 30 px to the right
    assert out[64, 95].sum() > 0  # the polyline between them


def test_point_cloud_render_keeps_the_nearest_point():
    K = np.array([[50.0, 0, 20], [0, 50.0, 20], [0, 0, 1]])
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])  # same pixel, the second is nearer
    cols = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    img = render_point_cloud(pts, cols, np.eye(4), K, 40, 40, splat_px=1)
    assert img[20, 20].tolist() == [0, 0, 255] and img[0, 0].tolist() == [255, 255, 255]
    # The orbit camera turns about the vertical axis through the cloud's median, which stays in view.
    X = orbit_camera(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), 0.5)
    np.testing.assert_allclose(X[:3, :3] @ [0, 0, 1.0] + X[:3, 3], [0, 0, 1.0], atol=1e-12)


# ----------------------------------------------------------------------------- Drake


def test_true_prediction_puts_view_m_points_in_camera_n():
    robot = SimRobot(SimRobotConfig(TASK, seed=1))
    frames = robot.true_future(2)
    pred = true_prediction(frames, robot)
    assert pred.horizon == 2 and pred.rgb_n.shape == (2, 128, 160, 3)
    cam_n, cam_m = robot.cameras
    # Independently: lift m's depth in its own frame, go through the world into n.
    pts_m, valid_m = depth_to_pointmap(frames[1].obs_m.depth, cam_m.K)
    expect = transform_points(np.linalg.inv(cam_n.X_WC) @ cam_m.X_WC, pts_m)
    np.testing.assert_allclose(pred.points_m_in_n[1][valid_m], expect[valid_m], atol=1e-5)
    np.testing.assert_array_equal(pred.valid_m[1], valid_m)
    # Table pixels of m land on the table top (z = 0 in the world) through camera n's extrinsic.
    table = np.isin(frames[1].labels_m, robot.station.label_parts["table"]) & valid_m
    p_W = transform_points(cam_n.X_WC, pred.points_m_in_n[1][table])
    assert np.median(np.abs(p_W[:, 2])) < 0.002


class _FixedPolicy:
    """Plans a small +x move from the current pose; `bad_step` (or None) is reported as violating."""

    name = "fixed"

    def __init__(self, bad_step, far_step=None):
        self.bad_step = bad_step
        self.far_step = far_step  # steps from here on are 2 m away: reported as fine, but unreachable
        self.calls = 0

    def reset(self, robot):
        self.calls = 0

    def predict(self, robot, obs):
        self.calls += 1
        X = np.repeat(obs.state.X_BE[None], 10, axis=0)  # (10, 1, 4, 4)
        X[:, 0, 0, 3] += 0.004 * np.arange(1, 11)
        if self.far_step is not None:
            X[self.far_step:, 0, 0, 3] += 2.0
        plan = Plan(timestamps=0.1 * np.arange(1, 11), arms=obs.state.arms, X_BE=X,
                    gripper_closed=np.zeros((10, 1), bool), confidence=np.ones((10, 1)),
                    source_view=np.full((10, 1), "n"))
        violations = [] if self.bad_step is None else [
            PlanViolation(self.bad_step, "arm", "workspace", f"step {self.bad_step}: outside")]
        return PolicyOutput(plan, violations, None, None, {"predict_s": 0.0, "extract_s": 0.0, "total_s": 0.0})


def test_valid_prefix_runs_and_rejections_end_in_a_safety_stop():
    cfg = TrialConfig(task=TASK, policy="oracle", seed=0, max_seconds=0.75, chunk=10)
    result = run_trial(cfg, policy=_FixedPolicy(bad_step=3))
    # Each cycle runs the 3 steps before the violating one, then plans again: 0.0, 0.3, 0.6 -> 0.9 s.
    assert [c.t for c in result.cycles] == pytest.approx([0.0, 0.3, 0.6])
    assert all(c.executed and c.steps == 3 and c.violations == ["step 3: outside"] for c in result.cycles)
    assert result.stop == "timeout" and not result.success and result.sim_seconds == pytest.approx(0.9)
    assert result.cycles[1].p_B_start[0] - result.cycles[0].p_B_start[0] == pytest.approx(0.012, abs=0.003)
    # Violations at the first step: nothing runs, the robot holds one period per cycle, then stops.
    cfg = TrialConfig(task=TASK, policy="oracle", seed=0, max_seconds=5.0, max_rejections=2)
    result = run_trial(cfg, policy=_FixedPolicy(bad_step=0))
    assert [(c.executed, c.steps) for c in result.cycles] == [(False, 1), (False, 1)]
    assert result.stop == "safety_stop" and "2 plans in a row" in result.reason and "step 0: outside" in result.reason
    assert result.sim_seconds == pytest.approx(0.2)
    back = TrialResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.stop == "safety_stop" and back.cycles[0].violations == ["step 0: outside"]


def test_a_plan_the_arm_can_follow_only_partly_runs_up_to_the_unreachable_step():
    cfg = TrialConfig(task=TASK, policy="oracle", seed=0, max_seconds=0.55, chunk=10)
    result = run_trial(cfg, policy=_FixedPolicy(bad_step=None, far_step=4))
    assert [c.t for c in result.cycles] == pytest.approx([0.0, 0.4])  # 4 steps per cycle, then plan again
    for c in result.cycles:
        assert c.executed and c.steps == 4
        assert len(c.violations) == 1 and c.violations[0].startswith("planning: arm 'arm', plan step 4")
    assert result.sim_seconds == pytest.approx(0.8) and result.placement_attempt == 0
    # without execute_valid_prefix the same plan is not executed at all
    cfg = TrialConfig(task=TASK, policy="oracle", seed=0, max_seconds=5.0, max_rejections=2,
                      execute_valid_prefix=False)
    result = run_trial(cfg, policy=_FixedPolicy(bad_step=None, far_step=4))
    assert [(c.executed, c.steps) for c in result.cycles] == [(False, 1), (False, 1)]
    assert result.stop == "safety_stop" and "plan step 4" in result.reason


def test_oracle_cycles_follow_the_expert():
    cfg = TrialConfig(task=TASK, policy="oracle", seed=0, max_seconds=2.0, chunk=10)
    result = run_trial(cfg)
    assert result.stop == "timeout" and len(result.cycles) >= 2 and result.poses_finite
    executed = [c for c in result.cycles if c.executed]
    assert executed, [c.violations for c in result.cycles]
    c = executed[-1]
    assert len(c.p_B_plan) == 10 and c.confidence > 0.5 and c.timings["extract"] > 0
    # The plan's first targets are close to where the arm is (the oracle tracks the true hand).
    assert np.linalg.norm(np.subtract(c.p_B_plan[0], c.p_B_start)) < 0.05
    # The per-arm record holds every arm; its first arm repeats the first-arm fields.
    (name, arm), = c.arms.items()
    assert name == "arm"  # the spatula task's one arm
    assert arm["p_B_start"] == c.p_B_start and arm["p_B_plan"] == c.p_B_plan and arm["closed_plan"] == c.closed_plan
    assert len(arm["confidence"]) == 10 and np.mean(arm["confidence"]) == pytest.approx(c.confidence, abs=1e-3)
    assert set(arm["source_view"]) <= {"n", "m"}
    assert sum(v == "m" for v in arm["source_view"]) == c.view_m_steps


@pytest.mark.slow
def test_tiny_world_model_trial_end_to_end(tmp_path):
    policy_config = PolicyConfig(steps=2)
    trial = TrialConfig(task=TASK, policy="world_model", seed=0, checkpoint=str(CHECKPOINT), chunk=3,
                        max_seconds=0.9, policy_config=policy_config, record_video=True)
    path = tmp_path / "trial_0000.json"
    d = run_one_trial(trial, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(d))
    result = TrialResult.from_dict(d)
    assert result.cycles and result.poses_finite
    for c in result.cycles:
        assert len(c.p_B_plan) == 10 and np.isfinite(np.asarray(c.p_B_plan, float)).all()
        assert c.timings["predict"] > 0 and c.timings["extract"] > 0
        assert c.steps == (min(3, c.steps) if c.executed else 1)
    # The success flag agrees with the task predicate at the end, and the stop reason with the record.
    assert result.success == (result.stop == "success")
    assert result.stop in ("timeout", "safety_stop", "success")
    if result.stop == "timeout":
        assert result.sim_seconds >= 0.9 - 1e-9
    # Video: one frame per simulated control period, 2x2 panels of 128x160.
    cap = cv2.VideoCapture(d["files"]["video"])
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == sum(c.steps for c in result.cycles)
    assert (cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == (256, 320)
    assert Path(d["files"]["ply"]).stat().st_size > 1000
    png = cv2.imread(d["files"]["png"])
    assert png.shape == (256, 320, 3) and (png < 250).any()
