"""Synthetic tabletop episodes rendered by exact ray casting, for tests and the demo.

A small analytic scene — a table, a few spheres and a moving parallel-jaw gripper made of boxes — is
ray cast from K and X_WC (through `raymap_from_camera`), which gives exact colour, depth and label
images with no renderer dependency. The gripper follows a scripted pick-like trajectory (approach,
close, lift, carry) so consecutive frames differ the way robot episodes do.

World frame W: origin at the table centre, +z up, table top at z = 0. Metres, seconds, radians.
The end-effector frame E is the gripper's hand frame: origin between the finger tips, +z pointing
from the hand towards the fingers (down when grasping from above), +y along the finger opening.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from geo4d_core.data.cameras import sample_cameras
from geo4d_core.data.episode import CameraFrame, CameraSpec
from geo4d_core.geometry import interpolate_pose, make_pose, raymap_from_camera

BACKGROUND_LABEL = 32766  # same value as Drake's default background render label
TABLE_LABEL = 1
HAND_LABEL = 4
LEFT_FINGER_LABEL = 5
RIGHT_FINGER_LABEL = 6
OBJECT_LABEL_BASE = 10

_HAND_HALF = np.array([0.025, 0.09, 0.03])  # hand box half extents in E, metres
_FINGER_HALF = np.array([0.01, 0.008, 0.025])  # finger box half extents in E, metres
_OPEN_WIDTH = 0.08  # gripper opening when open, metres
_CLOSED_WIDTH = 0.03  # gripper opening when closed on an object, metres


@dataclass
class SyntheticEpisodeConfig:
    """What `make_synthetic_episode` renders."""

    height: int = 96  # image height, pixels
    width: int = 128  # image width, pixels
    num_frames: int = 24  # number of time steps
    fps: float = 10.0  # frame rate, Hz
    num_cameras: int = 4  # cameras, sampled on the paper's shell (see `sample_cameras`)
    num_test_cameras: int = 2  # the last cameras are marked "test", the others "train"
    num_objects: int = 2  # spheres on the table
    seed: int = 0  # seeds object placement, cameras and trajectory


@dataclass
class Box:
    """An oriented box primitive: pose X_WB of its centre, half extents (metres), colour, label."""

    X_WB: np.ndarray  # (4, 4) pose of the box centre in the world
    half: np.ndarray  # (3,) half extents along the box axes, metres
    color: np.ndarray  # (3,) RGB 0..255
    label: int  # render label


@dataclass
class Sphere:
    """A sphere primitive."""

    p_W: np.ndarray  # (3,) centre in the world, metres
    radius: float  # metres
    color: np.ndarray  # (3,) RGB 0..255
    label: int  # render label


def gripper_boxes(X_WE: np.ndarray, width: float) -> list[Box]:
    """The hand and two finger boxes of a gripper at end-effector pose X_WE with opening `width` (m)."""
    hand = make_pose(np.eye(3), np.array([0.0, 0.0, -2 * _FINGER_HALF[2] - _HAND_HALF[2]]))
    offset = 0.5 * width + _FINGER_HALF[1]
    left = make_pose(np.eye(3), np.array([0.0, offset, -_FINGER_HALF[2]]))
    right = make_pose(np.eye(3), np.array([0.0, -offset, -_FINGER_HALF[2]]))
    grey, dark = np.array([200.0, 200.0, 210.0]), np.array([60.0, 60.0, 70.0])
    return [
        Box(X_WE @ hand, _HAND_HALF, grey, HAND_LABEL),
        Box(X_WE @ left, _FINGER_HALF, dark, LEFT_FINGER_LABEL),
        Box(X_WE @ right, _FINGER_HALF, dark, RIGHT_FINGER_LABEL),
    ]


def _hit_sphere(o: np.ndarray, d: np.ndarray, s: Sphere) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter of the first hit (inf if none) and the world normal there, for rays o + t d."""
    oc = o - s.p_W
    b = d @ oc
    c = oc @ oc - s.radius**2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    normal = (o + np.where(np.isfinite(t), t, 0.0)[..., None] * d - s.p_W) / s.radius
    return t, normal


