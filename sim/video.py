"""Per-trial videos and point-cloud snapshots of closed-loop trials.

Video layout, one frame per control period (10 Hz):

    +-----------------+-----------------+
    | actual view n   | actual view m   |
    +-----------------+-----------------+
    | predicted n     | predicted m     |   (the cycle's forecast of this period; oracle: the true future)
    +-----------------+-----------------+

The cycle's extracted end-effector trajectory is drawn into all four panels: the planned TCP positions
(plan frame B = W in simulation) projected with each camera's true pose, green where the gripper is
planned open and red where closed, the current period's target ringed. Camera m's pose is used only for
drawing: the policy itself never knows it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from geo4d_core.geometry.projection import project_points
from geo4d_core.policy.world_model_policy import PolicyOutput
from sim.robot import SimObservation, SimRobot

__all__ = ["TrialVideo", "draw_trajectory", "trial_frame", "orbit_camera", "render_point_cloud",
           "prediction_snapshot"]

OPEN_COLOR = (40, 220, 40)  # RGB of planned open-gripper positions
CLOSED_COLOR = (230, 40, 40)  # RGB of planned closed-gripper positions


def draw_trajectory(image: np.ndarray, p_C: np.ndarray, K: np.ndarray, closed: np.ndarray,
                    current: int | None = None) -> np.ndarray:
    """Draw a polyline of 3D positions into a copy of an RGB image.

    Args:
        image: (H, W, 3) uint8 RGB.
        p_C: (N, 3) positions in the camera's frame (OpenCV axes), metres; non-finite ones are skipped.
        K: (3, 3) intrinsics, pixels.
        closed: (N,) bool, True where the gripper is planned closed (red), else open (green).
        current: index of the position to ring (the current control period), or None.
    """
    out = np.ascontiguousarray(image.copy())
    H, W = out.shape[:2]
    p_C = np.asarray(p_C, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(p_C).all(axis=1)
    uv = np.full((len(p_C), 2), np.nan)
    if ok.any():
        proj, _, inside = project_points(p_C[ok], np.asarray(K, dtype=np.float64), H, W)
        uv_ok = np.where(inside[:, None], proj, np.nan)
        uv[ok] = uv_ok
    pts = [None if not np.isfinite(p).all() else (int(round(p[0])), int(round(p[1]))) for p in uv]
    for k in range(1, len(pts)):
        if pts[k - 1] is not None and pts[k] is not None:
            cv2.line(out, pts[k - 1], pts[k], (255, 255, 255), 1, cv2.LINE_AA)
    for k, p in enumerate(pts):
        if p is not None:
            cv2.circle(out, p, 2, CLOSED_COLOR if closed[k] else OPEN_COLOR, -1, cv2.LINE_AA)
    if current is not None and 0 <= current < len(pts) and pts[current] is not None:
        cv2.circle(out, pts[current], 5, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(image, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def trial_frame(robot: SimRobot, obs: SimObservation, output: PolicyOutput | None, k: int,
                policy: str) -> np.ndarray:
    """The (2H, 2W, 3) uint8 RGB video frame of control period `k` of the current cycle (layout above)."""
    cam_n, cam_m = robot.cameras
    H, W = obs.obs_n.rgb.shape[:2]
    actual = [obs.obs_n.rgb, obs.obs_m.rgb]
    if output is not None and output.prediction is not None and k < output.prediction.horizon:
        pred = output.prediction
        predicted = [_resize(pred.rgb_n[k], H, W), _resize(pred.rgb_m[k], H, W)]
    else:
        predicted = [np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8)]
    panels = actual + predicted
    if output is not None:
        plan = output.plan
        for a in range(plan.num_arms):
            p_W = (robot.X_WB @ plan.X_BE[:, a])[:, :3, 3]
            closed = plan.gripper_closed[:, a]
            for i, cam in enumerate((cam_n, cam_m)):
                p_C = (p_W - cam.X_WC[:3, 3]) @ cam.X_WC[:3, :3]  # = R_CW (p_W - p_WC)
                for row in (0, 2):
                    panels[row + i] = draw_trajectory(panels[row + i], p_C, cam.K, closed, current=k)
    what = {"oracle": "true future", "world_model": "predicted", "scripted": "(no prediction)"}.get(policy, policy)
    names = [f"actual n  t={obs.t:.1f}s", "actual m", f"{what} n", f"{what} m"]
    if output is not None and output.violations:
        names[2] += " REJECTED"
    panels = [_label(np.ascontiguousarray(p.copy()), name) for p, name in zip(panels, names)]
    return np.concatenate([np.concatenate(panels[:2], axis=1), np.concatenate(panels[2:], axis=1)], axis=0)


def _resize(image: np.ndarray, H: int, W: int) -> np.ndarray:
    return image if image.shape[:2] == (H, W) else cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR)


class TrialVideo:
    """Writes the frames of one trial to an MP4 file as they come (`run_trial`'s `on_frame`)."""

    def __init__(self, path: str | Path, policy: str, fps: float = 10.0):
        self.path = Path(path)
        self.policy = policy
        self.fps = float(fps)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def __call__(self, robot: SimRobot, obs: SimObservation, output: PolicyOutput | None, k: int) -> None:
        frame = trial_frame(robot, obs, output, k, self.policy)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"OpenCV could not open an MP4 writer for {self.path}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def orbit_camera(points_C: np.ndarray, angle: float) -> np.ndarray:
    """(4, 4) pose X_CV of a virtual camera V: camera C turned by `angle` radians about the vertical (C's y)
    axis through the median of `points_C` (metres in C), looking at the same scene from the side."""
    c = np.median(np.asarray(points_C, dtype=np.float64).reshape(-1, 3), axis=0)
    ca, sa = np.cos(angle), np.sin(angle)
    R = np.array([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
    X = np.eye(4)
    X[:3, :3] = R
    X[:3, 3] = c - R @ c
    return X


def render_point_cloud(points_C: np.ndarray, colors: np.ndarray, X_CV: np.ndarray, K: np.ndarray, height: int,
                       width: int, *, splat_px: int = 2) -> np.ndarray:
    """(height, width, 3) uint8 RGB splat of a coloured point cloud seen from virtual camera V.

    points_C: (N, 3) metres in frame C; colors: (N, 3) uint8; X_CV: (4, 4) pose of V in C; K: V's intrinsics.
    Each point covers a `splat_px` square of pixels (closes the gaps a new viewpoint opens between
    neighbouring points); the nearest point wins each pixel (z-buffer by sorting); background is white.
    """
    p = np.asarray(points_C, dtype=np.float64).reshape(-1, 3)
    col = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    p_V = (p - X_CV[:3, 3]) @ X_CV[:3, :3]  # R_VC (p_C - p_CV)
    uv, z, inside = project_points(p_V, np.asarray(K, dtype=np.float64), height, width)
    u0 = np.floor(uv[inside, 0]).astype(np.intp)
    v0 = np.floor(uv[inside, 1]).astype(np.intp)
    z, col = z[inside], col[inside]
    offsets = [(du, dv) for dv in range(max(splat_px, 1)) for du in range(max(splat_px, 1))]
    u = np.concatenate([u0 + du for du, _ in offsets])
    v = np.concatenate([v0 + dv for _, dv in offsets])
    z, col = np.tile(z, len(offsets)), np.tile(col, (len(offsets), 1))
    keep = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z, col = u[keep], v[keep], z[keep], col[keep]
    image = np.full((height, width, 3), 255, np.uint8)
    order = np.argsort(z, kind="stable")  # nearest first
    flat = (v * width + u)[order]
    _, first = np.unique(flat, return_index=True)  # the nearest point of every hit pixel
    idx = order[first]
    image[v[idx], u[idx]] = col[idx]
    return image


def prediction_snapshot(output: PolicyOutput, step: int, out_dir: str | Path, *, angle: float = 0.45) -> dict[str, Path]:
    """Write the predicted point cloud of both views at plan step `step` (camera n's frame, metres) as
    `pointcloud.ply` and a side view of it as `pointcloud.png` into `out_dir`; returns the paths."""
    from geo4d_core.model.export import write_ply

    pred = output.prediction
    if pred is None:
        raise ValueError("prediction_snapshot: the cycle has no prediction")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pts = np.concatenate([pred.points_n[step][pred.valid_n[step]], pred.points_m_in_n[step][pred.valid_m[step]]])
    cols = np.concatenate([pred.rgb_n[step][pred.valid_n[step]], pred.rgb_m[step][pred.valid_m[step]]])
    ply = write_ply(out_dir / "pointcloud.ply", pts, cols)
    H, W = pred.rgb_n.shape[1:3]
    K = np.asarray(pred.K_n, dtype=np.float64) * np.array([[2.0], [2.0], [1.0]])  # twice the resolution
    image = render_point_cloud(pts, cols, orbit_camera(pts, angle), K, 2 * H, 2 * W, splat_px=3)
    png = out_dir / "pointcloud.png"
    cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return {"ply": ply, "png": png}
