"""The Franka Panda hand: its frames, finger geometry and a surface model for tracking.

Frames: G is the hand frame `panda_hand` (origin at the flange, +z towards the fingertips, the fingers
slide along +-y); E is the tool-centre point, G moved 0.1034 m along +z (between the fingertips). The
finger joints sit at z = 0.0584 m; finger k's inner face is at y = +-q_k where q_k = width / 2.

The surface model is read from the hand's visual mesh (the `franka_description` glTF of drake_models,
or any mesh open3d reads, given in the hand frame). glTF files are +y-up; like Drake, we turn them into
the +z-up hand frame with (x, y, z) -> (x, -z, y).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "X_GE",
    "FINGER_JOINT_Z",
    "FINGER_LENGTH",
    "FINGER_DEPTH",
    "MAX_OPENING",
    "HandModel",
    "load_hand_model",
    "load_hand_mesh",
    "finger_boxes",
    "default_hand_mesh",
]

# E (tool-centre point) in the hand frame G, metres.
X_GE = np.eye(4)
X_GE[2, 3] = 0.1034
FINGER_JOINT_Z = 0.0584  # z of the finger joints (finger base) in G, metres
FINGER_LENGTH = 0.054  # finger extent along +z from its base, metres
FINGER_DEPTH = 0.026  # finger extent along +-y outward from its inner face, metres
FINGER_HALF_WIDTH = 0.0105  # half extent of a finger along x, metres
MAX_OPENING = 0.08  # distance between the finger inner faces when fully open, metres

_HAND_MESH_IN_DRAKE_MODELS = Path("franka_description/meshes/visual/hand.gltf")


def default_hand_mesh() -> Path:
    """Where the Panda hand's visual mesh is: $GEO4D_HAND_MESH, else inside $GEO4D_DRAKE_MODELS, else
    inside a `shared/drake_models` folder beside this checkout. Raises FileNotFoundError naming the
    places searched."""
    tried = []
    if os.environ.get("GEO4D_HAND_MESH"):
        p = Path(os.environ["GEO4D_HAND_MESH"])
        if p.is_file():
            return p
        tried.append(str(p))
    roots = []
    if os.environ.get("GEO4D_DRAKE_MODELS"):
        roots.append(Path(os.environ["GEO4D_DRAKE_MODELS"]))
    roots.append(Path(__file__).resolve().parents[3] / "shared" / "drake_models")
    for root in roots:
        p = root / _HAND_MESH_IN_DRAKE_MODELS
        if p.is_file():
            return p
        tried.append(str(p))
    raise FileNotFoundError(
        "Panda hand mesh not found; set GEO4D_HAND_MESH to the hand's visual mesh (in the panda_hand frame) "
        f"or GEO4D_DRAKE_MODELS to a drake_models folder. Tried: {', '.join(tried)}"
    )


@dataclass
class HandModel:
    """Surface samples of the hand body in the hand frame G, and of one finger in its own frame F.

    The left finger frame is G moved to (0, q, FINGER_JOINT_Z), the right finger frame is G turned by pi
    about z and moved to (0, -q, FINGER_JOINT_Z), with q = opening / 2 (the URDF's finger joints).
    """

    points_G: np.ndarray  # (N, 3) float64 metres, hand body
    normals_G: np.ndarray  # (N, 3) unit outward normals
    bbox_lo: np.ndarray  # (3,) lower corner of the hand body's bounding box in G, metres
    bbox_hi: np.ndarray  # (3,) upper corner, metres
    finger_points_F: np.ndarray | None = None  # (M, 3) one finger's surface in its frame F, metres
    finger_normals_F: np.ndarray | None = None  # (M, 3)
    mesh_vertices_G: np.ndarray | None = None  # (V, 3) hand body mesh vertices in G, metres (for ray casting)
    mesh_triangles: np.ndarray | None = None  # (F, 3) int32 vertex indices of its triangles

    @property
    def has_fingers(self) -> bool:
        return self.finger_points_F is not None and len(self.finger_points_F) > 0

    def finger_points(self, opening: float) -> tuple[np.ndarray, np.ndarray]:
        """Surface points (G frame, metres) of the left and right finger at `opening` (metres)."""
        q = float(np.clip(opening, 0.0, MAX_OPENING)) / 2
        pf = self.finger_points_F
        return pf + [0.0, q, FINGER_JOINT_Z], pf * _FLIP_Z + [0.0, -q, FINGER_JOINT_Z]

    def gripper_points(self, opening: float) -> tuple[np.ndarray, np.ndarray]:
        """Points and normals (G frame) of the hand body plus both fingers at `opening` (metres)."""
        if not self.has_fingers:
            return self.points_G, self.normals_G
        left, right = self.finger_points(opening)
        nf = self.finger_normals_F
        return (np.concatenate([self.points_G, left, right]),
                np.concatenate([self.normals_G, nf, nf * _FLIP_Z]))


_FLIP_Z = np.array([-1.0, -1.0, 1.0])  # rotation by pi about z (the right finger's frame)


def load_hand_mesh(path: str | os.PathLike | None = None):
    """The hand's visual mesh as an open3d TriangleMesh in the hand frame G (glTF converted from +y-up)."""
    import open3d as o3d

    path = Path(path) if path is not None else default_hand_mesh()
    if not path.is_file():
        raise FileNotFoundError(f"hand mesh {path} does not exist")
    # The drake_models glTFs reference KTX2 textures open3d cannot read; only the geometry is needed here.
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) == 0:
        raise ValueError(f"{path}: no triangles read (unsupported or empty mesh)")
    if path.suffix.lower() in (".gltf", ".glb"):
        R = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # +y-up glTF -> +z-up hand frame
        mesh.rotate(R, center=(0.0, 0.0, 0.0))
    mesh.compute_triangle_normals()
    mesh.compute_vertex_normals()
    return mesh


