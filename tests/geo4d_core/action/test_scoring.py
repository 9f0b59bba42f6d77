"""Tests for geo4d_core.action.scoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geo4d_core.action.scoring import depth_agreement_score
from geo4d_core.geometry import make_pose, splat_to_depth, transform_points

H, W = 40, 50
FX = FY = 100.0
CX, CY = 24.0, 19.0
K = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])
Z = 0.5


def _square_on_pixels(rows: range, cols: range, z: float = Z) -> np.ndarray:
    """(N, 3) fronto-parallel points at depth z, one exactly on the centre of each listed pixel (frame G = C)."""
    jj, ii = np.meshgrid(np.asarray(cols, float), np.asarray(rows, float))
    x = (jj - CX) * z / FX
    y = (ii - CY) * z / FY
    return np.stack([x, y, np.full_like(x, z)], axis=-1).reshape(-1, 3)


def test_exact_pixel_fractions():
    pts = _square_on_pixels(range(10, 20), range(10, 30))  # 10 rows x 20 cols = 200 covered pixels
    X = np.eye(4)
    depth = np.full((H, W), Z, dtype=np.float32)
    assert depth_agreement_score(pts, X, depth, K) == 1.0
    # Left 5 of the 20 columns disagree by 2 cm: 150 / 200 agree.
    depth[:, 10:15] = Z + 0.02
    assert depth_agreement_score(pts, X, depth, K) == pytest.approx(0.75)
    # A looser tolerance accepts them again.
    assert depth_agreement_score(pts, X, depth, K, tolerance=0.03) == 1.0
    # Missing depth (0 or NaN) on 2 of the remaining rows counts against the pose: 150 - 2*15 = 120.
    depth[10, :] = 0.0
    depth[11, :] = np.nan
    assert depth_agreement_score(pts, X, depth, K) == pytest.approx(120 / 200)
    # An occluder in front of half of the rows (rows 15..19) leaves rows 12..14 x 15 columns = 45.
    depth[15:20, :] = 0.3
    assert depth_agreement_score(pts, X, depth, K) == pytest.approx(45 / 200)


def test_points_outside_the_image_are_ignored_and_nothing_covered_gives_zero():
    depth = np.full((H, W), Z, dtype=np.float64)
    inside = _square_on_pixels(range(0, 5), range(0, 5))
    outside = _square_on_pixels(range(0, 5), range(60, 70))  # columns beyond the 50-px width
    assert depth_agreement_score(np.concatenate([inside, outside]), np.eye(4), depth, K) == 1.0
    assert depth_agreement_score(outside, np.eye(4), depth, K) == 0.0
    behind = make_pose(np.eye(3), np.array([0.0, 0.0, -2.0]))
    assert depth_agreement_score(inside, behind, depth, K) == 0.0
    assert depth_agreement_score(np.zeros((0, 3)), np.eye(4), depth, K) == 0.0
    nan_pose = np.eye(4)
    nan_pose[0, 3] = np.nan
    assert depth_agreement_score(inside, nan_pose, depth, K) == 0.0


def test_pose_is_applied_in_the_right_direction():
    """Model points are in G; X_CG moves them into C (p_C = X_CG p_G)."""
    rng = np.random.default_rng(3)
    pts_G = rng.uniform(-0.04, 0.04, size=(3000, 3))
    X_CG = make_pose(Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix(), np.array([0.02, -0.01, 0.45]))
    observed = splat_to_depth(transform_points(X_CG, pts_G), K, H, W)
    assert depth_agreement_score(pts_G, X_CG, observed, K) == 1.0
    # The inverse pose (the classic frame mix-up) puts the points elsewhere.
    wrong = np.linalg.inv(X_CG)
    assert depth_agreement_score(pts_G, wrong, observed, K) < 0.05
    # 3 cm further away: every covered pixel is 3 cm behind the observed surface.
    shifted = X_CG.copy()
    shifted[2, 3] += 0.03
    assert depth_agreement_score(pts_G, shifted, observed, K) < 0.05


def test_input_validation():
    depth = np.full((H, W), Z)
    pts = _square_on_pixels(range(2), range(2))
    with pytest.raises(ValueError, match=r"model_points_G must have shape \(N, 3\)"):
        depth_agreement_score(pts[:, :2], np.eye(4), depth, K)
    with pytest.raises(ValueError, match=r"X_CG must have shape \(4, 4\)"):
        depth_agreement_score(pts, np.eye(3), depth, K)
    with pytest.raises(ValueError, match=r"depth must have shape \(H, W\)"):
        depth_agreement_score(pts, np.eye(4), depth[None], K)
    with pytest.raises(ValueError, match="depth must be float metres"):
        depth_agreement_score(pts, np.eye(4), (depth * 1000).astype(np.uint16), K)
    with pytest.raises(ValueError, match="tolerance must be finite and > 0"):
        depth_agreement_score(pts, np.eye(4), depth, K, tolerance=0.0)
    with pytest.raises(ValueError, match=r"K must have shape \(3, 3\)"):
        depth_agreement_score(pts, np.eye(4), depth, K[:2])
