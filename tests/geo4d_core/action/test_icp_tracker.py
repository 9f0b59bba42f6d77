"""Built-in ICP hand tracker and the finger-centroid gripper state, on ray-cast renderings of the hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.action.gripper_state import GripperStateConfig, GripperStateEstimator, measure_fingers
from geo4d_core.action.icp_tracker import IcpHandTracker, IcpTrackerConfig, pointmap_noise
from geo4d_core.action.tracking import PoseTracker, TrackingLostError
from geo4d_core.geometry.pointmap import transform_points
from geo4d_core.geometry.poses import invert_pose, make_pose, rotation_distance, translation_distance

from geo4d_core.action.render import HAND_LABEL, camera_looking_at

R_DOWN = Rotation.from_euler("xyz", [np.pi, 0, 0]).as_matrix()  # hand z pointing down


def trajectory(n=24):
    """Hand poses in the world: a pick-like path with up to 3 cm and 4 degrees per 10 Hz step."""
    out = []
    for k in range(n):
        s = k / (n - 1)
        p = np.array([0.45 + 0.15 * np.sin(np.pi * s), -0.1 + 0.25 * s, 0.35 - 0.15 * np.sin(np.pi * s)])
        R = Rotation.from_euler("z", 0.6 * s).as_matrix() @ Rotation.from_euler("x", 0.25 * np.sin(2 * np.pi * s)).as_matrix() @ R_DOWN
        out.append(make_pose(R, p))
    return out


@pytest.fixture(scope="module")
def cameras():
    target = np.array([0.5, 0.0, 0.25])
    return {"n": camera_looking_at(target, np.array([1.1, -0.5, 0.75])),
            "m": camera_looking_at(target, np.array([0.9, 0.6, 0.8]))}


def test_tracker_satisfies_the_protocol(hand_model):
    assert isinstance(IcpHandTracker(model=hand_model), PoseTracker)


def test_tracking_follows_a_moving_hand_in_one_view(hand_scene, hand_model, cameras):
    X_WC = cameras["n"]
    X_CW = invert_pose(X_WC)
    poses = [X_CW @ X for X in trajectory()]
    tracker = IcpHandTracker(model=hand_model)
    with pytest.raises(TrackingLostError):
        tracker.track_points(np.zeros((4, 4, 3)), np.zeros((4, 4), bool))
    pts, valid, labels = hand_scene.render(poses[0], 0.08)
    guess = poses[0] @ make_pose(Rotation.from_euler("z", 0.1).as_matrix(), [0.02, -0.015, 0.01])
    reg = tracker.register_points(pts, valid, labels == HAND_LABEL, guess)
    assert translation_distance(reg.X_CG, poses[0]) < 0.002 and reg.score > 0.6
    errors, scores = [], []
    for X in poses[1:]:
        pts, valid, _ = hand_scene.render(X, 0.08)
        res = tracker.track_points(pts, valid)
        errors.append((translation_distance(res.X_CG, X), np.degrees(rotation_distance(res.X_CG, X))))
        scores.append(res.score)
    t_err, r_err = np.array(errors).T
    assert np.median(t_err) < 0.002 and t_err.max() < 0.005, t_err
    assert np.median(r_err) < 1.0 and r_err.max() < 3.0, r_err
    assert min(scores) > 0.5


def test_a_hand_back_from_a_gap_of_several_frames_is_reacquired(hand_scene, hand_model, cameras):
    """Three frames without the hand (behind an occluder): the prediction continues the motion over the gap
    and the step limits grow with it, so the hand, 8-9 cm from its last fit, is found again."""
    X_CW = invert_pose(cameras["n"])
    poses = [X_CW @ X for X in trajectory()]
    empty = (np.zeros((8, 8, 3)), np.zeros((8, 8), bool))
    results = {}
    for gap_frames in (1, IcpTrackerConfig().max_gap_frames):
        tracker = IcpHandTracker(IcpTrackerConfig(max_gap_frames=gap_frames), hand_model)
        pts, valid, labels = hand_scene.render(poses[0], 0.08)
        tracker.register_points(pts, valid, labels == HAND_LABEL, poses[0])
        for X in poses[1:3]:
            assert tracker.track_points(*hand_scene.render(X, 0.08)[:2]).score > 0.5
        for _ in range(3):
            assert tracker.track_points(*empty).score == 0
        results[gap_frames] = [tracker.track_points(*hand_scene.render(X, 0.08)[:2]) for X in poses[6:9]]
    assert translation_distance(poses[6], poses[2]) > 0.07
    back = results[IcpTrackerConfig().max_gap_frames]
    assert all(r.score > 0.5 for r in back)
    assert max(translation_distance(r.X_CG, X) for r, X in zip(back, poses[6:9])) < 0.005
    assert results[1][0].score == 0  # one frame's step limits: the hand is too far from the last fit
    with pytest.raises(ValueError, match="max_gap_frames"):
        IcpTrackerConfig(max_gap_frames=0)


def test_a_model_to_scene_pass_that_lowers_the_confidence_is_not_kept(hand_scene, hand_model, cameras,
                                                                      monkeypatch):
    """The model-to-scene pass made to go wrong (1 cm, 5 degrees off): while tracking, its result is dropped
    when it lowers the confidence by more than model_to_scene_max_score_drop, kept when the check is off."""
    X_CW = invert_pose(cameras["n"])
    poses = [X_CW @ X for X in trajectory()]
    offset = make_pose(Rotation.from_euler("x", np.radians(5)).as_matrix(), [0.01, 0.0, 0.0])
    errors = {}
    for drop in (0.03, None):
        tracker = IcpHandTracker(IcpTrackerConfig(model_to_scene_max_score_drop=drop), hand_model)
        pts, valid, labels = hand_scene.render(poses[0], 0.08)
        tracker.register_points(pts, valid, labels == HAND_LABEL, poses[0])
        good = tracker._icp_model_to_scene
        monkeypatch.setattr(tracker, "_icp_model_to_scene", lambda scene, X_CG, model=None: good(scene, X_CG, model) @ offset)
        res = [tracker.track_points(*hand_scene.render(X, 0.08)[:2]) for X in poses[1:4]]
        errors[drop] = ([translation_distance(r.X_CG, X) for r, X in zip(res, poses[1:4])], [r.score for r in res])
    assert max(errors[0.03][0]) < 0.002 and min(errors[0.03][1]) > 0.8
    assert errors[None][0][0] > 0.005 and errors[None][1][0] < errors[0.03][1][0] - 0.03  # the wrong pass was kept
    with pytest.raises(ValueError, match="model_to_scene_max_score_drop"):
        IcpTrackerConfig(model_to_scene_max_score_drop=-0.1)


def test_view_m_points_in_camera_n_frame_give_the_same_poses(hand_scene, hand_model, cameras):
    X_CnW = invert_pose(cameras["n"])
    X_CnCm = X_CnW @ cameras["m"]
    poses_n = [X_CnW @ X for X in trajectory()]
    pts, valid, labels = hand_scene.render(poses_n[0], 0.08)
    tracker = IcpHandTracker(model=hand_model)
    tracker.register_points(pts, valid, labels == HAND_LABEL, poses_n[0])
    for X in poses_n[1:]:
        # render in camera m, then express the points in camera n's frame (what the world model predicts)
        pts_m, valid_m, _ = hand_scene.render(invert_pose(X_CnCm) @ X, 0.08)
        res = tracker.track_points(transform_points(X_CnCm, pts_m), valid_m)
        assert translation_distance(res.X_CG, X) < 0.004
        assert np.degrees(rotation_distance(res.X_CG, X)) < 2.0


def test_registration_without_a_pose_guess(hand_scene, hand_model, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[5]
    pts, valid, labels = hand_scene.render(X, 0.08)
    res = IcpHandTracker(model=hand_model).register_points(pts, valid, labels == HAND_LABEL)
    assert translation_distance(res.X_CG, X) < 0.005 and np.degrees(rotation_distance(res.X_CG, X)) < 3.0


def test_confidence_separates_right_and_wrong_poses(hand_scene, hand_model, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[3]
    pts, valid, labels = hand_scene.render(X, 0.08)
    tracker = IcpHandTracker(model=hand_model)
    good = tracker._score(pts[labels > 0], invert_pose(X))
    wrong = X @ make_pose(Rotation.from_euler("y", 0.5).as_matrix(), [0.0, 0.03, 0.0])
    bad = tracker._score(pts[labels > 0], invert_pose(wrong))
    assert good > 0.8 and bad < 0.5 and good - bad > 0.4
    # no points near the hand -> zero confidence, and the pose is kept
    tracker.register_points(pts, valid, labels == HAND_LABEL, X)
    res = tracker.track_points(np.zeros_like(pts), np.zeros_like(valid))
    assert res.score == 0.0 and translation_distance(res.X_CG, X) < 0.003


def with_depth_noise(pts, std, seed=0):
    """The points moved along their rays by Gaussian depth noise of `std` metres (camera frame)."""
    z = pts[..., 2]
    noisy_z = z + np.random.default_rng(seed).normal(0.0, std, z.shape)
    return pts * (noisy_z / np.where(z > 0, z, 1.0))[..., None]


def test_pointmap_noise_measures_the_depth_noise_without_the_pose(hand_scene, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[3]
    pts, valid, _ = hand_scene.render(X, 0.08)
    assert pointmap_noise(pts, valid) < 0.0005  # a smooth rendered surface
    for std in (0.002, 0.005, 0.01):
        assert pointmap_noise(with_depth_noise(pts, std), valid) == pytest.approx(std, rel=0.2)
    # in another frame (view m's points in camera n's frame) it reads the same
    X_NC = make_pose(Rotation.from_euler("xyz", [0.3, -0.5, 1.0]).as_matrix(), [0.2, -0.1, 0.4])
    noisy = with_depth_noise(pts, 0.005)
    assert pointmap_noise(transform_points(X_NC, noisy), valid) == pytest.approx(pointmap_noise(noisy, valid))
    assert pointmap_noise(pts.reshape(-1, 3), valid.reshape(-1)) == 0.0  # a point list has no grid


def test_confidence_on_noisy_depth_scales_the_inlier_distance_with_the_noise(hand_scene, hand_model, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[3]
    pts, valid, labels = hand_scene.render(X, 0.08)
    noisy = with_depth_noise(pts, 0.005)
    wrong = X @ make_pose(Rotation.from_euler("y", 0.5).as_matrix(), [0.0, 0.03, 0.0])
    scores = {}
    for factor in (1.0, 0.0):
        tracker = IcpHandTracker(IcpTrackerConfig(inlier_noise_factor=factor), model=hand_model)
        tracker.register_points(noisy, valid, labels == HAND_LABEL, X)  # measures the frame's noise
        scores[factor] = [tracker._score(noisy[labels > 0], invert_pose(P)) for P in (X, wrong)]
    good, bad = scores[1.0]
    assert good > 0.8 and good - bad > 0.2  # the right pose is trusted, a wrong one still scores lower
    assert scores[0.0][0] < 0.75 < good  # with the fixed 4 mm distance the noise alone costs a third


def test_register_with_an_empty_mask_fails_clearly(hand_model):
    with pytest.raises(TrackingLostError, match="inside the hand mask"):
        IcpHandTracker(model=hand_model).register_points(np.zeros((8, 8, 3)), np.ones((8, 8), bool), np.zeros((8, 8), bool))


def test_finger_centroid_distance_tracks_the_opening(hand_scene, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[4]
    cfg = GripperStateConfig()
    distances = []
    for opening in (0.08, 0.06, 0.03, 0.01):
        pts, valid, _ = hand_scene.render(X, opening, table_z_G=0.125)
        meas = measure_fingers(pts, valid, X)
        assert meas.num_left >= 4 and meas.num_right >= 4
        # centroid distance ~ opening + 2 * (outward offset of the visible finger points)
        assert abs(meas.distance - (opening + 2 * cfg.finger_centroid_offset)) < 0.008, (opening, meas.distance)
        assert (meas.distance < cfg.delta) == (opening < cfg.closed_below_opening)
        distances.append(meas.distance)
    assert all(a > b for a, b in zip(distances, distances[1:]))


def test_gripper_state_hysteresis():
    cfg = GripperStateConfig(hysteresis=0.005)
    est = GripperStateEstimator(cfg)
    d = cfg.delta
    assert est.update(d - 0.002) is False  # inside the band: stays open
    assert est.update(d - 0.006) is True
    assert est.update(d + 0.004) is True  # inside the band: stays closed
    assert est.update(None) is True  # unmeasured step keeps the state
    assert est.update(d + 0.006) is False
    plain = GripperStateEstimator(GripperStateConfig())
    assert plain.update(d - 1e-4) is True and plain.update(d + 1e-4) is False
    with pytest.raises(ValueError, match="closed_below_opening"):
        GripperStateConfig(closed_below_opening=0.2)


def test_gripper_state_changes_only_on_confirmed_readings():
    cfg = GripperStateConfig(confirm=2)
    est = GripperStateEstimator(cfg)
    d = cfg.delta
    assert est.update(d - 0.01) is False and est.last_reading is True  # one closed reading: not yet
    assert est.update(None) is False and est.last_reading is None  # unmeasured: neither confirms nor breaks
    assert est.update(d - 0.01) is True  # the second closed reading in a row
    assert est.update(d + 0.01) is True and est.last_reading is False
    assert est.update(d - 0.01) is True  # the row of open readings is broken
    assert est.update(d + 0.01) is True
    assert est.update(d + 0.01) is False
    est.reset(closed=True)
    assert est.closed and est.last_reading is None and est.update(d + 0.01) is True  # reset forgets the row
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="confirm"):
            GripperStateConfig(confirm=bad)


def test_a_gripper_holding_a_wide_object_reads_open_only_past_the_middle_to_fully_open():
    from geo4d_core.action.hand import MAX_OPENING

    cfg = GripperStateConfig(hysteresis=0.003)
    d = cfg.delta  # centroid distance at the 70 mm opening threshold
    held = 0.066  # a box held at 66 mm: threshold (66 + 80) / 2 = 73 mm, open past 76 mm
    est = GripperStateEstimator(cfg, closed=True, held_opening=held)
    assert est.update(d + 0.0025) is True and est.last_reading is True  # 72.5 mm reads closed: the box
    assert est.update(d + 0.005) is True  # 75 mm: inside the hysteresis band around 73 mm, still held
    assert est.update(d + 0.0065) is False and est.last_reading is False  # 76.5 mm: released
    # opened: the held width no longer applies, a later grasp and release use the 70 mm threshold again
    assert est.update(d - 0.004) is True and est.update(d + 0.004) is False
    # without the held width (or holding a thin object, or open) the threshold stays at 70 mm
    for closed, w in ((True, None), (True, 0.02), (False, held)):
        plain = GripperStateEstimator(cfg, closed=closed, held_opening=w)
        assert plain.update(d + 0.004) is False and plain.last_reading is False
    assert GripperStateEstimator(cfg, closed=True, held_opening=MAX_OPENING).update(d + 0.009) is True



def test_finger_points_from_the_model_ignore_a_grasped_rod(hand_scene, hand_model, cameras):
    """A rod held across the closed fingers reaches far out along y: the outermost-points rule reads the
    gripper as open, the finger-surface support of the hand model still reads it closed."""
    X = invert_pose(cameras["n"]) @ trajectory()[4]
    rod = [(np.array([-0.004, -0.09, 0.095]), np.array([0.004, 0.09, 0.103]))]
    cfg = GripperStateConfig()
    pts, valid, _ = hand_scene.render(X, 0.008, boxes_G=rod)
    with_model = measure_fingers(pts, valid, X, cfg, hand_model)
    assert with_model.distance < cfg.delta
    assert measure_fingers(pts, valid, X, cfg).distance > cfg.delta  # the naive rule is fooled
    pts, valid, _ = hand_scene.render(X, 0.08)
    assert measure_fingers(pts, valid, X, cfg, hand_model).distance > cfg.delta


def test_opening_rule_decides_from_the_best_supported_opening():
    from geo4d_core.action.gripper_state import FingerMeasurement

    wide_grasp = FingerMeasurement(np.zeros(3), np.array([0.0, 0.1, 0.0]), 20, 20, opening=0.064)
    assert wide_grasp.distance > GripperStateConfig().delta  # the centroid test reads it open
    assert GripperStateEstimator(GripperStateConfig(rule="centroid")).update_measurement(wide_grasp) is False
    assert GripperStateConfig().rule == "opening"  # the default
    est = GripperStateEstimator(GripperStateConfig())
    assert est.update_measurement(wide_grasp) is True
    # one finger unseen: no measurement, the state is kept (even though an opening was estimated)
    assert est.update_measurement(FingerMeasurement(None, np.zeros(3), 0, 20, opening=0.08)) is True
    # no opening (measured without a hand model): the centroid test decides
    assert est.update_measurement(FingerMeasurement(np.zeros(3), np.array([0.0, 0.1, 0.0]), 20, 20)) is False
    hyst = GripperStateEstimator(GripperStateConfig(rule="opening", hysteresis=0.004), closed=True)
    meas = lambda w: FingerMeasurement(np.zeros(3), np.array([0.0, 0.1, 0.0]), 20, 20, opening=w)  # noqa: E731
    assert hyst.update_measurement(meas(0.072)) is True  # inside the band around 0.07: stays closed
    assert hyst.update_measurement(meas(0.076)) is False
    with pytest.raises(ValueError, match="rule"):
        GripperStateConfig(rule="magic")


def test_measured_opening_follows_the_finger_surfaces(hand_model):
    cfg = GripperStateConfig(rule="opening")
    for opening in (0.01, 0.064, 0.08):
        left, right = hand_model.finger_points(opening)
        pts = np.concatenate([left, right])  # observed points in G (X_CG = identity)
        meas = measure_fingers(pts, np.ones(len(pts), bool), np.eye(4), cfg, hand_model)
        assert meas.opening == pytest.approx(opening, abs=0.0021)
        est = GripperStateEstimator(cfg, closed=opening >= 0.07)  # start from the wrong state
        assert est.update_measurement(meas) is (opening < cfg.closed_below_opening)


def test_a_trusted_guess_of_an_unseen_hand_starts_tracking_from_the_guess(hand_model):
    X = make_pose(Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix(), np.array([0.05, -0.02, 0.6]))
    points, valid = np.zeros((12, 16, 3)), np.zeros((12, 16), bool)  # the hand is not visible at all
    mask = np.ones((12, 16), bool)
    trusted = IcpHandTracker(IcpTrackerConfig(register_guess_search=False), hand_model)
    res = trusted.register_points(points, valid, mask, X)
    assert res.score == 0.0
    np.testing.assert_array_equal(res.X_CG, X)
    # Tracking goes on from there (nothing seen: the pose is kept, confidence 0).
    again = trusted.track_points(points, valid)
    assert again.score == 0.0 and translation_distance(again.X_CG, X) < 1e-9
    # Without trust (or without a guess) an unseen hand is an error.
    with pytest.raises(TrackingLostError, match="valid depth points"):
        IcpHandTracker(IcpTrackerConfig(), hand_model).register_points(points, valid, mask, X)
    with pytest.raises(TrackingLostError):
        trusted.register_points(points, valid, mask, None)
    with pytest.raises(ValueError, match="register_refine_distances"):
        IcpTrackerConfig(register_refine_distances=())


def test_refining_a_trusted_guess_stays_near_the_guess(hand_scene, hand_model, cameras):
    X = invert_pose(cameras["n"]) @ trajectory()[5]
    pts, valid, labels = hand_scene.render(X, 0.08)
    mask = labels == HAND_LABEL
    cfg = IcpTrackerConfig(register_guess_search=False)
    # a guess a few millimetres and a degree off is refined onto the hand
    near = X @ make_pose(Rotation.from_euler("z", 0.02).as_matrix(), [0.004, -0.003, 0.002])
    res = IcpHandTracker(cfg, hand_model).register_points(pts, valid, mask, near)
    assert translation_distance(res.X_CG, X) < 0.002 and res.score > 0.6
    # a refinement that would move the guess beyond register_refine_max_* is discarded: the guess is kept
    tight = IcpTrackerConfig(register_guess_search=False, register_refine_max_translation=0.001,
                             register_refine_max_rotation=0.001)
    res = IcpHandTracker(tight, hand_model).register_points(pts, valid, mask, near)
    np.testing.assert_allclose(res.X_CG, near, atol=1e-12)
    assert res.score < IcpHandTracker(cfg, hand_model).register_points(pts, valid, mask, near).score


def view_from_above(f):
    """A 128x160 camera of focal length f pixels 1.15 m above a hand pointing down, and the hand's pose in it."""
    from geo4d_core.action.render import HandScene

    scene = HandScene(height=128, width=160, f=f)
    X_WG = make_pose(Rotation.from_euler("z", 0.3).as_matrix() @ R_DOWN, [0.5, 0.0, 0.25])
    X_WC = camera_looking_at(np.array([0.5, 0.0, 0.25]), np.array([0.5, 0.05, 1.4]))
    return scene, invert_pose(X_WC) @ X_WG


