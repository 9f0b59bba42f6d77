"""Cross-view consistency mIoU: perfect geometry gives 1, known pixel shifts give known values."""

import numpy as np
import pytest

from geo4d_core.geometry import invert_pose, look_at, project_world_points, relative_pose, transform_points
from geo4d_core.metrics import bbox_iou, cross_view_iou_per_frame, cross_view_miou, mask_bbox

H, W = 96, 128
K = np.array([[120.0, 0.0, 63.5], [0.0, 120.0, 47.5], [0.0, 0.0, 1.0]])


def test_mask_bbox_and_bbox_iou_hand_computed():
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    assert mask_bbox(mask) == (2, 1, 4, 2)
    assert mask_bbox(np.zeros((3, 3), bool)) is None
    a = (0, 0, 9, 9)  # 100 px
    b = (5, 0, 14, 9)  # 100 px, overlap 50
    assert bbox_iou(a, b) == pytest.approx(50 / 150)
    assert bbox_iou(a, a) == 1.0
    assert bbox_iou(a, None) == 0.0
    assert np.isnan(bbox_iou(None, None))


def _scene():
    """Two cameras looking at a 'gripper' made of a sparse 5x5 grid of 3D points over the table.

    Each point lands in its own pixel in both views, so view n's pointmap holds the exact 3D points and
    view m's mask is exactly where they project: a perfect prediction.
    """
    X_WCn = look_at(np.array([0.0, -0.6, 0.8]), np.array([0.0, 0.0, 0.0]))
    X_WCm = look_at(np.array([0.5, 0.3, 0.7]), np.array([0.0, 0.0, 0.0]))
    g = np.stack(np.meshgrid(np.linspace(-0.05, 0.05, 5), np.linspace(-0.05, 0.05, 5), indexing="xy"), -1)
    p_W = np.concatenate([g.reshape(-1, 2), np.full((25, 1), 0.1)], axis=1)
    masks = {}
    points_n = np.zeros((H, W, 3))
    for name, X_WC in (("n", X_WCn), ("m", X_WCm)):
        uv, z, inside = project_world_points(p_W, K, X_WC, H, W)
        assert inside.all()
        cols = np.floor(uv[:, 0] + 0.5).astype(int)
        rows = np.floor(uv[:, 1] + 0.5).astype(int)
        mask = np.zeros((H, W), bool)
        mask[rows, cols] = True
        assert mask.sum() == 25, "construction needs one pixel per point"
        masks[name] = mask
        if name == "n":
            points_n[rows, cols] = transform_points(invert_pose(X_WCn), p_W)
    return X_WCn, X_WCm, masks, points_n


def test_perfect_geometry_gives_miou_one():
    X_WCn, X_WCm, masks, points_n = _scene()
    T = 3
    miou = cross_view_miou(
        np.repeat(points_n[None], T, 0), np.repeat(masks["n"][None], T, 0),
        np.repeat(masks["m"][None], T, 0), K, relative_pose(X_WCm, X_WCn),
    )
    assert miou == pytest.approx(1.0)


def test_known_shift_gives_known_iou():
    X_WCn, X_WCm, masks, points_n = _scene()
    box = mask_bbox(masks["m"])
    width = box[2] - box[0] + 1
    shift = 4
    shifted = np.zeros_like(masks["m"])
    shifted[:, shift:] = masks["m"][:, :-shift]
    expected = (width - shift) / (width + shift)  # same height, horizontal shift
    ious = cross_view_iou_per_frame(points_n[None], masks["n"][None], shifted[None], K, relative_pose(X_WCm, X_WCn))
    assert ious[0] == pytest.approx(expected)


def test_empty_frames_are_skipped_and_one_sided_frames_score_zero():
    X_WCn, X_WCm, masks, points_n = _scene()
    pts = np.repeat(points_n[None], 3, 0)
    mask_n = np.repeat(masks["n"][None], 3, 0)
    mask_m = np.repeat(masks["m"][None], 3, 0)
    mask_n[1] = False
    mask_m[1] = False  # frame 1: nothing on either side -> skipped
    mask_m[2] = False  # frame 2: projection but no gripper in m -> IoU 0
    ious = cross_view_iou_per_frame(pts, mask_n, mask_m, K, relative_pose(X_WCm, X_WCn))
    assert ious[0] == pytest.approx(1.0) and np.isnan(ious[1]) and ious[2] == 0.0
    assert cross_view_miou(pts, mask_n, mask_m, K, relative_pose(X_WCm, X_WCn)) == pytest.approx(0.5)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="points_Cn"):
        cross_view_miou(np.zeros((4, 4, 3)), np.zeros((4, 4)), np.zeros((4, 4)), K, np.eye(4))
    with pytest.raises(ValueError, match="gripper_mask_n"):
        cross_view_miou(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 5)), np.zeros((1, 4, 4)), K, np.eye(4))
