"""SimRobot (one closed-loop trial's simulated world) and plan execution on a station arm."""

import dataclasses

import numpy as np
import pytest

from geo4d_core.action.plan import Plan
from geo4d_core.data.cameras import sample_cameras
from geo4d_core.geometry import depth_to_pointmap, make_pose, transform_points
from sim.control import PlanningError
from sim.execution import plan_to_waypoints, plan_widths
from sim.expert import measured_state
from sim.robot import (GRIPPER_CLOSED_BELOW, SimRobot, SimRobotConfig, camera_pair_candidates, pair_visibility,
                       placement_seeds, sample_camera_pair, trial_seeds)
from sim.scene import MAX_FINGER_WIDTH

TASK = "PutSpatulaOnTable"
H, W = 128, 160


def make_plan(X_BE, closed, *, dt=0.1, arms=("arm",), width=None):
    """A plan of N steps dt apart (t = dt .. N dt) with poses X_BE (N, A, 4, 4) or (N, 4, 4)."""
    X_BE = np.asarray(X_BE, float)
    if X_BE.ndim == 3:
        X_BE = X_BE[:, None]
    n, a = X_BE.shape[:2]
    closed = np.broadcast_to(np.asarray(closed, bool), (n, a)).copy()
    return Plan(timestamps=dt * np.arange(1, n + 1), arms=arms, X_BE=X_BE, gripper_closed=closed,
                confidence=np.ones((n, a)), source_view=np.full((n, a), "n"), gripper_width=width)


def shifted(X, offsets):
    """(N, 4, 4): pose X translated by each row of offsets (N, 3), metres."""
    out = np.repeat(np.asarray(X, float)[None], len(offsets), axis=0)
    out[:, :3, 3] += offsets
    return out


def random_pose(rng):
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return make_pose(R, rng.uniform(-1, 1, 3))


# ----------------------------------------------------------------------------- pure numpy, no Drake


def test_camera_pair_is_two_distinct_test_cameras_reproducible_from_the_seed():
    cfg = SimRobotConfig(TASK, seed=0, height=H, width=W)
    n, m = sample_camera_pair(cfg)
    assert n.split == m.split == "test" and n.name != m.name
    pool = sample_cameras(trial_seeds(0)[1], cfg.camera_pool, height=H, width=W, num_test=cfg.test_cameras)
    test = {c.name: c for c in pool[-cfg.test_cameras:]}
    for cam in (n, m):
        np.testing.assert_array_equal(cam.X_WC, test[cam.name].X_WC)
        assert (cam.height, cam.width) == (H, W)
    n2, m2 = sample_camera_pair(cfg)
    assert (n2.name, m2.name) == (n.name, m.name)
    np.testing.assert_array_equal(n2.X_WC, n.X_WC)
    np.testing.assert_array_equal(m2.X_WC, m.X_WC)
    n3, m3 = sample_camera_pair(dataclasses.replace(cfg, seed=1))
    assert not np.allclose(n3.X_WC, n.X_WC) and not np.allclose(m3.X_WC, m.X_WC)
    for seed in range(2, 12):  # always two distinct test cameras
        a, b = sample_camera_pair(dataclasses.replace(cfg, seed=seed))
        assert a.split == b.split == "test" and a.name != b.name


def test_camera_pair_candidates_are_every_ordered_test_pair_starting_with_the_drawn_one():
    cfg = SimRobotConfig(TASK, seed=3, height=H, width=W)
    pairs = camera_pair_candidates(cfg)
    names = [(n.name, m.name) for n, m in pairs]
    first = sample_camera_pair(cfg)
    assert names[0] == (first[0].name, first[1].name)
    k = cfg.test_cameras
    assert len(names) == len(set(names)) == k * (k - 1)
    assert all(n.split == m.split == "test" and n.name != m.name for n, m in pairs)
    assert [(n.name, m.name) for n, m in camera_pair_candidates(cfg)] == names  # reproducible