@pytest.fixture(scope="module")
def small_view():
    return view_from_above(100.0)  # the hand covers only 60-80 pixels


def _frame_score(tracker, pts, valid, X_CG):
    tracker._measure_noise(pts, valid)  # what track_points does with every frame
    return tracker._score(pts[valid], invert_pose(X_CG))


def test_a_small_but_fully_visible_hand_reaches_full_confidence(small_view, hand_model):
    scene, X = small_view
    pts, valid, labels = scene.render(X, 0.08, table_z_G=0.2)
    hand = labels == HAND_LABEL
    assert 50 < hand.sum() < 100
    tracker = IcpHandTracker(model=hand_model)
    score = _frame_score(tracker, pts, valid, X)
    # the expected pixels are the hand's rendered ones (rays through the pixel centres)
    assert abs(tracker.expected_pixels(X) - hand.sum()) <= 0.05 * hand.sum()
    absolute = _frame_score(IcpHandTracker(IcpTrackerConfig(expected_visible_fraction=0.0), hand_model),
                            pts, valid, X)
    assert score > 0.9 and absolute < 0.6  # min_points alone scores the small hand as a hidden one
    # a wrong pose stays low
    wrong = X @ make_pose(Rotation.from_euler("y", 0.5).as_matrix(), [0.0, 0.03, 0.0])
    assert _frame_score(tracker, pts, valid, wrong) < 0.4
    # view m's points in camera n's frame: the camera matrix is fitted to the grid, the same score
    X_NC = make_pose(Rotation.from_euler("xyz", [0.3, -0.5, 1.0]).as_matrix(), [0.2, -0.1, 0.4])
    in_n = transform_points(X_NC, pts)
    assert _frame_score(tracker, in_n, valid, X_NC @ X) == pytest.approx(score, abs=1e-6)
    # a list of points has no grid: min_points applies
    tracker._measure_noise(pts[valid], valid[valid])
    assert tracker.expected_pixels(X) is None and tracker.needed_inliers(X) == tracker.config.min_points


