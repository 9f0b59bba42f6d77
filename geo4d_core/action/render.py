"""Ray-cast renderer of the Panda hand (visual mesh + box fingers, optional table) with open3d.

Used to check the tracker and the gripper-state test on exactly known poses and openings (tests,
benchmarks); points are in the camera frame C (OpenCV axes), metres.
"""

from __future__ import annotations

import numpy as np

from geo4d_core.action.hand import finger_boxes, load_hand_mesh
from geo4d_core.geometry.poses import look_at

__all__ = ["HandScene", "camera_looking_at", "HAND_LABEL", "LEFT_LABEL", "RIGHT_LABEL", "TABLE_LABEL"]

HAND_LABEL, LEFT_LABEL, RIGHT_LABEL, TABLE_LABEL = 1, 2, 3, 4


def _box_mesh(lo, hi):
    import open3d as o3d

    box = o3d.geometry.TriangleMesh.create_box(*(np.asarray(hi) - np.asarray(lo)))
    box.translate(np.asarray(lo, dtype=np.float64))
    return box


class HandScene:
    """Renders points / validity / labels of the hand at a pose X_CG in a pinhole camera (intrinsics `K`)."""

    def __init__(self, height: int = 256, width: int = 320, f: float = 280.0):
        import open3d as o3d

        self.o3d = o3d
        self.height, self.width = height, width
        self.K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        self.hand = load_hand_mesh()

    def render(self, X_CG: np.ndarray, opening: float, table_z_G: float | None = None,
               boxes_G: list[tuple[np.ndarray, np.ndarray]] | None = None):
        """Points (H, W, 3) in C, valid (H, W), labels (H, W) of the hand at X_CG (camera frame), fingers at
        `opening` metres, a table slab at z = table_z_G in the hand frame if given, and extra axis-aligned
        boxes (lo, hi) in the hand frame (e.g. a grasped object; label TABLE_LABEL + 1)."""
        o3d = self.o3d
        scene = o3d.t.geometry.RaycastingScene()
        parts = [(self.hand, HAND_LABEL)]
        for (lo, hi), lab in zip(finger_boxes(opening), (LEFT_LABEL, RIGHT_LABEL)):
            parts.append((_box_mesh(lo, hi), lab))
        if table_z_G is not None:
            parts.append((_box_mesh([-0.3, -0.3, table_z_G], [0.3, 0.3, table_z_G + 0.01]), TABLE_LABEL))
        for lo, hi in boxes_G or []:
            parts.append((_box_mesh(lo, hi), TABLE_LABEL + 1))
        ids = {}
        for mesh, lab in parts:
            m = o3d.geometry.TriangleMesh(mesh)
            m.transform(X_CG)
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):  # materials are not needed
                ids[scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))] = lab
        u, v = np.meshgrid(np.arange(self.width), np.arange(self.height))
        d = np.stack([(u - self.K[0, 2]) / self.K[0, 0], (v - self.K[1, 2]) / self.K[1, 1], np.ones_like(u, float)], -1)
        rays = np.concatenate([np.zeros_like(d), d], -1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        t = hit["t_hit"].numpy()
        valid = np.isfinite(t)
        points = np.where(valid[..., None], d * np.where(valid, t, 0)[..., None], 0).astype(np.float32)
        geom = hit["geometry_ids"].numpy()
        labels = np.zeros(valid.shape, np.int32)
        for gid, lab in ids.items():
            labels[valid & (geom == gid)] = lab
        return points, valid, labels


def camera_looking_at(target_W: np.ndarray, eye_W: np.ndarray) -> np.ndarray:
    """X_WC of a camera at eye looking at target (OpenCV axes)."""
    return look_at(eye_W, target_W)