def test_pair_visibility_counts_hands_that_either_camera_sees():
    # 3 survey samples, 3 cameras, 2 arms
    pixels = np.array([
        [[50, 0], [0, 90], [0, 0]],  # t = 0: arm 0 only in camera 0, arm 1 only in camera 1
        [[10, 10], [10, 10], [80, 80]],  # both arms only in camera 2
        [[40, 0], [0, 0], [0, 0]],  # arm 0 in camera 0, arm 1 nowhere
    ])
    assert pair_visibility(pixels, (0, 1), 40) == (pytest.approx(3 / 6), True)
    assert pair_visibility(pixels, (1, 0), 40) == (pytest.approx(3 / 6), True)  # the order does not matter
    assert pair_visibility(pixels, (0, 2), 40) == (pytest.approx(4 / 6), False)  # arm 1 unseen at t = 0
    assert pair_visibility(pixels, (1, 2), 40) == (pytest.approx(3 / 6), False)
    assert pair_visibility(pixels, (0, 1), 100) == (0.0, False)
    with pytest.raises(ValueError, match="samples"):
        pair_visibility(np.zeros((0, 3, 2)), (0, 1), 40)


def test_the_camera_pool_is_redrawn_when_no_test_pair_sees_the_hand_at_the_start():
    # StoreCerealBoxUnderShelf trial seed 7: at HOME the arm hides the hand from all four test cameras of
    # the first pool (they see only finger pixels); the second pool has a camera that sees it.
    # (the plain pixel rule: no border rule, no coverage threshold; those are tested below)
    cfg = SimRobotConfig("StoreCerealBoxUnderShelf", seed=7, height=H, width=W, cut_hand_unseen=False,
                         min_camera_coverage=0.0)
    min_pixels = cfg.min_hand_pixels * H * W
    first = SimRobot(dataclasses.replace(cfg, camera_redraws=0))
    assert first.camera_pool_draw == 0
    names = list(first.station.sensors)
    assert sorted(names) == sorted({c.name for pair in camera_pair_candidates(cfg) for c in pair})
    pixels = first.hand_pixels(names)
    assert pixels.shape[1:] == (4, 1) and (pixels[0] < min_pixels).all()
    robot = SimRobot(cfg)
    assert robot.camera_pool_draw == 1
    names = list(robot.station.sensors)
    pixels = robot.hand_pixels(names)
    n, m = (names.index(c) for c in robot.camera_sources)
    coverage, seen_at_start = pair_visibility(pixels, (n, m), min_pixels)
    assert seen_at_start and robot.camera_coverage == coverage
    redrawn = {c.name: c.X_WC for pair in camera_pair_candidates(cfg, 1) for c in pair}
    np.testing.assert_array_equal(robot.cameras[0].X_WC, redrawn[robot.camera_sources[0]])
    # the hand really shows in the observation of the chosen pair
    obs = robot.observe()
    hand = robot.station.label_parts["hand"]
    assert max(np.isin(obs.labels_n, hand).sum(), np.isin(obs.labels_m, hand).sum()) >= min_pixels


def test_trial_seeds_are_reproducible_and_differ_between_trials():
    assert trial_seeds(3)[0] == trial_seeds(3)[0]
    assert trial_seeds(3)[0] != trial_seeds(4)[0]
    assert trial_seeds(3)[1].random() == trial_seeds(3)[1].random()
    seeds = placement_seeds(3, 4)  # the redraws of the placement: the trial's own seed comes first
    assert len(seeds) == len(set(seeds)) == 4 and seeds[0] == trial_seeds(3)[0]


def test_config_rejects_a_pool_without_two_test_cameras():
    with pytest.raises(ValueError, match="test_cameras"):
        SimRobotConfig(TASK, test_cameras=1)
    with pytest.raises(ValueError, match="fps"):
        SimRobotConfig(TASK, fps=0.0)
    with pytest.raises(ValueError, match="unknown keys"):
        SimRobotConfig.from_dict({"task": TASK, "sede": 1})
    with pytest.raises(ValueError, match="camera_redraws"):
        SimRobotConfig(TASK, camera_redraws=-1)
    with pytest.raises(ValueError, match="min_hand_pixels"):
        SimRobotConfig(TASK, min_hand_pixels=2.0)
    with pytest.raises(ValueError, match="survey_period"):
        SimRobotConfig(TASK, survey_period=0.0)