def finger_boxes(opening: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Axis-aligned boxes (lo, hi) in G approximating the left (+y) and right (-y) fingers at an opening (m)."""
    q = float(np.clip(opening, 0.0, MAX_OPENING)) / 2
    z0, z1 = FINGER_JOINT_Z, FINGER_JOINT_Z + FINGER_LENGTH
    x = FINGER_HALF_WIDTH
    return [(np.array([-x, q, z0]), np.array([x, q + FINGER_DEPTH, z1])),
            (np.array([-x, -q - FINGER_DEPTH, z0]), np.array([x, -q, z1]))]


def load_hand_model(path: str | os.PathLike | None = None, *, num_points: int = 4000, seed: int = 0) -> HandModel:
    """Sample `num_points` points uniformly over the hand mesh surface (open3d), with normals.

    Args:
        path: mesh file in the hand frame (glTF files are converted from +y-up); default `default_hand_mesh()`.
        num_points: surface samples (uniform by area).
        seed: seeds the sampling, so the model is the same on every run.
    """
    path = Path(path) if path is not None else default_hand_mesh()
    mesh = load_hand_mesh(path)
    pts, nrm = _sample(mesh, num_points, seed)
    verts = np.asarray(mesh.vertices)
    finger_pts = finger_nrm = None
    finger_path = path.with_name("finger" + path.suffix)
    if finger_path.is_file():
        finger = load_hand_mesh(finger_path)
        # The URDF places the finger mesh with a +pi/2 turn about x in the finger frame.
        finger.rotate(np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), center=(0.0, 0.0, 0.0))
        finger_pts, finger_nrm = _sample(finger, max(num_points // 4, 200), seed + 1)
    return HandModel(pts, nrm, verts.min(0), verts.max(0), finger_pts, finger_nrm,
                     verts.astype(np.float64), np.asarray(mesh.triangles, dtype=np.int32))


def _sample(mesh, num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    o3d.utility.random.seed(seed)
    cloud = mesh.sample_points_uniformly(number_of_points=num_points, use_triangle_normal=True)
    pts = np.asarray(cloud.points, dtype=np.float64)
    nrm = np.asarray(cloud.normals, dtype=np.float64)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return pts, nrm