def test_an_occluded_hand_is_expected_only_where_it_can_be_seen(hand_model):
    scene, X = view_from_above(160.0)  # about 170 pixels of hand
    pts, valid, labels = scene.render(X, 0.08, table_z_G=0.2)
    full = int((labels == HAND_LABEL).sum())
    # a board 8 cm above the hand (towards the camera) over its +y half
    board = (np.array([-0.06, 0.0, -0.09]), np.array([0.06, 0.15, -0.08]))
    pts_o, valid_o, labels_o = scene.render(X, 0.08, table_z_G=0.2, boxes_G=[board])
    seen = int((labels_o == HAND_LABEL).sum())
    assert 0.3 * full < seen < 0.7 * full
    tracker = IcpHandTracker(model=hand_model)
    occluded = _frame_score(tracker, pts_o, valid_o, X)
    assert abs(tracker.expected_pixels(X) - seen) <= 0.1 * full
    assert occluded > 0.85  # what is visible fits: hidden by something in front is not evidence against it
    silhouette = IcpHandTracker(IcpTrackerConfig(occlusion_margin=None), hand_model)
    assert _frame_score(silhouette, pts_o, valid_o, X) < 0.7
    assert abs(silhouette.expected_pixels(X) - full) <= 0.05 * full
    # the same half missing with nothing in front of it (no depth there) is not excused
    missing = valid & ~((labels == HAND_LABEL) & (labels_o != HAND_LABEL))
    assert _frame_score(tracker, pts, missing, X) < 0.75