def test_plan_to_waypoints_maps_poses_with_X_WB():
    rng = np.random.default_rng(0)
    X_WB = random_pose(rng)
    X_BE = np.stack([[random_pose(rng), random_pose(rng)] for _ in range(5)])  # (5, 2, 4, 4)
    closed = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [0, 0]], bool)
    plan = make_plan(X_BE, closed, arms=("left", "right"))
    for a, arm in enumerate(plan.arms):
        wps = plan_to_waypoints(plan, arm, X_WB, t_start=2.5)
        assert len(wps) == 5
        for k, wp in enumerate(wps):
            np.testing.assert_allclose(wp.X_WE, X_WB @ X_BE[k, a], rtol=0, atol=1e-14)
            assert wp.t == pytest.approx(2.5 + 0.1 * (k + 1), abs=1e-12)
            assert wp.width == (0.0 if closed[k, a] else MAX_FINGER_WIDTH)
            assert wp.straight
    # An explicit width is the command (clipped to the hand's range).
    width = np.full((5, 2), 0.03)
    width[0, 0] = 0.5
    widths = plan_widths(make_plan(X_BE, closed, arms=("left", "right"), width=width), "left")
    np.testing.assert_allclose(widths, [MAX_FINGER_WIDTH, 0.03, 0.03, 0.03, 0.03])
    with pytest.raises(ValueError, match="'arm' is not in the plan"):
        plan_to_waypoints(plan, "arm", X_WB, 0.0)


# ------------------------------------------------------------------------------- Drake: one trial


@pytest.fixture(scope="module")
def trial():
    """A PutSpatulaOnTable trial (seed 0) and its first observation, taken right after settling."""
    robot = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W))
    return robot, robot.observe()


def test_robot_renders_the_sampled_pair_as_n_and_m(trial):
    robot, _ = trial
    pool = {c.name: c for pair in camera_pair_candidates(robot.config, robot.camera_pool_draw) for c in pair}
    n, m = pool[robot.camera_sources[0]], pool[robot.camera_sources[1]]  # the chosen pair (camera survey)
    assert [c.name for c in robot.cameras] == ["n", "m"]
    assert robot.camera_sources == (n.name, m.name)
    np.testing.assert_array_equal(robot.cameras[0].X_WC, n.X_WC)
    np.testing.assert_array_equal(robot.cameras[1].X_WC, m.X_WC)
    np.testing.assert_array_equal(robot.X_BC_n, n.X_WC)  # B = W in simulation
    assert robot.arms == ("arm",)


def test_first_observation(trial):
    robot, obs = trial
    assert obs.t == 0.0
    for view, labels in ((obs.obs_n, obs.labels_n), (obs.obs_m, obs.labels_m)):
        view.validate("view")
        assert view.rgb.shape == (H, W, 3) and view.rgb.dtype == np.uint8 and view.rgb.std() > 5
        assert view.depth.shape == (H, W) and view.depth.dtype == np.float32
        assert labels.shape == (H, W) and labels.dtype == np.int32
    np.testing.assert_array_equal(obs.obs_n.K, robot.cameras[0].K)
    assert obs.state.arms == ("arm",) and obs.state.X_BE.shape == (1, 4, 4)
    assert np.isfinite(obs.state.X_BE).all()
    # One control period before the end of settling the arm was already at rest at HOME.
    np.testing.assert_allclose(obs.state.X_BE_prev, obs.state.X_BE, atol=1e-4)
    assert not obs.state.gripper_closed[0]
    assert obs.state.gripper_width[0] == pytest.approx(MAX_FINGER_WIDTH, abs=2e-3)


def test_observed_tcp_is_the_forward_kinematics_of_the_measured_joints(trial):
    robot, _ = trial
    obs = robot.observe()
    X_WE, widths = measured_state(robot.station, robot.plant_context)
    np.testing.assert_array_equal(obs.state.X_BE, X_WE)
    np.testing.assert_allclose(obs.state.gripper_width, widths)
    arm = robot.station.arms[0]
    q = robot.station.plant.GetPositions(robot.plant_context, arm.instance)
    np.testing.assert_allclose(obs.state.X_BE[0], robot.executor.kinematics["arm"].fk(q[:7]), atol=1e-9)
    assert obs.state.gripper_width[0] == pytest.approx(q[7] + q[8], abs=1e-6)


