"""The planning cycle: hand masks from the robot's pose, plans from true frames, the world-model policy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.action.extraction import ViewSequence
from geo4d_core.action.hand import X_GE
from geo4d_core.action.render import HAND_LABEL, LEFT_LABEL, RIGHT_LABEL, camera_looking_at
from geo4d_core.geometry.poses import invert_pose, make_pose, translation_distance
from geo4d_core.model import Observation, WorldModel, WorldModelConfig
from geo4d_core.policy import PolicyConfig, RobotState, WorldModelPolicy, condition_frame, plan_from_frames
from geo4d_core.action.hand_mask import project_hand_mask

R_DOWN = Rotation.from_euler("x", np.pi).as_matrix()  # hand z (approach) pointing down in the world
X_WC = camera_looking_at(np.array([0.5, 0.0, 0.25]), np.array([1.1, -0.5, 0.75]))  # camera n = base frame B


def _X_WG(k: int) -> np.ndarray:
    """A slow carry: 1.5 cm and 1.5 degrees per 0.1 s step."""
    return make_pose(Rotation.from_euler("z", 0.026 * k).as_matrix() @ R_DOWN,
                     np.array([0.45, -0.1 + 0.015 * k, 0.35]))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _state(X_WG: np.ndarray, closed: bool = False) -> RobotState:
    return RobotState(X_BE=(X_WG @ X_GE)[None], gripper_closed=np.array([closed]))


def test_hand_mask_from_the_robot_pose_matches_the_rendered_hand(hand_scene, hand_model):
    X_CG = invert_pose(X_WC) @ _X_WG(0)
    pts, valid, labels = hand_scene.render(X_CG, 0.08, table_z_G=0.13)
    depth = np.where(valid, pts[..., 2], 0.0)
    truth = np.isin(labels, [HAND_LABEL, LEFT_LABEL, RIGHT_LABEL])
    mask = project_hand_mask(hand_model, X_CG, hand_scene.K, depth, opening=0.08)
    assert _iou(mask, truth) > 0.6
    assert (mask & ~truth).sum() < 0.3 * truth.sum()  # little spill onto the table around the hand
    # a pose 10 cm off does not find the hand
    wrong = project_hand_mask(hand_model, make_pose(np.eye(3), [0.1, 0, 0]) @ X_CG, hand_scene.K, depth)
    assert _iou(wrong, truth) < 0.2


def test_plan_from_true_frames_follows_the_hand(hand_scene, hand_model):
    T = 10
    X_CW = invert_pose(X_WC)
    frames = [hand_scene.render(X_CW @ _X_WG(k), 0.08, table_z_G=0.13) for k in range(T + 1)]
    p0, v0, _ = frames[0]
    obs_n = Observation(np.zeros((*v0.shape, 3), np.uint8), np.where(v0, p0[..., 2], 0).astype(np.float32),
                        hand_scene.K)
    state = RobotState(X_BE=(_X_WG(0) @ X_GE)[None], gripper_closed=np.array([False]),
                       X_BE_prev=(_X_WG(-1) @ X_GE)[None])
    cond = condition_frame(obs_n, state, X_WC, hand_model)
    assert cond.hand_masks["arm"].sum() > 200
    views = {"n": ViewSequence(np.stack([f[0] for f in frames[1:]]), np.stack([f[1] for f in frames[1:]]))}
    plan, violations, result = plan_from_frames(cond, views, X_WC, state, PolicyConfig(), hand_model=hand_model)
    truth = np.stack([_X_WG(k) @ X_GE for k in range(1, T + 1)])
    assert plan.X_BE.shape == (T, 1, 4, 4)
    assert np.median(translation_distance(plan.X_BE[:, 0], truth)) < 0.005
    np.testing.assert_allclose(plan.timestamps, 0.1 * np.arange(1, T + 1))
    assert violations == [] and not plan.gripper_closed.any()
    assert (result.source_view == "n").all()


def test_world_model_policy_cycle(hand_scene, hand_model):
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)  # untrained: noise predictions
    X_CG = invert_pose(X_WC) @ _X_WG(0)
    p, v, _ = hand_scene.render(X_CG, 0.08, table_z_G=0.13)
    rgb = np.full((*v.shape, 3), 90, np.uint8)
    obs = Observation(rgb, np.where(v, p[..., 2], 0).astype(np.float32), hand_scene.K)
    cfg = PolicyConfig(steps=2, seed=5)
    policy = WorldModelPolicy(model, X_WC, cfg, hand_model=hand_model)
    out = policy.predict_action(obs, obs, _state(_X_WG(0)))
    assert out.plan.X_BE.shape == (model.config.horizon, 1, 4, 4)
    assert set(out.timings) == {"predict_s", "extract_s", "total_s"}
    assert out.prediction.seed == 5 and policy.cycle == 1
    assert out.accepted == (out.violations == [])
    second = policy.predict_action(obs, obs, _state(_X_WG(0)))
    assert second.prediction.seed == 6
    policy.reset()
    again = policy.predict_action(obs, obs, _state(_X_WG(0)))
    np.testing.assert_array_equal(again.prediction.latents_n, out.prediction.latents_n)
    with pytest.raises(ValueError, match="X_BC_n"):
        WorldModelPolicy(model, np.full((4, 4), np.nan), hand_model=hand_model)
    with pytest.raises(ValueError, match="one entry per arm"):
        RobotState(X_BE=np.eye(4)[None].repeat(2, 0), gripper_closed=np.array([False]))


def test_approach_memory_keeps_the_last_cycle_starts_while_the_gripper_stays_open(hand_scene, hand_model):
    from geo4d_core.policy import ApproachMemory

    memory = ApproachMemory(cycles=2)
    above, at = _state(_X_WG(0)), _state(make_pose(R_DOWN, [0.45, -0.1, 0.30]))
    assert memory.approach_from(above) is None  # nothing remembered yet
    memory.update(above)
    np.testing.assert_array_equal(memory.approach_from(at), above.X_BE[:, None])
    # a cycle cut short starts again at the same place: the start before it is kept too, up to `cycles`
    memory.update(at)
    np.testing.assert_array_equal(memory.approach_from(at), np.stack([above.X_BE, at.X_BE], axis=1))
    memory.update(at)
    np.testing.assert_array_equal(memory.approach_from(at), np.stack([at.X_BE, at.X_BE], axis=1))
    # not while the gripper is closed now (after a grasp, a carry) ...
    assert np.isnan(memory.approach_from(_state(_X_WG(0), closed=True))).all()
    # ... nor from before it last changed (after a release the hand stands still too and must not close again)
    memory.update(_state(_X_WG(0), closed=True))
    memory.update(above)
    K = memory.approach_from(at)
    assert np.isnan(K[:, 0]).all() and np.array_equal(K[:, 1], above.X_BE)
    memory.reset()
    assert memory.approach_from(at) is None
    with pytest.raises(ValueError, match="cycles"):
        ApproachMemory(cycles=0)
    memory.update(above)
    # the condition frame carries it into camera n's frame as the hand's pose (NaN rows: none)
    X_CW = invert_pose(X_WC)
    pts, valid, _ = hand_scene.render(X_CW @ _X_WG(0), 0.08, table_z_G=0.13)
    obs = Observation(np.zeros(valid.shape + (3,), np.uint8), np.where(valid, pts[..., 2], 0.0).astype(np.float32),
                      hand_scene.K)
    cond = condition_frame(obs, at, X_WC, hand_model, X_BE_approach_from=memory.approach_from(at))
    np.testing.assert_allclose(cond.X_CG_approach_from["arm"], (X_CW @ _X_WG(0))[None], atol=1e-12)
    none = condition_frame(obs, at, X_WC, hand_model, X_BE_approach_from=np.full((1, 4, 4), np.nan))
    assert none.X_CG_approach_from is None


def test_approach_memory_keeps_the_last_cycle_starts_while_the_gripper_stays_closed(hand_scene, hand_model):
    from geo4d_core.policy import ApproachMemory

    memory = ApproachMemory()
    front, home = _state(_X_WG(0), closed=True), _state(make_pose(R_DOWN, [0.45, -0.1, 0.30]), closed=True)
    memory.update(front)
    np.testing.assert_array_equal(memory.carry_from(home), front.X_BE[:, None])
    assert np.isnan(memory.approach_from(home)).all()  # a closed cycle is no approach ...
    assert np.isnan(memory.carry_from(_state(_X_WG(0)))).all()  # ... and no carry once the gripper is open
    # after a grasp (open, then closed) the carry counts from the first closed start only
    memory.reset()
    memory.update(_state(_X_WG(0)))
    memory.update(front)
    K = memory.carry_from(home)
    assert np.isnan(K[:, 0]).all() and np.array_equal(K[:, 1], front.X_BE)
    X_CW = invert_pose(X_WC)
    pts, valid, _ = hand_scene.render(X_CW @ _X_WG(0), 0.0, table_z_G=0.13)
    obs = Observation(np.zeros(valid.shape + (3,), np.uint8), np.where(valid, pts[..., 2], 0.0).astype(np.float32),
                      hand_scene.K)
    cond = condition_frame(obs, home, X_WC, hand_model, X_BE_carry_from=K)  # NaN starts are left out
    np.testing.assert_allclose(cond.X_CG_carry_from["arm"], (X_CW @ _X_WG(0))[None], atol=1e-12)
    assert cond.X_CG_approach_from is None and cond.gripper_opening is None
    # the robot's measured finger opening goes along (a held object's width, for the open / closed test)
    holding = RobotState(X_BE=home.X_BE, gripper_closed=[True], gripper_width=[0.065])
    assert condition_frame(obs, holding, X_WC, hand_model).gripper_opening == {"arm": 0.065}
