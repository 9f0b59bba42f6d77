"""extract_trajectory: two views (view m's points in camera n's frame), fusion, gripper state and the Plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.action.extraction import ConditionFrame, ExtractionConfig, ViewSequence, extract_trajectory
from geo4d_core.action.gripper_state import GripperStateConfig
from geo4d_core.action.hand import X_GE
from geo4d_core.action.icp_tracker import IcpHandTracker
from geo4d_core.action.plan import PlanLimits
from geo4d_core.geometry.pointmap import transform_points
from geo4d_core.geometry.poses import invert_pose, make_pose, rotation_distance, translation_distance

from geo4d_core.action.render import HAND_LABEL
from .test_icp_tracker import cameras, trajectory  # noqa: F401 - fixture reuse

OPENINGS = [0.08] * 8 + [0.01] * 8


@pytest.fixture(scope="module")
def episode(hand_scene, cameras):  # noqa: F811
    X_CnW = invert_pose(cameras["n"])
    X_CnCm = X_CnW @ cameras["m"]
    poses = [X_CnW @ X for X in trajectory(len(OPENINGS) + 1)]
    pts0, valid0, labels0 = hand_scene.render(poses[0], 0.08)
    views = {"n": ([], []), "m": ([], [])}
    for X, w in zip(poses[1:], OPENINGS):
        p, v, _ = hand_scene.render(X, w, table_z_G=0.13)
        views["n"][0].append(p)
        views["n"][1].append(v)
        p, v, _ = hand_scene.render(invert_pose(X_CnCm) @ X, w, table_z_G=0.13)
        views["m"][0].append(transform_points(X_CnCm, p))
        views["m"][1].append(v)
    seqs = {k: ViewSequence(np.stack(p), np.stack(v)) for k, (p, v) in views.items()}
    cond = ConditionFrame(pts0, valid0, {"arm": labels0 == HAND_LABEL}, {"arm": poses[0]})
    return cond, seqs, np.stack(poses[1:])


def test_extraction_fuses_views_and_reads_the_gripper(episode, hand_model, cameras):  # noqa: F811
    cond, seqs, truth = episode
    res = extract_trajectory(cond, seqs, ExtractionConfig(), hand_model=hand_model)
    T = len(OPENINGS)
    assert res.X_CE.shape == (T, 1, 4, 4) and res.arms == ("arm",)
    X_CE_true = truth @ X_GE
    assert np.median(translation_distance(res.X_CE[:, 0], X_CE_true)) < 0.003
    assert np.degrees(rotation_distance(res.X_CE[:, 0], X_CE_true)).max() < 3.0
    # fused confidence is the better of the two views at each step, and the source says which
    best = np.maximum(res.per_view_confidence["n"], res.per_view_confidence["m"])
    assert np.allclose(res.confidence, best)
    picked = np.where(res.source_view == "n", res.per_view_confidence["n"], res.per_view_confidence["m"])
    assert np.allclose(picked, res.confidence)
    assert list(res.gripper_closed[:, 0]) == [w < 0.07 for w in OPENINGS]
    # the plan in the base frame: X_BE = X_BC @ X_CE, accepted by the default limits
    X_BC = cameras["n"]
    plan = res.to_plan(0.1 * np.arange(1, T + 1), X_BC)
    assert np.allclose(plan.X_BE[:, 0], X_BC @ res.X_CE[:, 0])
    assert plan.check(PlanLimits()) == []


def test_each_view_alone_gives_the_same_trajectory(episode, hand_model):
    cond, seqs, truth = episode
    X = {}
    for v in ("n", "m"):
        res = extract_trajectory(cond, seqs, ExtractionConfig(views=(v,)), hand_model=hand_model)
        assert set(res.source_view.ravel()) == {v}
        X[v] = res.X_CG[:, 0]
    assert np.median(translation_distance(X["n"], X["m"])) < 0.004
    assert np.median(np.degrees(rotation_distance(X["n"], X["m"]))) < 2.0


def test_configuration_errors(episode):
    cond, seqs, _ = episode
    with pytest.raises(ValueError, match="views"):
        ExtractionConfig(views=("x",))
    with pytest.raises(ValueError, match="tracker"):
        ExtractionConfig(tracker="magic")
    with pytest.raises(ValueError, match="same number of frames"):
        extract_trajectory(cond, {"n": seqs["n"], "m": ViewSequence(seqs["m"].points_C[:3], seqs["m"].valid[:3])})


class _RecordingTracker(IcpHandTracker):
    """IcpHandTracker that records how extraction seeds it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seeds = []

    def set_pose(self, X_CG, X_CG_prev=None):
        self.seeds.append((np.array(X_CG), None if X_CG_prev is None else np.array(X_CG_prev)))
        super().set_pose(X_CG, X_CG_prev)