def test_table_top_depth_lifts_to_z_zero_in_the_world(trial):
    robot, obs = trial
    points_C, valid = depth_to_pointmap(obs.obs_n.depth, obs.obs_n.K)
    p_W = transform_points(robot.X_BC_n, points_C)  # B = W
    top = (np.isin(obs.labels_n, robot.station.label_parts["table"]) & valid
           & (np.abs(p_W[..., 0]) < 0.55) & (np.abs(p_W[..., 1]) < 0.4) & (p_W[..., 2] > -0.01))
    assert top.sum() > 0.2 * H * W
    np.testing.assert_allclose(p_W[top][:, 2], 0.0, atol=0.002)


def test_executing_a_plan_moves_the_tcp_along_it(trial):
    robot, _ = trial
    before = robot.observe()
    X_target = shifted(before.state.X_BE[0], np.outer(np.arange(1, 11) * 0.005, [1.0, 0.0, 0.0]))  # +5 cm in x
    robot.execute(make_plan(X_target, False))
    after = robot.observe()
    assert after.t == pytest.approx(before.t + 1.0, abs=1e-9)
    assert np.linalg.norm(after.state.X_BE[0, :3, 3] - X_target[-1, :3, 3]) < 0.01
    np.testing.assert_allclose(after.state.X_BE[0, :3, :3], X_target[-1, :3, :3], atol=0.02)
    assert not after.state.gripper_closed[0]
    # X_BE_prev is measured one control period before the observation: near the plan's second-last pose.
    assert np.linalg.norm(after.state.X_BE_prev[0, :3, 3] - X_target[-2, :3, 3]) < 0.01
    assert np.linalg.norm(after.state.X_BE_prev[0, :3, 3] - before.state.X_BE[0, :3, 3]) > 0.035
    # Fewer steps than the plan: time advances by exactly those control periods.
    X_back = shifted(after.state.X_BE[0], np.outer(np.arange(1, 11) * -0.005, [1.0, 0.0, 0.0]))
    robot.execute(make_plan(X_back, False), steps=3)
    assert robot.time == pytest.approx(after.t + 0.3, abs=1e-9)
    robot.hold(0.7)  # the rest of the plan runs on without a new command
    assert np.linalg.norm(robot.observe().state.X_BE[0, :3, 3] - X_back[-1, :3, 3]) < 0.01


def test_a_plan_that_closes_the_gripper_ends_closed(trial):
    robot, _ = trial
    X = robot.observe().state.X_BE[0]
    robot.execute(make_plan(shifted(X, np.zeros((10, 3))), True))
    obs = robot.observe()
    assert obs.state.gripper_closed[0] and obs.state.gripper_width[0] < GRIPPER_CLOSED_BELOW
    robot.execute(make_plan(shifted(X, np.zeros((10, 3))), False))
    obs = robot.observe()
    assert not obs.state.gripper_closed[0] and obs.state.gripper_width[0] > GRIPPER_CLOSED_BELOW


def test_an_unreachable_plan_is_a_planning_error_naming_the_arm(trial):
    robot, _ = trial
    obs = robot.observe()
    far = shifted(obs.state.X_BE[0], np.tile([2.0, 0.0, 0.0], (10, 1)))  # 2 m away
    with pytest.raises(PlanningError, match=r"arm 'arm', plan step 0"):
        robot.execute(make_plan(far, False))
    assert robot.time == obs.t  # a safety stop: no time passed
    # Reachable at first, out of reach later: the message names the first unreachable step.
    X = shifted(obs.state.X_BE[0], np.zeros((10, 3)))
    X[6:, 0, 3] += 2.0
    with pytest.raises(PlanningError, match=r"arm 'arm', plan step 6"):
        robot.execute(make_plan(X, False))
    with pytest.raises(ValueError, match="not arms of the station"):
        robot.execute(make_plan(X, False, arms=("left",)))


# --------------------------------------------------------------------------- Drake: the expert/oracle


def test_a_placement_the_expert_cannot_plan_is_redrawn():
    # Trial seed 9's first spatula placement needs an IK branch flip from the expert (a joint jump at 8.8 s).
    robot = SimRobot(SimRobotConfig(TASK, seed=9, height=H, width=W))
    seeds = placement_seeds(9, 5)
    assert robot.placement_attempt == 1 and robot.placement_seed == seeds[1]
    assert len(robot.placement_failures) == 1 and "cannot plan" in robot.placement_failures[0]
    assert robot.expert_duration > 0 and robot.time == 0.0  # the redrawn scene is settled, the clock at 0
    with pytest.raises(PlanningError, match="cannot plan any of 1 object placements|cannot plan"):
        SimRobot(SimRobotConfig(TASK, seed=9, height=H, width=W, placement_attempts=1)).expert_trajectories
    # a scene the expert can plan keeps its first placement
    assert SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W)).placement_attempt == 0