def test_a_hand_cut_by_the_image_border_is_scored_by_its_part_in_the_frame(hand_model):
    scene, X = view_from_above(160.0)
    pts, valid, labels = scene.render(X, 0.08, table_z_G=0.2)
    cols = np.nonzero((labels == HAND_LABEL).any(axis=0))[0]
    cut = int(np.median(cols))  # the image ends in the middle of the hand: columns >= cut are not seen
    pts_c, valid_c = np.ascontiguousarray(pts[:, :cut]), np.ascontiguousarray(valid[:, :cut])
    tracker = IcpHandTracker(model=hand_model)
    full = _frame_score(tracker, pts, valid, X)
    assert tracker.in_frame_fraction(X) > 0.99
    weighted = _frame_score(tracker, pts_c, valid_c, X)
    fraction = tracker.in_frame_fraction(X)
    assert 0.3 < fraction < 0.7
    unweighted = _frame_score(IcpHandTracker(IcpTrackerConfig(weigh_in_frame=False), hand_model), pts_c, valid_c, X)
    assert weighted == pytest.approx(unweighted * fraction, rel=1e-9)
    assert weighted < 0.7 * full
    # points without a pixel grid: nothing to say about the frame
    tracker._measure_noise(pts_c[valid_c], valid_c[valid_c])
    assert tracker.in_frame_fraction(X) == 1.0
    # a hand behind the camera is not in its frame
    tracker._measure_noise(pts, valid)
    assert tracker.in_frame_fraction(make_pose(np.eye(3), [0.0, 0.0, -2.0]) @ X) == 0.0  # 0.85 m behind


