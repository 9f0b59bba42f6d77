"""Built-in CPU tracker of the Panda hand on RGB-D or pointmaps (open3d registration).

* `register`: the masked hand points of the first frame are aligned to the hand model: from a pose guess
  (e.g. the robot's current end-effector pose mapped into the camera) with coarse-to-fine point-to-plane
  ICP, or without a guess by FPFH features + RANSAC followed by the same ICP.
* `track`: scene points inside the hand's bounding box around the predicted pose (constant-velocity
  prediction from the last two poses) are aligned to the model by coarse-to-fine point-to-plane ICP with
  a robust (Tukey) kernel, so finger, arm and grasped-object points near the hand do not pull the pose.

Points may come from a depth image of camera C or from a pointmap already expressed in camera n's frame
(view m's predicted points): nothing in the tracker needs the pixel grid of the camera it tracks in.

**Confidence** (`TrackResult.score`): among the observed points inside the hand body's bounding box at the
final pose (enlarged by `score_margin`, finger region excluded), the fraction lying within
`inlier_distance` of the hand surface, multiplied by min(1, inliers / needed). 1 means the hand is as
visible as it can be in this view and all observed points lie on the model's surface; a wrong pose puts
points off the surface, an occluded or missing hand leaves too few points; both lower the score. 0 means no
usable estimate. `needed` is `min_points`, or on a pixel grid (an (H, W, 3) frame) the smaller
`expected_visible_fraction` of the pixels the hand body would cover at the fitted pose in this view (rays
through the pixel centres, cast with the camera matrix fitted to the grid, `fit_projection_matrix`; for
view m's points in camera n's frame that is view m's own camera), so a hand that is small in the image
(a high camera looking down on it) is not scored as a hidden one; pixels whose observed point lies more than
`occlusion_margin` in front of the hand see an occluder and are not expected either. On a pixel grid the
score is also multiplied by the fraction of the hand body that projects inside the image
(`in_frame_fraction`, `weigh_in_frame`): a hand cut by the image border can slide along it unobserved, so
fusion prefers a view that sees all of it, and registration keeps a trusted guess of a hand that is mostly
out of the frame (`register_refine_min_in_frame`).
On noisy depth (a real sensor, a predicted pointmap) even the right pose leaves points off the surface,
so the inlier distance grows to `inlier_noise_factor` times the frame's own noise along the rays,
measured on the pixel grid without the pose (`pointmap_noise`), so a wrong pose is not excused by its
own misfit. Points given as a list (no grid) keep the fixed distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from geo4d_core.action.gripper_state import best_supported_opening
from geo4d_core.action.hand import FINGER_JOINT_Z, FINGER_LENGTH, MAX_OPENING, HandModel, load_hand_model
from geo4d_core.action.tracking import TrackingLostError, TrackResult
from geo4d_core.geometry.pointmap import depth_to_pointmap
from geo4d_core.geometry.poses import invert_pose, rotation_distance
from geo4d_core.geometry.projection import apply_projection_matrix, fit_projection_matrix

__all__ = ["IcpTrackerConfig", "IcpHandTracker", "pointmap_noise"]


def pointmap_noise(points: np.ndarray, valid: np.ndarray) -> float:
    """Noise of a pointmap, metres: a robust std of its points along their rays, from the second
    differences p[i-1] - 2 p[i] + p[i+1] along rows and columns of the pixel grid (about 0 on a smooth
    surface; sqrt(6) sigma for independent noise of std sigma along nearly parallel rays), as
    median |difference| / (0.6745 sqrt(6)). Depth edges are a minority of pixels and do not move the
    median. points (H, W, 3) in any frame, valid (H, W); 0 with fewer than 100 valid triples."""
    points, valid = np.asarray(points, dtype=np.float64), np.asarray(valid, bool)
    if points.ndim != 3 or valid.shape != points.shape[:2]:
        return 0.0
    rows = (points[:-2] - 2 * points[1:-1] + points[2:])[valid[:-2] & valid[1:-1] & valid[2:]]
    cols = (points[:, :-2] - 2 * points[:, 1:-1] + points[:, 2:])[valid[:, :-2] & valid[:, 1:-1] & valid[:, 2:]]
    d2 = np.concatenate([np.einsum("ij,ij->i", rows, rows), np.einsum("ij,ij->i", cols, cols)])
    if len(d2) < 100:
        return 0.0
    return float(np.sqrt(np.median(d2)) / (0.6745 * np.sqrt(6.0)))  # median of squares = square of median


@dataclass
class IcpTrackerConfig:
    """Settings of the built-in ICP hand tracker (distances in metres)."""

    # Voxel size for downsampling the observed points before registration.
    voxel_size: float = 0.003
    # How far outside the hand's bounding box (around the predicted pose) observed points are kept, along x, y.
    crop_margin: float = 0.05
    # The same along the hand's z axis, kept small so finger, grasped-object and arm points stay out.
    crop_margin_z: float = 0.006
    # Correspondence distances of the coarse-to-fine ICP stages during tracking.
    icp_distances: tuple[float, ...] = (0.05, 0.02, 0.008, 0.004)
    # Extra registration starts: the guess turned about the hand's z axis by these angles, radians.
    register_yaw_offsets: tuple[float, ...] = (-0.4, -0.2, 0.2, 0.4)
    # Extra registration starts: the guess shifted along the hand's y axis by these distances, metres.
    register_shifts: tuple[float, ...] = (-0.03, 0.03)
    # Largest accepted change from a start pose within one step, metres (ICP results beyond are dropped).
    max_step_translation: float = 0.06
    # Largest accepted rotation from a start pose within one step, radians.
    max_step_rotation: float = 0.6
    # After frames in which the hand was not found, the prediction extrapolates the last motion over the
    # frames since the last fit and the step limits grow with them, up to this many frames (re-acquiring a
    # hand that comes back from behind an occluder).
    max_gap_frames: int = 5
    # Tracking confidence below which the registration starts are also tried around the prediction.
    recover_below: float = 0.5
    # Correspondence distances during registration from a pose guess.
    register_distances: tuple[float, ...] = (0.05, 0.02, 0.008, 0.004)
    # ICP iterations per stage.
    icp_iterations: int = 30
    # A point within this distance of the hand surface counts as an inlier for the confidence.
    inlier_distance: float = 0.004
    # ... or within this many times the frame's noise along the rays (pointmap_noise), if larger; 0 = fixed.
    inlier_noise_factor: float = 1.0
    # Bounding-box enlargement for the confidence, metres.
    score_margin: float = 0.005
    # Inliers needed for full confidence (fewer scale the score down linearly).
    min_points: int = 120
    # On a pixel grid, needed inliers = min(min_points, this fraction of the pixels the hand body would cover at
    # the fitted pose in this view): a small but fully visible hand can reach full confidence, a partly hidden
    # one cannot. 0 = always min_points.
    expected_visible_fraction: float = 0.8
    # ... but never fewer than this many inliers.
    min_points_floor: int = 40
    # Pixels whose observed point is more than this in front of the hand (metres along the view's axis) see
    # something hiding the hand and do not count as expected pixels; None: occluders count (only the
    # silhouette).
    occlusion_margin: float | None = 0.01
    # The view's camera matrix is fitted to its pixel grid (`fit_projection_matrix`); a fit worse than this RMS
    # reprojection error, pixels, is not used (min_points applies).
    projection_max_rms: float = 2.0
    # On a pixel grid, also multiply the confidence by the fraction of the hand body that projects inside the
    # image (`in_frame_fraction`): a hand cut by the image border can slide along it unobserved (simulated
    # PutSpatulaOnTable lifts: 4-8 cm errors scored 0.83-0.93 while the other view was right at 0.7).
    weigh_in_frame: bool = True
    # Feature radius of FPFH for registration without a pose guess.
    fpfh_radius: float = 0.02
    # RANSAC iterations of the global registration.
    ransac_iterations: int = 100000
    # Seed of RANSAC (deterministic registration).
    seed: int = 0
    # Use a constant-velocity prediction of the pose between frames.
    constant_velocity: bool = True
    # Experimental: model the fingers at the opening best supported by the previous frame. Off by default:
    # on simulated PutSpatulaOnTable episodes it doubled the median error (objects between the fingers).
    track_fingers: bool = False
    # Finish each track step with model-to-scene ICP, so the hand cannot slide along its flat faces.
    model_to_scene: bool = True
    # Correspondence distances of the model-to-scene stages.
    model_to_scene_distances: tuple[float, ...] = (0.01, 0.004)
    # While tracking, the model-to-scene result replaces the scene-to-model fit unless it lowers the
    # confidence by more than this: it then moved observed points off the surface (on a ray-cast test path
    # it turned a 0.07 mm, 0.947 fit into 6 mm, 0.881). None: always keep it.
    model_to_scene_max_score_drop: float | None = 0.03
    # With a pose guess, search around it (the extra starts and the coarse stages of register_distances).
    # Off: only refine the guess with register_refine_distances, for guesses good to a few millimetres such as
    # the robot's own forward kinematics through camera n's extrinsic (a search can then only lose: mask
    # pixels of the arm next to the hand pull a wider search off the hand).
    register_guess_search: bool = True
    # Correspondence distances refining a trusted guess (register_guess_search off).
    register_refine_distances: tuple[float, ...] = (0.01, 0.004)
    # A refinement of a trusted guess that moves it farther than this is discarded (the guess is kept), metres:
    # with few hand pixels ICP can creep along the arm far from a guess that is good to a few millimetres.
    register_refine_max_translation: float = 0.02
    # The same for rotation, radians.
    register_refine_max_rotation: float = 0.15
    # A trusted guess whose hand body lies less than this fraction inside the image (`in_frame_fraction`) is
    # kept as it is: a hand cut by the image border can slide along it (PutSpatulaOnTable lifts: 6 cm).
    register_refine_min_in_frame: float = 0.9

    def __post_init__(self) -> None:
        if not isinstance(self.max_gap_frames, int) or self.max_gap_frames < 1:
            raise ValueError(f"IcpTrackerConfig.max_gap_frames must be an int >= 1, got {self.max_gap_frames!r}")
        if not (np.isfinite(self.inlier_noise_factor) and self.inlier_noise_factor >= 0):
            raise ValueError(f"IcpTrackerConfig.inlier_noise_factor must be finite and >= 0, "
                             f"got {self.inlier_noise_factor!r}")
        drop = self.model_to_scene_max_score_drop
        if drop is not None and not (np.isfinite(drop) and drop >= 0):
            raise ValueError(f"IcpTrackerConfig.model_to_scene_max_score_drop must be >= 0 or None, got {drop!r}")
        if not 0.0 <= self.expected_visible_fraction <= 1.0:
            raise ValueError(f"IcpTrackerConfig.expected_visible_fraction must be in [0, 1], "
                             f"got {self.expected_visible_fraction!r}")
        if not 0.0 <= self.register_refine_min_in_frame <= 1.0:
            raise ValueError(f"IcpTrackerConfig.register_refine_min_in_frame must be in [0, 1], "
                             f"got {self.register_refine_min_in_frame!r}")
        if self.min_points_floor < 1 or self.min_points_floor > self.min_points:
            raise ValueError(f"IcpTrackerConfig.min_points_floor must be in [1, min_points], got {self.min_points_floor!r}")
        if self.voxel_size <= 0 or self.inlier_distance <= 0 or self.min_points < 1:
            raise ValueError("IcpTrackerConfig: voxel_size and inlier_distance must be > 0, min_points >= 1")
        if not self.icp_distances or not self.register_distances or not self.register_refine_distances:
            raise ValueError("IcpTrackerConfig: icp_distances, register_distances and register_refine_distances "
                             "need at least one stage")


class IcpHandTracker:
    """`PoseTracker` of the Panda hand body with open3d point-to-plane ICP (see module docstring)."""

    def __init__(self, config: IcpTrackerConfig | None = None, model: HandModel | None = None):
        import open3d as o3d

        self._o3d = o3d
        self.config = config or IcpTrackerConfig()
        self.model = model or load_hand_model()
        self._tree = cKDTree(self.model.points_G)  # hand body only: the confidence ignores the fingers
        body = self.model.points_G
        self._body_points = body[body[:, 2] <= FINGER_JOINT_Z]  # surface samples of the part the confidence scores
        self._targets: dict[int, object] = {}
        self._scene = None  # ray-casting scene of the hand mesh (expected_pixels)
        self._hand_target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(self.model.points_G))
        self._hand_target.normals = o3d.utility.Vector3dVector(self.model.normals_G)
        self._target_fpfh = None
        body_hi = self.model.bbox_hi.copy()
        body_hi[2] = min(body_hi[2], FINGER_JOINT_Z)
        self._score_box = (self.model.bbox_lo - self.config.score_margin, body_hi + self.config.score_margin)
        self.reset()

    def reset(self) -> None:
        self._X_CG: np.ndarray | None = None
        self._X_CG_prev: np.ndarray | None = None
        self._missed = 0  # frames since the last fit in which the hand was not found
        self._frame_noise = 0.0  # noise along the rays of the frame being fitted, metres (pointmap_noise)
        self._frame_view: tuple[np.ndarray, int, int] | None = None  # (P, H, W) of that frame's pixel grid
        self._frame_points: tuple[np.ndarray, np.ndarray] | None = None  # that frame's (points_C, valid) grids
        self.opening = MAX_OPENING  # current finger opening estimate, metres

    @property
    def _target(self):
        """Model cloud (hand body + fingers at the current opening, 2 mm steps) with normals, in G."""
        key = int(round(self.opening / 0.002)) if self.config.track_fingers else -1
        if key not in self._targets:
            o3d = self._o3d
            if self.config.track_fingers:
                pts, nrm = self.model.gripper_points(key * 0.002)
            else:
                pts, nrm = self.model.points_G, self.model.normals_G
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
            cloud.normals = o3d.utility.Vector3dVector(nrm)
            self._targets[key] = cloud
        return self._targets[key]

    def _update_opening(self, points_C: np.ndarray, valid: np.ndarray, X_CG: np.ndarray) -> None:
        """Finger opening best supported by the observed points near the fingers (see gripper_state)."""
        if not self.config.track_fingers or not self.model.has_fingers:
            return
        pts = np.asarray(points_C, dtype=np.float64).reshape(-1, 3)[np.asarray(valid, bool).reshape(-1)]
        X_GC = invert_pose(X_CG)
        p_G = pts @ X_GC[:3, :3].T + X_GC[:3, 3]
        reach = MAX_OPENING / 2 + 0.03
        near = p_G[(np.abs(p_G[:, 0]) < 0.02) & (np.abs(p_G[:, 1]) < reach)
                   & (p_G[:, 2] > FINGER_JOINT_Z) & (p_G[:, 2] < FINGER_JOINT_Z + FINGER_LENGTH + 0.005)]
        if len(near) >= 10:
            self.opening = best_supported_opening(near, self.model, self.config.inlier_distance, self.opening)

    def set_pose(self, X_CG: np.ndarray, X_CG_prev: np.ndarray | None = None) -> None:
        """Continue tracking from a pose found elsewhere (e.g. another view of the same hand, same frame C).

        X_CG_prev (the pose one step earlier) keeps the constant-velocity prediction; None drops it.
        """
        self._X_CG = np.asarray(X_CG, dtype=np.float64).copy()
        self._X_CG_prev = None if X_CG_prev is None else np.asarray(X_CG_prev, dtype=np.float64).copy()
        self._missed = 0

    @property
    def X_CG(self) -> np.ndarray | None:
        """The last tracked pose (camera C <- hand G), or None before registration."""
        return None if self._X_CG is None else self._X_CG.copy()

    # ------------------------------------------------------------------ protocol (RGB-D)
    def register(self, rgb: np.ndarray | None, depth: np.ndarray, K: np.ndarray, mask: np.ndarray,
                 X_CG_init: np.ndarray | None = None) -> TrackResult:
        points, valid = depth_to_pointmap(np.asarray(depth, dtype=np.float32), K)
        return self.register_points(points, valid, mask, X_CG_init)

    def track(self, rgb: np.ndarray | None, depth: np.ndarray, K: np.ndarray) -> TrackResult:
        points, valid = depth_to_pointmap(np.asarray(depth, dtype=np.float32), K)
        return self.track_points(points, valid)

    # ------------------------------------------------------------------ pointmaps
    def register_points(self, points_C: np.ndarray, valid: np.ndarray, mask: np.ndarray,
                        X_CG_init: np.ndarray | None = None, *, rgb: np.ndarray | None = None) -> TrackResult:
        """Find the hand from its mask. points_C (H, W, 3) metres in frame C; valid, mask (H, W) bool; rgb is
        not used (accepted like RGB-D trackers on pointmaps, `PointmapRgbdTracker`)."""
        sel = np.asarray(valid, bool) & np.asarray(mask, bool)
        pts = np.asarray(points_C, dtype=np.float64)[sel]
        self._measure_noise(points_C, valid)
        if len(pts) < 10:
            if X_CG_init is not None and not self.config.register_guess_search:
                # A trusted guess (the robot's own pose) of a hand this view cannot see (occluded, out of
                # view): start tracking from it, with confidence 0.
                self.reset()
                self._X_CG = np.asarray(X_CG_init, dtype=np.float64)
                return TrackResult(self._X_CG.copy(), 0.0)
            self.reset()
            raise TrackingLostError(f"register: only {len(pts)} valid depth points inside the hand mask (need >= 10)")
        source = self._cloud(pts)
        if X_CG_init is None:
            X_CG0 = invert_pose(self._global_registration(source))
        else:
            X_CG0 = np.asarray(X_CG_init, dtype=np.float64)
        best: tuple[float, np.ndarray] | None = None
        # Several starts around the guess (turned about the hand's z axis, shifted along its long y axis):
        # the hand's near-symmetric faces give ICP local minima a single start can fall into.
        hand = self._hand_target  # the mask holds the hand body only
        search = X_CG_init is None or self.config.register_guess_search
        if not search and self.in_frame_fraction(X_CG0) < self.config.register_refine_min_in_frame:
            # The view sees too little of the hand to correct the robot's own pose: keep the guess.
            self._X_CG_prev, self._X_CG, self._missed = None, X_CG0.copy(), 0
            self._update_opening(points_C, valid, X_CG0)
            return TrackResult(X_CG0.copy(), self._score(pts, invert_pose(X_CG0)))
        starts = self._register_starts(X_CG0) if search else [X_CG0]
        distances = self.config.register_distances if search else self.config.register_refine_distances
        for X_start in starts:
            X_GC = self._icp(source, invert_pose(X_start), distances, hand)
            if self.config.model_to_scene:
                X_GC = invert_pose(self._icp_model_to_scene(self._cloud(pts), invert_pose(X_GC), hand))
            if not search:
                X_CG = invert_pose(X_GC)
                if (np.linalg.norm(X_CG[:3, 3] - X_start[:3, 3]) > self.config.register_refine_max_translation
                        or rotation_distance(X_CG, X_start) > self.config.register_refine_max_rotation):
                    X_GC = invert_pose(X_start)  # the refinement crept away from a trusted guess: keep the guess
            score = self._score(pts, X_GC)
            if best is None or score > best[0]:
                best = (score, X_GC)
        X_CG = invert_pose(best[1])
        self._X_CG_prev, self._X_CG, self._missed = None, X_CG, 0
        self._update_opening(points_C, valid, X_CG)
        return TrackResult(X_CG, best[0])

    def _measure_noise(self, points_C: np.ndarray, valid: np.ndarray) -> None:
        """What the confidence needs of the frame: its noise along the rays (0: fixed inlier distance) and the
        camera matrix of its pixel grid (None: points without a grid, or a grid no camera fits)."""
        self._frame_noise = pointmap_noise(points_C, valid) if self.config.inlier_noise_factor > 0 else 0.0
        self._frame_view = self._frame_points = None
        points_C = np.asarray(points_C)
        wanted = self.config.expected_visible_fraction > 0 or self.config.weigh_in_frame
        if wanted and points_C.ndim == 3:
            P, rms = fit_projection_matrix(points_C, valid)
            if P is not None and rms <= self.config.projection_max_rms:
                self._frame_view = (P, points_C.shape[0], points_C.shape[1])
                self._frame_points = (points_C, np.asarray(valid, bool))

    def _project_body(self, X_CG: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) and depths (N,) of the hand body's surface samples at pose X_CG in the last frame's view."""
        X = np.asarray(X_CG, dtype=np.float64)
        return apply_projection_matrix(self._frame_view[0], self._body_points @ X[:3, :3].T + X[:3, 3])

    def in_frame_fraction(self, X_CG: np.ndarray) -> float:
        """Fraction of the hand body's surface samples (below the finger joints) at pose X_CG (camera C,
        metres) that project inside the last frame's image, in front of its camera; 1.0 when that frame had
        no usable pixel grid (see `_measure_noise`)."""
        if self._frame_view is None or len(self._body_points) == 0:
            return 1.0
        _, H, W = self._frame_view
        uv, z = self._project_body(X_CG)
        inside = (z > 0) & np.all(uv >= -0.5, axis=1) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] <= H - 0.5)
        return float(np.count_nonzero(inside) / len(inside))

    def expected_pixels(self, X_CG: np.ndarray) -> int | None:
        """Pixels of the last frame's view that would see the hand body (below the finger joints) at pose
        X_CG (camera C, metres) if nothing hid it: rays through the pixel centres cast at the hand mesh.
        None when that frame had no usable pixel grid (see `_measure_noise`) or the model has no mesh."""
        if self._frame_view is None or self.model.mesh_vertices_G is None:
            return None
        P, H, W = self._frame_view
        X = np.asarray(X_CG, dtype=np.float64)
        uv, z = self._project_body(X)
        uv = uv[z > 0]
        if len(uv) == 0:
            return 0
        u0, v0 = np.maximum(np.floor(uv.min(0)) - 1, 0).astype(int)
        u1, v1 = np.minimum(np.ceil(uv.max(0)) + 1, [W - 1, H - 1]).astype(int)
        if u0 > u1 or v0 > v1:
            return 0
        vv, uu = np.mgrid[v0:v1 + 1, u0:u1 + 1]
        M_inv = np.linalg.inv(P[:, :3])
        centre_C = -M_inv @ P[:, 3]  # the view's optical centre in frame C
        dirs_C = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], axis=1) @ M_inv.T  # depth 1 along the axis
        X_GC = invert_pose(X)
        origin_G = X_GC[:3, :3] @ centre_C + X_GC[:3, 3]
        dirs_G = dirs_C @ X_GC[:3, :3].T
        rays = np.hstack([np.broadcast_to(origin_G, dirs_G.shape), dirs_G]).astype(np.float32)
        t = self._ray_scene.cast_rays(self._o3d.core.Tensor(rays))["t_hit"].numpy()  # = depth along the view's axis
        hit = np.isfinite(t)
        hit[hit] = origin_G[2] + t[hit] * dirs_G[hit, 2] <= self._score_box[1][2]  # the part the confidence scores
        if self.config.occlusion_margin is not None:
            # Pixels whose observed point lies in front of the hand see something hiding it (the arm above the
            # hand, a bowl's rim, a shelf): the hand cannot be seen there, so it is not expected there.
            points, valid = self._frame_points
            rows, cols = vv.ravel()[hit], uu.ravel()[hit]
            seen = valid[rows, cols]
            depth = points[rows, cols] @ P[2, :3] + P[2, 3]
            in_front = seen & (depth < t[hit] - self.config.occlusion_margin)
            return int(np.count_nonzero(~in_front))
        return int(np.count_nonzero(hit))

    @property
    def _ray_scene(self):
        """open3d ray-casting scene of the hand body mesh in G (built on first use)."""
        if self._scene is None:
            o3d = self._o3d
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(self.model.mesh_vertices_G.astype(np.float32)),
                                o3d.core.Tensor(self.model.mesh_triangles.astype(np.uint32)))
            self._scene = scene
        return self._scene

    def _register_starts(self, X_CG0: np.ndarray) -> list[np.ndarray]:
        starts = [X_CG0]
        for yaw in self.config.register_yaw_offsets:
            c, s = np.cos(yaw), np.sin(yaw)
            R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            starts.append(X_CG0 @ np.block([[R, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]]))
        for dy in self.config.register_shifts:
            shift = np.eye(4)
            shift[1, 3] = dy
            starts.append(X_CG0 @ shift)
        return starts

    def track_points(self, points_C: np.ndarray, valid: np.ndarray, *, rgb: np.ndarray | None = None) -> TrackResult:
        """Follow the hand into this frame. points_C (H, W, 3) or (N, 3) metres in frame C; valid matching; rgb
        is not used."""
        if self._X_CG is None:
            raise TrackingLostError("track called before a successful register")
        points_C, valid = np.asarray(points_C, dtype=np.float64), np.asarray(valid, bool)
        self._measure_noise(points_C, valid)
        # Start from the constant-velocity prediction and from the last pose; keep the better fit. After
        # frames without the hand both reach over the frames since the last fit (up to max_gap_frames).
        frames = min(self._missed + 1, self.config.max_gap_frames)
        starts = [self._predicted_pose(frames)]
        if self._X_CG_prev is not None and self.config.constant_velocity:
            starts.append(self._X_CG)
        best = self._best_fit(points_C, valid, starts, frames=frames)
        if best is None or best[0] < self.config.recover_below:
            # Poor fit: also try the registration starts around the prediction before giving up.
            more = self._best_fit(points_C, valid, self._register_starts(starts[0])[1:], reference=starts[0],
                                  frames=frames)
            if more is not None and (best is None or more[0] > best[0]):
                best = more
        if best is None or best[0] <= 0:
            self._missed += 1
            return TrackResult(starts[0], 0.0)
        X_CG = invert_pose(best[1])
        if self._missed and self._X_CG_prev is not None:
            # Back after a gap: keep the per-frame motion from before it for the next prediction.
            X_CG_prev = X_CG @ invert_pose(invert_pose(self._X_CG_prev) @ self._X_CG)
        else:
            X_CG_prev = self._X_CG
        self._X_CG_prev, self._X_CG, self._missed = X_CG_prev, X_CG, 0
        self._update_opening(points_C, valid, X_CG)
        return TrackResult(X_CG, best[0])

    def _best_fit(self, points_C: np.ndarray, valid: np.ndarray, starts: list[np.ndarray],
                  reference: np.ndarray | None = None, frames: int = 1) -> tuple[float, np.ndarray] | None:
        """ICP from each start; the (score, X_GC) with the highest confidence, None without enough points.
        A result farther than `frames` steps' motion (max_step_*) from `reference` (default: from its own
        start) is dropped: the hand cannot have moved there since the last fit."""
        max_translation = self.config.max_step_translation * frames
        max_rotation = self.config.max_step_rotation * frames
        best: tuple[float, np.ndarray] | None = None
        for X_start in starts:
            X_ref = X_start if reference is None else reference
            pts = self._crop(points_C, valid, X_start)
            if len(pts) < 10:
                continue
            X_GC = self._icp(self._cloud(pts), invert_pose(X_start), self.config.icp_distances)
            score = None
            if self.config.model_to_scene:
                X_GC_m = invert_pose(self._icp_model_to_scene(self._cloud(pts), invert_pose(X_GC)))
                drop = self.config.model_to_scene_max_score_drop
                if drop is None:
                    X_GC = X_GC_m
                else:
                    before = self._score(self._crop(points_C, valid, invert_pose(X_GC)), X_GC)
                    after = self._score(self._crop(points_C, valid, invert_pose(X_GC_m)), X_GC_m)
                    if after >= before - drop:
                        X_GC, score = X_GC_m, after
                    else:
                        score = before
            X_CG = invert_pose(X_GC)
            if (np.linalg.norm(X_CG[:3, 3] - X_ref[:3, 3]) > max_translation
                    or rotation_distance(X_CG, X_ref) > max_rotation):
                continue  # implausible jump from this start: ICP slid onto something else
            if score is None:
                score = self._score(self._crop(points_C, valid, X_CG), X_GC)
            if best is None or score > best[0]:
                best = (score, X_GC)
        return best

    # ------------------------------------------------------------------ internals
    def _predicted_pose(self, frames: int = 1) -> np.ndarray:
        """The pose `frames` frames after the last fit, continuing its last motion (constant velocity)."""
        if not self.config.constant_velocity or self._X_CG_prev is None:
            return self._X_CG
        delta = invert_pose(self._X_CG_prev) @ self._X_CG  # last motion, in the hand frame
        return self._X_CG @ np.linalg.matrix_power(delta, int(frames))

    def _crop(self, points: np.ndarray, valid: np.ndarray, X_CG: np.ndarray) -> np.ndarray:
        pts = points.reshape(-1, 3)[valid.reshape(-1)]
        X_GC = invert_pose(X_CG)
        p_G = pts @ X_GC[:3, :3].T + X_GC[:3, 3]
        m = np.array([self.config.crop_margin, self.config.crop_margin, self.config.crop_margin_z])
        lo = self.model.bbox_lo - m
        hi = self.model.bbox_hi + m
        if self.config.track_fingers:
            hi[2] = FINGER_JOINT_Z + FINGER_LENGTH + self.config.crop_margin_z
        inside = np.all((p_G >= lo) & (p_G <= hi), axis=1)
        return pts[inside]

    def _cloud(self, pts: np.ndarray):
        cloud = self._o3d.geometry.PointCloud(self._o3d.utility.Vector3dVector(pts))
        return cloud.voxel_down_sample(self.config.voxel_size)

    def _icp(self, source, X_GC: np.ndarray, distances, target=None) -> np.ndarray:
        reg = self._o3d.pipelines.registration
        criteria = reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                              max_iteration=self.config.icp_iterations)
        T = X_GC
        for d in distances:
            estimation = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=d))
            T = reg.registration_icp(source, self._target if target is None else target, d, T, estimation,
                                     criteria).transformation
        return np.asarray(T)

    def _icp_model_to_scene(self, scene, X_CG: np.ndarray, model=None) -> np.ndarray:
        """Align the hand model (source) to the observed points (target, with estimated normals)."""
        reg = self._o3d.pipelines.registration
        scene.estimate_normals(self._o3d.geometry.KDTreeSearchParamHybrid(radius=3 * self.config.voxel_size, max_nn=20))
        criteria = reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                              max_iteration=self.config.icp_iterations)
        T = X_CG
        for d in self.config.model_to_scene_distances:
            estimation = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=d))
            T = reg.registration_icp(self._target if model is None else model, scene, d, T, estimation,
                                     criteria).transformation
        return np.asarray(T)

    def _global_registration(self, source) -> np.ndarray:
        reg = self._o3d.pipelines.registration
        r = self.config.fpfh_radius
        if self._target_fpfh is None:
            self._target_fpfh = reg.compute_fpfh_feature(
                self._hand_target, self._o3d.geometry.KDTreeSearchParamHybrid(radius=r, max_nn=100))
        source.estimate_normals(self._o3d.geometry.KDTreeSearchParamHybrid(radius=r / 2, max_nn=30))
        # Observed normals must face the camera (origin of C).
        source.orient_normals_towards_camera_location(np.zeros(3))
        src_fpfh = reg.compute_fpfh_feature(source, self._o3d.geometry.KDTreeSearchParamHybrid(radius=r, max_nn=100))
        self._o3d.utility.random.seed(self.config.seed)
        dist = 1.5 * self.config.voxel_size + 0.004
        result = reg.registration_ransac_based_on_feature_matching(
            source, self._hand_target, src_fpfh, self._target_fpfh, True, dist,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
            reg.RANSACConvergenceCriteria(self.config.ransac_iterations, 0.999),
        )
        return np.asarray(result.transformation)

    def _score(self, pts_C: np.ndarray, X_GC: np.ndarray) -> float:
        p_G = pts_C @ X_GC[:3, :3].T + X_GC[:3, 3]
        lo, hi = self._score_box
        inside = p_G[np.all((p_G >= lo) & (p_G <= hi), axis=1)]
        if len(inside) == 0:
            return 0.0
        dist, _ = self._tree.query(inside, k=1)
        threshold = max(self.config.inlier_distance, self.config.inlier_noise_factor * self._frame_noise)
        inliers = int(np.count_nonzero(dist < threshold))
        needed = self.config.min_points
        if inliers < needed:  # only then can a smaller view of the hand need fewer
            needed = self.needed_inliers(invert_pose(X_GC))
        score = inliers / len(inside) * min(1.0, inliers / needed)
        if self.config.weigh_in_frame:
            score *= self.in_frame_fraction(invert_pose(X_GC))
        return float(score)

    def needed_inliers(self, X_CG: np.ndarray) -> float:
        """Inliers for full confidence at pose X_CG: `min_points`, lowered on a pixel grid to
        `expected_visible_fraction` of the hand's expected pixels (not below `min_points_floor`)."""
        cfg = self.config
        expected = self.expected_pixels(X_CG) if cfg.expected_visible_fraction > 0 else None
        if expected is None:
            return float(cfg.min_points)
        return float(min(cfg.min_points, max(cfg.min_points_floor, cfg.expected_visible_fraction * expected)))