def test_the_pair_that_sees_the_expert_hand_is_taken_and_the_scene_is_the_same():
    # Trial seed 6: the first drawn pair loses the hand as it lifts the spatula out of the crock at the
    # table's edge; other pairs of the same pool see it throughout.
    cfg = SimRobotConfig(TASK, seed=6, height=H, width=W, cut_hand_unseen=False, min_camera_coverage=0.0)
    robot = SimRobot(cfg)
    q_settled, t_settled = robot.station.plant.GetPositions(robot.plant_context), robot.time
    names = list(robot.station.sensors)
    pixels = robot.hand_pixels(names)
    t_end = robot.expert_trajectories["arm"].times[-1]
    assert pixels.shape == (int(np.floor(t_end / cfg.survey_period + 1e-9)) + 1, 4, 1)
    # the survey leaves the trial as it was
    np.testing.assert_array_equal(robot.station.plant.GetPositions(robot.plant_context), q_settled)
    assert robot.time == t_settled == 0.0
    min_pixels = cfg.min_hand_pixels * H * W
    candidates = camera_pair_candidates(cfg)
    scores = [pair_visibility(pixels, (names.index(n.name), names.index(m.name)), min_pixels)[0]
              for n, m in candidates]
    best = scores.index(max(scores))
    assert robot.camera_sources == (candidates[best][0].name, candidates[best][1].name)
    assert robot.camera_coverage == max(scores) > scores[0] and best != 0
    # The station renders every test camera; the settled scene and the chosen pair's images are those of
    # a trial built with that pair alone (the cameras do not touch physics).
    obs = robot.observe()
    other = SimRobot(dataclasses.replace(cfg, camera_coverage=False, placement_attempts=1), cameras=candidates[best])
    np.testing.assert_array_equal(other.station.plant.GetPositions(other.plant_context), q_settled)
    assert other.camera_coverage is None and list(other.station.sensors) == ["n", "m"]
    assert other.camera_sources == robot.camera_sources
    other_obs = other.observe()
    np.testing.assert_array_equal(obs.obs_n.rgb, other_obs.obs_n.rgb)
    np.testing.assert_array_equal(obs.obs_m.depth, other_obs.obs_m.depth)
    off = SimRobot(dataclasses.replace(cfg, camera_coverage=False))
    assert off.camera_sources == (candidates[0][0].name, candidates[0][1].name) and off.camera_coverage is None
    assert sorted(off.station.sensors) == sorted(off.camera_sources)  # only the drawn pair is built


@pytest.fixture(scope="module")
def expert_trial():
    return SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W))


def test_true_future_shows_the_expert_and_leaves_the_trial_alone(expert_trial):
    robot = expert_trial
    before = robot.observe()
    future = robot.true_future(10)
    after = robot.observe()
    assert len(future) == 10
    np.testing.assert_allclose([f.t for f in future], 0.1 * np.arange(1, 11), atol=1e-9)
    assert after.t == before.t == robot.time
    np.testing.assert_array_equal(after.state.X_BE, before.state.X_BE)
    np.testing.assert_array_equal(after.obs_n.rgb, before.obs_n.rgb)
    # The future's TCP follows the expert's trajectory (PD tracking error only).
    kin, traj = robot.executor.kinematics["arm"], robot.expert_trajectories["arm"]
    p_future = np.array([f.state.X_BE[0, :3, 3] for f in future])
    p_expert = np.array([kin.fk(traj(f.t)[0])[:3, 3] for f in future])
    assert np.linalg.norm(p_future - p_expert, axis=1).max() < 0.01
    assert np.linalg.norm(p_future[-1] - p_future[0]) > 0.02  # the expert is moving
    for f in future:
        assert f.obs_n.rgb.shape == f.obs_m.rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(future[1].state.X_BE_prev, future[0].state.X_BE)
    # The look-ahead is exact: running the expert on the trial reproduces it.
    robot.run_expert_step(10)
    now = robot.observe()
    assert now.t == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_array_equal(now.state.X_BE, future[-1].state.X_BE)
    np.testing.assert_array_equal(now.obs_n.rgb, future[-1].obs_n.rgb)
    assert set(robot.timings) >= {"simulate", "render", "plan"}


