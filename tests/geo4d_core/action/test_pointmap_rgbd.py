"""An RGB-D tracker on pointmaps in camera n's frame (geo4d_core.action.pointmap_rgbd), and FoundationPose chosen by
the extraction configuration, against the FoundationPose fake of test_foundationpose."""

from __future__ import annotations

import numpy as np
import pytest

from geo4d_core.action.extraction import ConditionFrame, ExtractionConfig, ViewSequence, extract_trajectory
from geo4d_core.action.pointmap_rgbd import PointmapRgbdTracker, view_camera
from geo4d_core.action.render import HAND_LABEL
from geo4d_core.action.tracking import TrackingLostError
from geo4d_core.geometry.pointmap import transform_points
from geo4d_core.geometry.poses import invert_pose, rotation_distance, translation_distance

from .test_foundationpose import FakeFoundationPose, fakes, mesh_file  # noqa: F401 - fixture reuse
from .test_icp_tracker import cameras, trajectory  # noqa: F401 - fixture reuse

STEPS = 4


@pytest.fixture(scope="module")
def scene(hand_scene, cameras):  # noqa: F811
    """Condition frame of view n, STEPS future frames of both views (view m's points in camera n's frame), the
    true hand poses in camera n, and each view's own depth images (camera n <- camera m: X_CnCm)."""
    X_CnW = invert_pose(cameras["n"])
    X_CnCm = X_CnW @ cameras["m"]
    poses = [X_CnW @ X for X in trajectory()[:STEPS + 1]]  # up to 3 cm per step
    pts0, valid0, labels0 = hand_scene.render(poses[0], 0.08)
    frames = {"n": [], "m": []}
    for X in poses[1:]:
        frames["n"].append(hand_scene.render(X, 0.08, table_z_G=0.13)[:2])
        p, v, _ = hand_scene.render(invert_pose(X_CnCm) @ X, 0.08, table_z_G=0.13)
        frames["m"].append((p, v))
    rgb = np.zeros((STEPS,) + pts0.shape[:2] + (3,), np.uint8)
    views = {"n": ViewSequence(np.stack([p for p, _ in frames["n"]]), np.stack([v for _, v in frames["n"]]), rgb),
             "m": ViewSequence(np.stack([transform_points(X_CnCm, p) for p, _ in frames["m"]]),
                               np.stack([v for _, v in frames["m"]]), rgb)}
    own_depth = {v: [np.where(val, p[..., 2], 0.0) for p, val in frames[v]] for v in frames}
    cond = ConditionFrame(pts0, valid0, {"arm": labels0 == HAND_LABEL}, {"arm": poses[0]}, rgb=rgb[0])
    return cond, views, np.stack(poses), own_depth, X_CnCm


def test_a_pointmap_in_another_frame_gives_its_own_camera_and_depth(scene, hand_scene):
    _, views, _, own_depth, X_CnCm = scene
    cam = view_camera(views["m"].points_C[0], views["m"].valid[0])
    np.testing.assert_allclose(cam.K, hand_scene.K, atol=1e-3)
    np.testing.assert_allclose(cam.X_CV, X_CnCm, atol=1e-5)
    np.testing.assert_allclose(cam.depth, own_depth["m"][0], atol=1e-5)
    assert cam.rms < 1e-3
    with pytest.raises(TrackingLostError, match="no camera fits"):
        view_camera(np.zeros((8, 8, 3)), np.zeros((8, 8), bool))


def test_foundationpose_chosen_by_the_configuration_tracks_both_views_in_camera_n(fakes, mesh_file, scene,  # noqa: F811
                                                                                  hand_scene, monkeypatch):
    """The fake answers each call with the true pose in the camera of the depth image it was given (identified
    by that depth image); extraction must hand every view its own depth and intrinsics and map the answers back
    to camera n, view m's through the camera recovered from its points alone."""
    cond, views, truth, own_depth, X_CnCm = scene
    X_CV = {"n": np.eye(4), "m": X_CnCm}
    seen = []

    def answer(est, K, depth):
        candidates = [("n", -1, np.where(cond.valid, cond.points_C[..., 2], 0.0))]
        candidates += [(v, k, d) for v in own_depth for k, d in enumerate(own_depth[v])]
        errors = [np.abs(depth - d).max() for _, _, d in candidates]
        v, k, _ = candidates[int(np.argmin(errors))]
        assert min(errors) < 1e-4  # the view's own depth, not its points' z in camera n
        np.testing.assert_allclose(K, hand_scene.K, atol=1e-3)
        seen.append((v, k))
        return invert_pose(X_CV[v]) @ truth[k + 1]

    monkeypatch.setattr(FakeFoundationPose, "register",
                        lambda self, K, rgb, depth, ob_mask, ob_id=None, glctx=None, iteration=5: answer(self, K, depth))
    monkeypatch.setattr(FakeFoundationPose, "track_one",
                        lambda self, rgb, depth, K, iteration, extra={}: answer(self, K, depth))  # noqa: B006
    cfg = ExtractionConfig(tracker="foundationpose", foundationpose={"mesh_path": mesh_file})
    res = extract_trajectory(cond, views, cfg)
    assert len(FakeFoundationPose.instances) == 2  # one FoundationPose per view
    assert seen[0] == ("n", -1)  # registered on the condition frame
    assert ("m", 0) in seen  # view m registered on its first frame (mask drawn at the registered pose)
    assert sorted(k for v, k in seen if v == "m") == list(range(STEPS))
    assert translation_distance(res.X_CG[:, 0], truth[1:]).max() < 1e-4
    assert np.degrees(rotation_distance(res.X_CG[:, 0], truth[1:])).max() < 0.01
    for v in ("n", "m"):  # each view's own answers, mapped to camera n
        assert translation_distance(res.per_view_X_CG[v][:, 0], truth[1:]).max() < 1e-4
    assert np.all(res.confidence > 0)  # the adapter's depth agreement of the (fake, box-shaped) mesh
    with pytest.raises(ValueError, match="colour images"):
        extract_trajectory(cond, {v: ViewSequence(s.points_C, s.valid) for v, s in views.items()}, cfg)


def test_foundationpose_configuration_needs_its_settings():
    with pytest.raises(ValueError, match="foundationpose"):
        ExtractionConfig(tracker="foundationpose")
    cfg = ExtractionConfig(tracker="foundationpose", foundationpose={"mesh_path": "hand.obj", "track_refine_iter": 4})
    assert cfg.foundationpose.track_refine_iter == 4


def test_a_view_that_never_sees_the_hand_at_the_given_pose_is_lost(fakes, mesh_file, scene, hand_model):  # noqa: F811
    from geo4d_core.action.foundationpose import FoundationPoseConfig, FoundationPoseTracker

    _, views, truth, _, _ = scene
    tracker = PointmapRgbdTracker(FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file)), hand_model)
    with pytest.raises(TrackingLostError, match="before register"):
        tracker.track_points(views["n"].points_C[0], views["n"].valid[0], rgb=views["n"].rgb[0])
    far = truth[1].copy()
    far[:3, 3] += [2.0, 0.0, 0.0]  # 2 m to the side: outside the image
    tracker.set_pose(far)
    with pytest.raises(TrackingLostError, match="pixels in this view"):
        tracker.track_points(views["n"].points_C[0], views["n"].valid[0], rgb=views["n"].rgb[0])
