"""An RGB-D pose tracker (NVIDIA FoundationPose) on pointmaps expressed in camera n's frame.

Extraction tracks every view on pointmaps in camera n's frame C: view n's own points, and view m's points
predicted directly in C (no calibration of camera m exists). An RGB-D tracker needs each view's own depth
image and intrinsics instead. Both follow from the pointmap's pixel grid: the 3x4 camera matrix fitted to
it (`fit_projection_matrix`) factors into the view's intrinsics K and the pose of C in the view's camera V
(`decompose_projection_matrix`), so the depth along V's axis is the third coordinate of X_VC p_C, and a pose
found in V maps back to C with X_CV. For view n the fit gives V = C.

A view whose tracker was never registered (view m: the hand is registered on view n's observation only) is
registered on its first frame with a hand mask drawn at the pose it was given (`set_pose`: the pose
registered in view n), through `project_hand_mask` with the view's fitted camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geo4d_core.action.hand import HandModel
from geo4d_core.action.hand_mask import project_hand_mask
from geo4d_core.action.tracking import PoseTracker, TrackingLostError, TrackResult
from geo4d_core.geometry.poses import invert_pose
from geo4d_core.geometry.projection import decompose_projection_matrix, fit_projection_matrix

__all__ = ["ViewCamera", "view_camera", "PointmapRgbdTracker"]


@dataclass
class ViewCamera:
    """The camera V of a pointmap's pixel grid, recovered from the points alone."""

    K: np.ndarray  # (3, 3) intrinsics of camera V, pixels
    X_CV: np.ndarray  # (4, 4) pose of camera V in the pointmap's frame C, metres
    depth: np.ndarray  # (H, W) float32 depth along V's optical axis, metres, 0 = invalid
    rms: float  # reprojection error of the fitted camera matrix, pixels


def view_camera(points_C: np.ndarray, valid: np.ndarray, *, max_rms: float = 2.0) -> ViewCamera:
    """Camera V, its intrinsics and its depth image from an (H, W, 3) pointmap in frame C (metres).

    Raises TrackingLostError when no camera fits the grid within `max_rms` pixels (too few valid points,
    points on one plane, or a pointmap too noisy to define its camera).
    """
    points_C, valid = np.asarray(points_C, dtype=np.float64), np.asarray(valid, bool)
    P, rms = fit_projection_matrix(points_C, valid)
    if P is None or rms > max_rms:
        raise TrackingLostError(f"no camera fits this pointmap's pixel grid (reprojection error {rms:.2f} px, "
                                f"limit {max_rms} px): cannot make a depth image for an RGB-D tracker")
    K, X_VC = decompose_projection_matrix(P)
    z = points_C @ X_VC[2, :3] + X_VC[2, 3]
    depth = np.where(valid & np.isfinite(z) & (z > 0), z, 0.0).astype(np.float32)
    return ViewCamera(K, invert_pose(X_VC), depth, rms)


class PointmapRgbdTracker:
    """The pointmap interface of the built-in tracker (`register_points`, `track_points`, `set_pose`, `model`)
    on top of an RGB-D `PoseTracker` (e.g. `FoundationPoseTracker`), for `extract_trajectory`.

    Poses in and out are in the pointmap's frame C (camera n); the wrapped tracker works in each view's own
    camera V. `rgb` (H, W, 3) uint8 is required by the RGB-D tracker.
    """

    def __init__(self, tracker: PoseTracker, model: HandModel, *, max_rms: float = 2.0,
                 mask_depth_tolerance: float = 0.05, mask_dilate_px: int = 2):
        self.tracker = tracker
        self.model = model  # hand surface model (finger measurement, masks drawn at a given pose)
        self.max_rms = max_rms  # largest reprojection error of a view camera fit, pixels
        # A mask drawn at a pose given by set_pose keeps the pixels whose observed depth is within this of the
        # drawn hand's, metres: wider than for the robot's own pose, the hand moves up to a few cm in a step.
        self.mask_depth_tolerance = mask_depth_tolerance
        self.mask_dilate_px = mask_dilate_px  # ... and grows it by this many pixels
        self._X_CG: np.ndarray | None = None
        self._pending: np.ndarray | None = None  # pose given by set_pose, registered on at the next frame

    @property
    def X_CG(self) -> np.ndarray | None:
        """The last pose in frame C, or None before registration."""
        return None if self._X_CG is None else self._X_CG.copy()

    def reset(self) -> None:
        self._X_CG = self._pending = None
        self.tracker.reset()

    def register_points(self, points_C: np.ndarray, valid: np.ndarray, mask: np.ndarray,
                        X_CG_init: np.ndarray | None = None, *, rgb: np.ndarray | None = None) -> TrackResult:
        """Register the wrapped tracker on this frame (hand mask (H, W) bool, optional guess in frame C)."""
        cam = self._camera(points_C, valid, rgb)
        guess = None if X_CG_init is None else invert_pose(cam.X_CV) @ np.asarray(X_CG_init, dtype=np.float64)
        res = self.tracker.register(rgb, cam.depth, cam.K, np.asarray(mask, bool), guess)
        self._pending = None
        return self._in_c(res, cam)

    def track_points(self, points_C: np.ndarray, valid: np.ndarray, *, rgb: np.ndarray | None = None) -> TrackResult:
        """Follow the hand into this frame; a pose given by `set_pose` is registered on here first."""
        if self._X_CG is None and self._pending is None:
            raise TrackingLostError("track called before register or set_pose")
        cam = self._camera(points_C, valid, rgb)
        if self._pending is None:
            return self._in_c(self.tracker.track(rgb, cam.depth, cam.K), cam)
        X_VG = invert_pose(cam.X_CV) @ self._pending
        mask = project_hand_mask(self.model, X_VG, cam.K, cam.depth, depth_tolerance=self.mask_depth_tolerance,
                                 dilate_px=self.mask_dilate_px)
        if mask.sum() < 10:
            raise TrackingLostError(f"the hand at the given pose shows only {int(mask.sum())} pixels in this view")
        res = self.tracker.register(rgb, cam.depth, cam.K, mask, X_VG)
        self._pending = None
        return self._in_c(res, cam)

    def set_pose(self, X_CG: np.ndarray, X_CG_prev: np.ndarray | None = None) -> None:
        """Continue from a pose found elsewhere (frame C): registered on at the next frame, unless this tracker
        is already there. X_CG_prev is not used (the wrapped tracker keeps its own motion model)."""
        X_CG = np.asarray(X_CG, dtype=np.float64)
        if self._X_CG is not None and np.allclose(X_CG, self._X_CG, atol=1e-9):
            return
        self._pending = X_CG.copy()

    def _camera(self, points_C: np.ndarray, valid: np.ndarray, rgb: np.ndarray | None) -> ViewCamera:
        points_C = np.asarray(points_C)
        if rgb is None:
            raise ValueError("an RGB-D tracker needs the colour images: give ConditionFrame.rgb and ViewSequence.rgb "
                             "(extract_from_prediction does)")
        if points_C.ndim != 3 or np.shape(rgb)[:2] != points_C.shape[:2]:
            raise ValueError(f"an RGB-D tracker needs (H, W, 3) pointmaps with (H, W, 3) colour images of the same "
                             f"size, got points {points_C.shape} and rgb {np.shape(rgb)}")
        return view_camera(points_C, valid, max_rms=self.max_rms)

    def _in_c(self, res: TrackResult, cam: ViewCamera) -> TrackResult:
        X_CG = cam.X_CV @ np.asarray(res.X_CG, dtype=np.float64)
        self._X_CG = X_CG
        return TrackResult(X_CG, res.score)