@pytest.mark.slow
def test_scripted_expert_through_run_expert_step_succeeds():
    robot = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W, max_seconds=11.0))
    steps = round(robot.expert_duration * robot.config.fps)
    robot.run_expert_step(steps - 1)
    assert not robot.timed_out
    robot.run_expert_step(1)
    assert robot.timed_out
    outcome = robot.outcome()
    assert outcome.success, outcome.reason


def test_the_oracle_expert_clock_follows_the_robot_not_the_trial_clock():
    robot = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W, camera_coverage=False))
    kin, traj = robot.executor.kinematics["arm"], robot.expert_trajectories["arm"]
    assert robot.expert_time() == 0.0
    robot.run_expert_step(5)  # on the expert's own trajectories: the expert clock is the trial clock
    assert robot.expert_time() == pytest.approx(0.5, abs=0.02)
    # The robot holds its pose for a second: the expert clock waits for it.
    _hold(robot, 1.0, False)
    assert robot.time == pytest.approx(1.5, abs=1e-9)
    tau = robot.expert_time()
    assert tau == pytest.approx(0.5, abs=0.05)
    assert robot.expert_time() == tau  # same trial time, same answer
    p_expert = lambda t: kin.fk(traj(t)[0])[:3, 3]  # noqa: E731
    assert np.linalg.norm(p_expert(1.6) - p_expert(tau + 0.1)) > 0.03  # where the trial clock would pull it
    # The expert's future continues from where the robot is, at the expert's own pace.
    future = robot.true_future(3)
    for k, f in enumerate(future):
        assert np.linalg.norm(f.state.X_BE[0, :3, 3] - p_expert(tau + 0.1 * (k + 1))) < 0.01
    assert robot.time == pytest.approx(1.5, abs=1e-9) and robot.expert_time() == tau
    # A robot that follows the expert's poses from there moves the expert clock on, never ahead of its own time.
    follow = np.stack([kin.fk(traj(tau + 0.1 * k)[0]) for k in range(1, 4)])
    robot.execute(make_plan(follow, False))
    assert tau + 0.2 < robot.expert_time() <= tau + 0.3 + 1e-9
    with pytest.raises(ValueError, match="expert_clock"):
        SimRobotConfig(TASK, expert_clock="wall")


def test_a_hand_cut_by_the_image_border_counts_as_unseen_in_the_camera_survey():
    cfg = SimRobotConfig(TASK, seed=2, height=H, width=W)
    robot = SimRobot(dataclasses.replace(cfg, cut_hand_unseen=False))
    names = list(robot.station.sensors)
    counted = robot.hand_pixels(names)
    robot.config = dataclasses.replace(robot.config, cut_hand_unseen=True)
    strict = robot.hand_pixels(names)
    # only whole samples are dropped: a camera either counts all of the hand's pixels or none
    assert ((strict == counted) | (strict == 0)).all()
    dropped = (strict == 0) & (counted > 0)
    assert dropped.any()  # PutSpatulaOnTable lifts the hand out of the top of some test views
    # the dropped ones really touch the border: pose the arm at such a sample and render that camera
    s, c, _ = np.argwhere(dropped)[0]
    traj = robot.expert_trajectories["arm"]
    q, _, width = traj(s * cfg.survey_period)
    arm = robot.station.arms[0]
    robot.station.plant.SetPositions(robot.plant_context, arm.instance, np.concatenate([q, [width / 2] * 2]))
    on = np.isin(robot.station.render_label(robot.context, names[c]), robot.station.label_parts["arm/hand"])
    assert on[[0, -1]].any() or on[:, [0, -1]].any()