def test_previous_pose_seeds_the_first_step_with_the_hands_motion(episode, hand_model):
    cond, seqs, truth = episode
    short = {v: ViewSequence(s.points_C[:2], s.valid[:2]) for v, s in seqs.items()}
    init = cond.X_CG_init["arm"]
    # the guessed motion: 2 cm along the hand's x and 3 degrees about its z, from prev to init
    D = make_pose(Rotation.from_euler("z", 0.05).as_matrix(), [0.02, 0.0, 0.0])
    prev = init @ invert_pose(D)
    with_prev = ConditionFrame(cond.points_C, cond.valid, cond.hand_masks, cond.X_CG_init, {"arm": prev})
    for condition, expect_prev in [(cond, False), (with_prev, True)]:
        trk = {("arm", v): _RecordingTracker(model=hand_model) for v in ("n", "m")}
        res = extract_trajectory(condition, short, ExtractionConfig(), hand_model=hand_model, trackers=trk)
        assert res.X_CE.shape == (2, 1, 4, 4)
        seeds_m = trk[("arm", "m")].seeds
        assert len(seeds_m) == 1  # view m's tracker starts from the registered pose
        X_reg, X_prev = seeds_m[0]
        if not expect_prev:
            assert X_prev is None and trk[("arm", "n")].seeds == []
            continue
        # both trackers get the same seed; the motion prev -> registered pose is the guessed motion D
        (X_reg_n, X_prev_n), = trk[("arm", "n")].seeds
        assert np.allclose(X_reg_n, X_reg) and np.allclose(X_prev_n, X_prev)
        assert np.allclose(invert_pose(X_prev) @ X_reg, D, atol=1e-9)
        assert translation_distance(X_reg, init) < 0.003


def test_current_gripper_state_holds_until_the_fingers_are_measured(episode, hand_model):
    cond, seqs, _ = episode
    H, W = cond.valid.shape
    empty = {"n": ViewSequence(np.zeros((3, H, W, 3), np.float32), np.zeros((3, H, W), bool))}  # nothing seen
    cfg = ExtractionConfig(views=("n",))
    for closed in (None, False, True):
        c = ConditionFrame(cond.points_C, cond.valid, cond.hand_masks, cond.X_CG_init,
                           gripper_closed=None if closed is None else {"arm": closed})
        res = extract_trajectory(c, empty, cfg, hand_model=hand_model)
        assert np.isnan(res.finger_distance).all() and np.all(res.confidence == 0)
        assert list(res.gripper_closed[:, 0]) == [bool(closed)] * 3
    # measured fingers override it: the episode's first 8 steps are open
    c = ConditionFrame(cond.points_C, cond.valid, cond.hand_masks, cond.X_CG_init, gripper_closed={"arm": True})
    short = {"n": ViewSequence(seqs["n"].points_C[:3], seqs["n"].valid[:3])}
    assert not extract_trajectory(c, short, cfg, hand_model=hand_model).gripper_closed.any()