def _hit_box(o: np.ndarray, d: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Slab test in the box frame; ray parameter of the entry point (inf if none) and world normal."""
    R, p = box.X_WB[:3, :3], box.X_WB[:3, 3]
    o_B = R.T @ (o - p)
    d_B = d @ R
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-box.half - o_B) / d_B
        t2 = (box.half - o_B) / d_B
    t_near_axes = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    t_far = np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(axis=-1)
    t_near = t_near_axes.max(axis=-1)
    t = np.where((t_far >= t_near) & (t_near > 1e-6), t_near, np.inf)
    axis = t_near_axes.argmax(axis=-1)[..., None]
    n_B = np.zeros(d.shape)
    np.put_along_axis(n_B, axis, -np.sign(np.take_along_axis(d_B, axis, -1)), -1)
    return t, n_B @ R.T


def render(camera: CameraSpec, boxes: list[Box], spheres: list[Sphere]) -> CameraFrame:
    """Ray cast the primitives into `camera`: colour (uint8), depth (float32 metres along the camera's
    optical axis, 0 where nothing is hit) and render labels (int32, BACKGROUND_LABEL where empty)."""
    rays = raymap_from_camera(camera.K, camera.X_WC, camera.height, camera.width, kind="origin_direction")
    o, d = camera.X_WC[:3, 3], rays[..., 3:]
    best_t = np.full(d.shape[:2], np.inf)
    normal = np.zeros(d.shape)
    color = np.zeros(d.shape)
    label = np.full(d.shape[:2], BACKGROUND_LABEL, dtype=np.int32)
    hits = [(_hit_box(o, d, b), b) for b in boxes] + [(_hit_sphere(o, d, s), s) for s in spheres]
    for (t, n), prim in hits:
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        normal[closer] = n[closer]
        color[closer] = prim.color
        label[closer] = prim.label
    hit = np.isfinite(best_t)
    light = np.array([0.3, -0.2, 0.93]) / np.linalg.norm([0.3, -0.2, 0.93])
    shade = 0.45 + 0.55 * np.abs(normal @ light)
    p_W = o + np.where(hit, best_t, 0.0)[..., None] * d
    checker = ((np.floor(p_W[..., 0] / 0.05) + np.floor(p_W[..., 1] / 0.05)) % 2)[..., None]
    color = np.where((label == TABLE_LABEL)[..., None], color * (0.8 + 0.2 * checker), color)
    color = np.where(hit[..., None], color * shade[..., None], np.array([235.0, 235.0, 240.0]))
    depth = np.where(hit, best_t * (d @ camera.X_WC[:3, 2]), 0.0).astype(np.float32)
    return CameraFrame(np.clip(np.rint(color), 0, 255).astype(np.uint8), depth, label)


@dataclass
class SyntheticEpisode:
    """A rendered synthetic episode, ready for `EpisodeWriter` (or `write`)."""

    cameras: list[CameraSpec]  # cameras with intrinsics, poses X_WC and train/test split
    timestamps: np.ndarray  # (T,) seconds
    X_WE: np.ndarray  # (T, 1, 4, 4) end-effector poses in the world
    gripper_width: np.ndarray  # (T, 1) finger opening, metres
    frames: list[dict[str, CameraFrame]]  # per time step, camera name -> rendered frame
    label_parts: dict[str, list[int]]  # semantic part -> render label values
    seed: int  # the seed the episode was generated from

    def write(self, path, *, task: str = "SyntheticPickAndCarry", overwrite: bool = False):
        """Write the episode in the geo4d episode format and return its final path."""
        from geo4d_core.data.episode import EpisodeWriter

        with EpisodeWriter(path, task=task, seed=self.seed, cameras=self.cameras, num_arms=1,
                           label_parts=self.label_parts, overwrite=overwrite) as writer:
            for t, frames in enumerate(self.frames):
                writer.append(self.timestamps[t], self.X_WE[t], self.gripper_width[t], frames)
            return writer.close(success=True)


def _pose(p_W: np.ndarray, yaw: float) -> np.ndarray:
    """Gripper pose pointing down (E's +z along world -z) with the given yaw about world z."""
    R = (Rotation.from_euler("z", yaw) * Rotation.from_euler("x", np.pi)).as_matrix()
    return make_pose(R, p_W)


def _trajectory(rng: np.random.Generator, pick_W: np.ndarray, place_W: np.ndarray, num_frames: int):
    """Approach, close, lift and carry: X_WE (T, 4, 4) and the finger opening (T,) in metres."""
    yaw0, yaw1 = rng.uniform(-0.6, 0.6, size=2)
    grasp = pick_W + [0.0, 0.0, 0.01]
    waypoints = [  # (phase in [0, 1], pose, opening)
        (0.0, _pose(pick_W + [-0.1, 0.05, 0.26], yaw0), _OPEN_WIDTH),
        (0.3, _pose(grasp, yaw0), _OPEN_WIDTH),
        (0.4, _pose(grasp, yaw0), _CLOSED_WIDTH),
        (0.65, _pose(pick_W + [0.0, 0.0, 0.18], yaw0), _CLOSED_WIDTH),
        (1.0, _pose(place_W + [0.0, 0.0, 0.15], yaw1), _CLOSED_WIDTH),
    ]
    phases = np.array([w[0] for w in waypoints])
    X_WE = np.empty((num_frames, 4, 4))
    width = np.empty(num_frames)
    for i, s in enumerate(np.linspace(0.0, 1.0, num_frames)):
        k = min(int(np.searchsorted(phases, s, side="right")) - 1, len(waypoints) - 2)
        (s0, X0, w0), (s1, X1, w1) = waypoints[k], waypoints[k + 1]
        a = (s - s0) / (s1 - s0)
        X_WE[i] = interpolate_pose(X0, X1, a)
        width[i] = w0 + a * (w1 - w0)
    return X_WE, width


def make_synthetic_episode(config: SyntheticEpisodeConfig | None = None) -> SyntheticEpisode:
    """Generate and render a synthetic episode (deterministic for a given config.seed).

    The picked sphere moves with the gripper once the fingers have closed, so the scene changes like a
    real manipulation episode.
    """
    cfg = config or SyntheticEpisodeConfig()
    rng = np.random.default_rng(cfg.seed)
    table = Box(make_pose(np.eye(3), np.array([0.0, 0.0, -0.02])), np.array([0.6, 0.4, 0.02]),
                np.array([170.0, 130.0, 90.0]), TABLE_LABEL)
    spheres = []
    for i in range(cfg.num_objects):
        r = rng.uniform(0.03, 0.05)
        p = np.array([rng.uniform(-0.25, 0.25), rng.uniform(-0.2, 0.2), r])
        spheres.append(Sphere(p, r, rng.uniform(40, 255, size=3), OBJECT_LABEL_BASE + i))
    cameras = sample_cameras(rng, cfg.num_cameras, height=cfg.height, width=cfg.width,
                             num_test=cfg.num_test_cameras)
    place = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.0])
    X_WE, width = _trajectory(rng, spheres[0].p_W.copy(), place, cfg.num_frames)
    p_E_object = None  # the picked sphere's centre in E once grasped
    frames = []
    for t in range(cfg.num_frames):
        if p_E_object is None and width[t] <= _CLOSED_WIDTH + 1e-9:
            p_E_object = (np.linalg.inv(X_WE[t]) @ np.append(spheres[0].p_W, 1.0))[:3]
        if p_E_object is not None:
            spheres[0].p_W = X_WE[t][:3, :3] @ p_E_object + X_WE[t][:3, 3]
        boxes = [table, *gripper_boxes(X_WE[t], width[t])]
        frames.append({cam.name: render(cam, boxes, spheres) for cam in cameras})
    label_parts = {
        "background": [BACKGROUND_LABEL],
        "table": [TABLE_LABEL],
        "hand": [HAND_LABEL],
        "left_finger": [LEFT_FINGER_LABEL],
        "right_finger": [RIGHT_FINGER_LABEL],
        "gripper": [HAND_LABEL, LEFT_FINGER_LABEL, RIGHT_FINGER_LABEL],
        **{f"object_{i}": [OBJECT_LABEL_BASE + i] for i in range(cfg.num_objects)},
    }
    return SyntheticEpisode(
        cameras=cameras,
        timestamps=np.arange(cfg.num_frames) / cfg.fps,
        X_WE=X_WE[:, None],
        gripper_width=width[:, None].astype(np.float32),
        frames=frames,
        label_parts=label_parts,
        seed=cfg.seed,
    )
