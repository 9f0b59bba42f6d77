"""extract_trajectory: two views (view m's points in camera n's frame), fusion, gripper state and the Plan."""

from __future__ import annotations

import numpy as np
import pytest

from geo4d_core.action.extraction import ConditionFrame, ExtractionConfig, ViewSequence, extract_trajectory
from geo4d_core.action.hand import X_GE
from geo4d_core.action.plan import PlanLimits
from geo4d_core.geometry.pointmap import transform_points
from geo4d_core.geometry.poses import invert_pose, rotation_distance, translation_distance

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