def test_a_trusted_guess_of_a_hand_cut_by_the_image_border_is_kept(hand_model):
    scene, X = view_from_above(160.0)
    pts, valid, labels = scene.render(X, 0.08, table_z_G=0.2)
    hand = labels == HAND_LABEL
    cut = int(np.median(np.nonzero(hand.any(axis=0))[0]))
    pts_c, valid_c, mask_c = (np.ascontiguousarray(a[:, :cut]) for a in (pts, valid, hand))
    near = X @ make_pose(Rotation.from_euler("z", 0.02).as_matrix(), [0.004, -0.003, 0.002])
    cfg = IcpTrackerConfig(register_guess_search=False)
    res = IcpHandTracker(cfg, hand_model).register_points(pts_c, valid_c, mask_c, near)
    np.testing.assert_array_equal(res.X_CG, near)  # too little of the hand in the frame to correct the guess
    assert 0.0 < res.score < 0.7
    # without the rule (and without the creep limits) ICP on the half hand moves the guess
    loose = dataclasses.replace(cfg, register_refine_min_in_frame=0.0, register_refine_max_translation=1.0,
                                register_refine_max_rotation=3.2)
    moved = IcpHandTracker(loose, hand_model).register_points(pts_c, valid_c, mask_c, near).X_CG
    assert translation_distance(moved, near) > 1e-4
    # the whole hand in the frame: refined as before (the guess moves)
    whole = IcpHandTracker(cfg, hand_model).register_points(pts, valid, hand, near)
    assert translation_distance(whole.X_CG, near) > 1e-4 and whole.score > 0.7
    with pytest.raises(ValueError, match="register_refine_min_in_frame"):
        IcpTrackerConfig(register_refine_min_in_frame=1.5)