def test_steps_below_min_confidence_hold_the_last_confident_pose_and_gripper_state(episode, hand_model):
    cond, seqs, _ = episode
    base = extract_trajectory(cond, seqs, ExtractionConfig(), hand_model=hand_model)
    threshold = float(np.median(base.confidence[:, 0]))
    res = extract_trajectory(cond, seqs, ExtractionConfig(min_confidence=threshold), hand_model=hand_model)
    low = base.confidence[:, 0] < threshold
    assert low.any() and (~low).any()
    for v in base.per_view_confidence:  # the trackers themselves are unchanged: holding is a fusion rule
        np.testing.assert_allclose(res.per_view_confidence[v], base.per_view_confidence[v], atol=1e-9)
    for k in range(len(low)):
        if low[k]:  # held: the previous step's pose (the registered pose before step 0), gripper unchanged
            before = res.X_CG[k - 1, 0] if k else None
            if before is not None:
                assert np.array_equal(res.X_CG[k, 0], before)
                assert res.gripper_closed[k, 0] == res.gripper_closed[k - 1, 0]
            assert res.confidence[k, 0] == 0 and np.isnan(res.finger_distance[k, 0])
        else:
            # (ICP is repeatable to ~1e-10 m between runs, not bitwise)
            np.testing.assert_allclose(res.X_CG[k, 0], base.X_CG[k, 0], atol=1e-8)
            assert res.confidence[k, 0] == pytest.approx(base.confidence[k, 0], abs=1e-9)
    everything = extract_trajectory(cond, seqs, ExtractionConfig(min_confidence=1.0 + 1e-9), hand_model=hand_model)
    assert np.all(everything.confidence == 0)
    assert all(np.array_equal(everything.X_CG[k, 0], everything.X_CG[0, 0]) for k in range(len(low)))
    with pytest.raises(ValueError, match="min_confidence"):
        ExtractionConfig(min_confidence=-0.1)


def test_a_hand_no_view_sees_holds_its_last_seen_pose(episode, hand_model):
    cond, seqs, truth = episode
    H, W = cond.valid.shape
    # steps 0-1 seen, steps 2-4 empty in both views (occluded / out of view)
    keep = np.array([True, True, False, False, False])
    views = {v: ViewSequence(np.where(keep[:, None, None, None], s.points_C[:5], 0.0).astype(np.float32),
                             s.valid[:5] & keep[:, None, None]) for v, s in seqs.items()}
    res = extract_trajectory(cond, views, ExtractionConfig(), hand_model=hand_model)
    conf = res.confidence[:, 0]
    assert np.all(conf[keep] > 0.3) and np.all(conf[~keep] == 0)
    for k in (2, 3, 4):  # held exactly at the step-1 pose: no constant-velocity drift, no identity pose
        assert np.array_equal(res.X_CG[k, 0], res.X_CG[1, 0])
    assert translation_distance(res.X_CG[1, 0], truth[1]) < 0.005
    # nothing seen from the very first step: the registered pose is held
    empty = {"n": ViewSequence(np.zeros((2, H, W, 3), np.float32), np.zeros((2, H, W), bool))}
    res = extract_trajectory(cond, empty, ExtractionConfig(views=("n",)), hand_model=hand_model)
    assert np.all(res.confidence == 0)
    assert translation_distance(res.X_CG[0, 0], cond.X_CG_init["arm"]) < 0.005
    assert np.array_equal(res.X_CG[0, 0], res.X_CG[1, 0])