def test_the_camera_pool_is_redrawn_while_no_pair_sees_the_whole_expert_path():
    # PutSpatulaOnTable trial seed 2: every pair of the first pool loses the hand (cut by the image border)
    # at some survey samples of the lift; a later pool has a pair that sees more of them.
    cfg = SimRobotConfig(TASK, seed=2, height=H, width=W)
    lax = SimRobot(dataclasses.replace(cfg, min_camera_coverage=0.0))
    assert lax.camera_pool_draw == 0 and lax.camera_coverage < 1.0
    robot = SimRobot(cfg)
    assert robot.camera_pool_draw > 0 and robot.camera_coverage > lax.camera_coverage
    # the chosen pair is that of its pool, and the station renders that pool's cameras
    chosen = {c.name: c.X_WC for pair in camera_pair_candidates(cfg, robot.camera_pool_draw) for c in pair}
    np.testing.assert_array_equal(robot.cameras[0].X_WC, chosen[robot.camera_sources[0]])
    np.testing.assert_array_equal(robot.cameras[1].X_WC, chosen[robot.camera_sources[1]])
    assert sorted(robot.station.sensors) == sorted(chosen)
    names = list(robot.station.sensors)
    n, m = (names.index(c) for c in robot.camera_sources)
    coverage, _ = pair_visibility(robot.hand_pixels(names), (n, m), cfg.min_hand_pixels * H * W)
    assert coverage == robot.camera_coverage
    with pytest.raises(ValueError, match="min_camera_coverage"):
        SimRobotConfig(TASK, min_camera_coverage=1.5)


def _still_phase(traj, k):
    """(start, end) times of the still phase of the expert's trajectory that moves to knot k (its first knot)."""
    p = traj.X_WE[:, :3, 3]
    still = np.linalg.norm(p[k - 1:] - p[k - 1], axis=1) < 1e-3
    return traj.times[k - 1], traj.times[k - 1 + int(np.argmin(still)) - 1]


def _hold(robot, seconds, closed):
    """Keep the robot's measured TCP pose for `seconds` with the gripper `closed`."""
    X_BE = robot.observe().state.X_BE
    robot.execute(make_plan(np.repeat(X_BE[None], round(seconds * robot.config.fps), axis=0), closed))


def test_the_expert_clock_waits_at_the_expert_closing_while_the_robot_gripper_is_open():
    robot = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W, camera_coverage=False))
    traj = robot.expert_trajectories["arm"]
    closed = traj.widths < GRIPPER_CLOSED_BELOW
    k_close = int(np.flatnonzero(~closed[:-1] & closed[1:])[0]) + 1  # the first knot moved to with closed fingers
    t_arrive, t_closed = _still_phase(traj, k_close)  # the expert closes while still at the grasp pose
    assert t_closed - t_arrive >= 0.3
    steps = round(t_arrive * robot.config.fps)
    robot.run_expert_step(steps)  # the expert arrived at the grasp pose, fingers still open
    # The robot keeps the pose with open fingers past the expert's closing phase.
    _hold(robot, t_closed - t_arrive + 0.2, False)
    now = robot.observe().state
    assert not now.gripper_closed[0]
    tau = robot.expert_time()
    assert tau <= t_arrive + 0.05  # matched before the closing, not at the end of the still phase
    # The future closes the fingers at the grasp pose (the still phase is replayed).
    future = robot.true_future(3)
    assert all(f.state.gripper_closed[0] for f in future)
    p_future = np.array([f.state.X_BE[0, :3, 3] for f in future])
    assert np.linalg.norm(p_future - now.X_BE[0, :3, 3], axis=1).max() < 0.005
    # Without the gripper term the whole still phase matches and its end is taken: the closing is skipped.
    plain = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W, camera_coverage=False,
                                    progress_gripper_penalty=0.0))
    plain.run_expert_step(steps)
    _hold(plain, t_closed - t_arrive + 0.2, False)
    assert plain.expert_time() >= t_closed - 0.05
    # A release is not held back: a robot still holding closed at the expert's release pose is matched at
    # the end of the release's still phase, and its future opens the fingers.
    k_open = int(np.flatnonzero(closed[:-1] & ~closed[1:])[0]) + 1
    t_place, t_released = _still_phase(traj, k_open)
    holder = SimRobot(SimRobotConfig(TASK, seed=0, height=H, width=W, camera_coverage=False))
    holder.run_expert_step(round(t_place * holder.config.fps))
    _hold(holder, t_released - t_place + 0.2, True)
    assert holder.observe().state.gripper_closed[0]
    assert holder.expert_time() >= t_released - 0.05
    assert not holder.true_future(3)[-1].state.gripper_closed[0]
    with pytest.raises(ValueError, match="progress_gripper_penalty"):
        SimRobotConfig(TASK, progress_gripper_penalty=-1.0)