def test_fill_gaps_interpolates_unseen_steps_between_seen_ones():
    from geo4d_core.action.extraction import fill_gaps

    start = make_pose(np.eye(3), [0.0, 0.0, 0.0])
    R1 = Rotation.from_rotvec([0.0, 0.0, 0.4]).as_matrix()
    X = np.tile(np.eye(4), (6, 1, 1, 1))  # (T=6, A=1)
    X[2, 0] = make_pose(R1, [0.3, 0.0, 0.0])  # seen at 2, unseen 0-1 (start = registered pose)
    X[5, 0] = make_pose(R1, [0.3, 0.6, 0.0])  # seen at 5, unseen 3-4
    garbage = make_pose(np.eye(3), [9.0, 9.0, 9.0])
    X[[0, 1, 3, 4], 0] = garbage
    seen = np.array([[False, False, True, False, False, True]]).T
    filled = fill_gaps(X, seen, start[None])
    assert list(filled[:, 0]) == [True, True, False, True, True, False]
    np.testing.assert_allclose(X[0, 0, :3, 3], [0.1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(X[1, 0, :3, 3], [0.2, 0, 0], atol=1e-12)
    assert rotation_distance(X[1, 0, :3, :3], np.eye(3)) == pytest.approx(0.4 * 2 / 3)
    np.testing.assert_allclose(X[3, 0, :3, 3], [0.3, 0.2, 0], atol=1e-12)
    np.testing.assert_allclose(X[4, 0, :3, :3], R1, atol=1e-12)
    # a gap at the end (nothing seen after it) is left alone
    X2 = X.copy()
    X2[5, 0] = garbage
    seen[5] = False
    filled = fill_gaps(X2, seen, start[None])
    assert not filled[5, 0] and np.array_equal(X2[5, 0], garbage)


def test_interpolate_gaps_moves_an_unseen_hand_between_its_seen_poses(episode, hand_model):
    cond, seqs, truth = episode
    # steps 2-4 empty in both views (occluded), seen again from step 5
    keep = np.array([True, True, False, False, False, True, True])
    views = {v: ViewSequence(np.where(keep[:, None, None, None], s.points_C[:7], 0.0).astype(np.float32),
                             s.valid[:7] & keep[:, None, None]) for v, s in seqs.items()}
    held = extract_trajectory(cond, views, ExtractionConfig(), hand_model=hand_model)
    assert held.interpolated is not None and not held.interpolated.any()
    res = extract_trajectory(cond, views, ExtractionConfig(interpolate_gaps=True), hand_model=hand_model)
    assert list(res.interpolated[:, 0]) == list(~keep)
    assert np.all(res.confidence[~keep, 0] == 0)  # still reported as unseen
    np.testing.assert_allclose(res.X_CG[keep], held.X_CG[keep], atol=1e-9)  # seen steps untouched (ICP: ~1e-17)
    for k in (2, 3, 4):  # on the line from step 1 to step 5, close to the true (smooth) motion
        expected = res.X_CG[1, 0, :3, 3] + (k - 1) / 4 * (res.X_CG[5, 0, :3, 3] - res.X_CG[1, 0, :3, 3])
        np.testing.assert_allclose(res.X_CG[k, 0, :3, 3], expected, atol=1e-9)
        assert translation_distance(res.X_CG[k, 0], truth[k]) < translation_distance(held.X_CG[k, 0], truth[k])
    np.testing.assert_allclose(res.X_CE, res.X_CG @ X_GE)


def test_backdate_releases_moves_an_opening_back_to_the_last_closed_reading():
    from geo4d_core.action.extraction import backdate_releases

    closed = np.array([[1, 1, 1, 1, 0, 0, 1, 1, 0]], bool).T  # (T, 1): releases at steps 4 and 8
    reading = np.array([[-1, 0, 0, 1, 1, 1, -1, 0, 1]], np.int8).T  # -1 closed, +1 open, 0 not measured
    out = backdate_releases(closed.copy(), reading)
    # the first release goes back over the unmeasured steps 1-2 and the open reading at 3, stopping after the
    # closed reading at step 0; the second stops after step 6's closed reading; closings stay where they are
    assert list(out[:, 0]) == [True, False, False, False, False, False, True, False, False]
    two_arms = np.stack([closed[:, 0], np.zeros(9, bool)], axis=1)
    assert list(backdate_releases(two_arms, np.zeros((9, 2), np.int8))[:, 0]) == [False] * 9  # nothing read closed
    assert not two_arms[:, 1].any()


def _descent(heights, down):
    """(T, 1, 4, 4) hand poses whose +z (fingertips) is `down`, at distances `heights` along it, metres."""
    R = Rotation.align_vectors([down], [[0.0, 0.0, 1.0]])[0].as_matrix()
    return np.stack([make_pose(R, np.asarray(down) * h) for h in heights])[:, None]


def test_a_grasp_with_hidden_fingers_is_closed_after_the_approach_and_dwell():
    from geo4d_core.action.extraction import close_on_unseen_dwell

    down = [0.0, 0.6, 0.8]  # the hand's approach axis in camera n's frame
    # 4 cm approach along the hand's +z, then still (within 4 mm per step) for five steps
    along = np.array([0.01, 0.02, 0.03, 0.04, 0.041, 0.043, 0.040, 0.042, 0.041])
    X = _descent(along, down)
    X_start = _descent([0.0], down)[0]
    T = len(along)
    kw = dict(approach=0.02, still=0.005, dwell_steps=3)
    none = np.zeros((T, 1), np.int8)
    seen = np.ones((T, 1), bool)
    out = close_on_unseen_dwell(X, np.zeros((T, 1), bool), none, seen, X_start, **kw)
    # still at steps 4, 5, 6 (moves of 1-3 mm): closed from the dwell's first step, 4, on
    assert list(out[:, 0]) == [False] * 4 + [True] * 5
    # ... until the fingers read open
    reading = none.copy()
    reading[8] = 1
    assert list(close_on_unseen_dwell(X, np.zeros((T, 1), bool), reading, seen, X_start, **kw)[:, 0]) == \
        [False] * 4 + [True] * 4 + [False]
    # not inferred: fingers measured before the dwell, a retreat (along -z) and dwell, a dwell of held (unseen)
    # poses, or a gripper already closed
    reading = none.copy()
    reading[2] = 1
    assert not close_on_unseen_dwell(X, np.zeros((T, 1), bool), reading, seen, X_start, **kw).any()
    assert not close_on_unseen_dwell(_descent(-along, down), np.zeros((T, 1), bool), none, seen, X_start, **kw).any()
    unseen = seen.copy()
    unseen[4:] = False
    assert not close_on_unseen_dwell(X, np.zeros((T, 1), bool), none, unseen, X_start, **kw).any()
    held = np.ones((T, 1), bool)
    assert close_on_unseen_dwell(X, held.copy(), none, seen, X_start, **kw).all()
    # a hand that arrived before the first step dwells from step 0: no approach within the steps ...
    arrived = _descent(np.full(T, 0.04), down)
    at_object = _descent([0.04], down)[0]
    assert not close_on_unseen_dwell(arrived, np.zeros((T, 1), bool), none, seen, at_object, **kw).any()
    # ... unless the approach is counted from an earlier pose (where the hand was a cycle ago): closed from step 0
    earlier = _descent([0.0], down)[0]
    assert close_on_unseen_dwell(arrived, np.zeros((T, 1), bool), none, seen, at_object, **kw,
                                 X_approach_from=earlier).all()
    with pytest.raises(ValueError, match="grasp_dwell_steps"):
        ExtractionConfig(grasp_dwell_steps=0)


def test_a_release_with_hidden_fingers_is_opened_after_the_advance_and_dwell():
    from geo4d_core.action.extraction import open_on_unseen_dwell

    ahead = [0.8, 0.0, 0.6]  # the hand's +z in camera n's frame (pushing a box under a shelf)
    # 3 cm further along the hand's +z, then still (within 5 mm per step) for the rest of the steps
    along = np.array([0.01, 0.02, 0.03, 0.031, 0.031, 0.031, 0.031, 0.031, 0.031])
    X = _descent(along, ahead)
    X_start = _descent([0.0], ahead)[0]
    T = len(along)
    kw = dict(approach=0.02, still=0.005, dwell_steps=3)
    none = np.zeros((T, 1), np.int8)
    closed = np.ones((T, 1), bool)
    # still from step 3 (steps 3, 4, 5 moved 1, 0, 0 mm): open from step 3 on
    assert list(open_on_unseen_dwell(X, closed.copy(), none, X_start, **kw)[:, 0]) == [True] * 3 + [False] * 6
    # ... until the fingers read closed
    reading = none.copy()
    reading[7] = -1
    assert list(open_on_unseen_dwell(X, closed.copy(), reading, X_start, **kw)[:, 0]) == \
        [True] * 3 + [False] * 4 + [True] * 2
    # not inferred: fingers measured before the dwell's end, a retreat (along -z) and dwell, an advance of less
    # than `approach`, or a gripper already open
    reading = none.copy()
    reading[4] = -1
    assert open_on_unseen_dwell(X, closed.copy(), reading, X_start, **kw).all()
    assert open_on_unseen_dwell(_descent(-along, ahead), closed.copy(), none, X_start, **kw).all()
    assert open_on_unseen_dwell(_descent(along / 2, ahead), closed.copy(), none, X_start, **kw).all()
    assert not open_on_unseen_dwell(X, np.zeros((T, 1), bool), none, X_start, **kw).any()
    # a hand that pushed the object home in the previous cycle and holds still (every step unseen, held at the
    # registered pose) opens from step 0 when the advance is counted from where that cycle started
    home = _descent([0.03], ahead)[0]
    held = np.tile(home, (T, 1, 1, 1))
    assert open_on_unseen_dwell(held, closed.copy(), none, home, **kw).all()
    assert not open_on_unseen_dwell(held, closed.copy(), none, home, **kw, X_carry_from=X_start).any()
    # several earlier poses (the last cycle starts): the farthest back along the hand's +z counts
    starts = np.stack([home[0], X_start[0]])[None]  # (A = 1, K = 2, 4, 4)
    assert not open_on_unseen_dwell(held, closed.copy(), none, home, **kw, X_carry_from=starts).any()
    assert open_on_unseen_dwell(held, closed.copy(), none, home, **kw, X_carry_from=starts[:, :1]).all()


def test_a_release_the_fingers_show_late_is_executed_when_the_hand_was_last_seen_closed(episode, hand_model):
    """The robot reports its gripper closed; the hand is unseen for three steps (under a shelf) and then seen
    open: the opening happened unseen, so the plan opens from the first step, not after the hidden steps."""
    cond, seqs, truth = episode
    T = 8  # the fixture's open steps
    keep = np.arange(T) >= 3
    views = {v: ViewSequence(np.where(keep[:, None, None, None], s.points_C[:T], 0.0).astype(np.float32),
                             s.valid[:T] & keep[:, None, None]) for v, s in seqs.items()}
    init = cond.X_CG_init["arm"]
    prev = init @ invert_pose(invert_pose(init) @ truth[0])  # the robot's pose a step earlier: its motion
    cond = dataclasses.replace(cond, gripper_closed={"arm": True}, X_CG_prev={"arm": prev})
    gripper = GripperStateConfig(confirm=2)
    late = extract_trajectory(cond, views, ExtractionConfig(gripper=gripper), hand_model=hand_model)
    assert list(late.gripper_closed[:, 0]) == [True] * 4 + [False] * 4  # kept while unseen, 2 readings to open
    assert np.all(late.gripper_reading[:3, 0] == 0) and np.all(late.gripper_reading[3:, 0] == 1)
    early = extract_trajectory(cond, views, ExtractionConfig(gripper=gripper, backdate_release=True),
                               hand_model=hand_model)
    assert not early.gripper_closed.any()
    np.testing.assert_allclose(early.X_CG, late.X_CG, atol=1e-8)  # only the gripper commands move
    # a closing is never moved earlier: the fixture's grasp (open at 8 steps, closed after) stays put
    full = extract_trajectory(episode[0], seqs, ExtractionConfig(backdate_release=True), hand_model=hand_model)
    assert list(full.gripper_closed[:, 0]) == [w < 0.07 for w in OPENINGS]


def _hidden_fingers(hand_scene, cameras, opening: float):  # noqa: F811
    """A hand at `opening` that moves 3 cm along its +z in three steps, then stays still for five, rendered in
    view n with its fingers never visible: (condition frame at the start, view n's frames, the true poses,
    the rendered frames)."""
    from geo4d_core.action.render import LEFT_LABEL, RIGHT_LABEL

    X0 = invert_pose(cameras["n"]) @ trajectory()[3]
    poses = [X0 @ make_pose(np.eye(3), [0.0, 0.0, d]) for d in [0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03]]
    frames = [hand_scene.render(X, opening) for X in [X0] + poses]
    hidden = [(p, v & ~np.isin(lab, [LEFT_LABEL, RIGHT_LABEL]), lab) for p, v, lab in frames]
    pts0, valid0, labels0 = hidden[0]
    cond = ConditionFrame(pts0, valid0, {"arm": labels0 == HAND_LABEL}, {"arm": X0},
                          gripper_closed={"arm": opening < 0.07})
    seq = {"n": ViewSequence(np.stack([p for p, _, _ in hidden[1:]]), np.stack([v for _, v, _ in hidden[1:]]))}
    return cond, seq, poses, hidden[1:]


def test_extraction_closes_a_gripper_whose_fingers_it_never_sees_after_an_approach_and_dwell(
        hand_scene, hand_model, cameras):  # noqa: F811
    cond, seq, poses, _ = _hidden_fingers(hand_scene, cameras, 0.08)
    off = extract_trajectory(cond, seq, ExtractionConfig(views=("n",)), hand_model=hand_model)
    assert not off.gripper_closed.any() and not off.gripper_reading.any()  # nothing read, stays open
    assert np.median(translation_distance(off.X_CG[:, 0], np.stack(poses))) < 0.003
    on = extract_trajectory(cond, seq, ExtractionConfig(views=("n",), grasp_on_unseen_dwell=True),
                            hand_model=hand_model)
    assert list(on.gripper_closed[:, 0]) == [False] * 3 + [True] * 5  # from the first still step


def test_extraction_opens_a_closed_gripper_whose_fingers_it_never_sees_after_an_advance_and_dwell(
        hand_scene, hand_model, cameras):  # noqa: F811
    cond, seq, poses, frames = _hidden_fingers(hand_scene, cameras, 0.0)
    off = extract_trajectory(cond, seq, ExtractionConfig(views=("n",), grasp_on_unseen_dwell=True),
                             hand_model=hand_model)
    assert off.gripper_closed.all() and not off.gripper_reading.any()  # nothing read, stays closed
    assert np.median(translation_distance(off.X_CG[:, 0], np.stack(poses))) < 0.003
    on = extract_trajectory(cond, seq, ExtractionConfig(views=("n",), release_on_unseen_dwell=True),
                            hand_model=hand_model)
    assert list(on.gripper_closed[:, 0]) == [True] * 3 + [False] * 5  # from the first still step
    # counted from an earlier pose 3 cm back, a hand that stands still from the start opens at once
    pts3, valid3, labels3 = frames[-1]
    still = {"n": ViewSequence(np.stack([pts3] * 8), np.stack([valid3] * 8))}
    at_home = ConditionFrame(pts3, valid3, {"arm": labels3 == HAND_LABEL}, {"arm": poses[-1]},
                             gripper_closed={"arm": True})
    assert extract_trajectory(at_home, still, ExtractionConfig(views=("n",), release_on_unseen_dwell=True),
                              hand_model=hand_model).gripper_closed.all()
    at_home.X_CG_carry_from = {"arm": cond.X_CG_init["arm"]}
    assert not extract_trajectory(at_home, still, ExtractionConfig(views=("n",), release_on_unseen_dwell=True),
                                  hand_model=hand_model).gripper_closed.any()
