"""Hypothesis strategies for the geometry tests, served through the session fixture `geo`.

Test modules draw from them with `@given(data=st.data())` and `data.draw(geo.camera())`, which keeps
them independent of how pytest imports this conftest (no `from conftest import ...`).

Random cameras: `look_at` from an eye on a 0.7-1.2 m shell around the origin toward a target within
0.1 m of it (elevation limited so +z up is never parallel to the view), a random roll about the
optical axis, focal length 150-600 px, fy/fx in [0.9, 1.1], principal point within 3 px of the image
centre, small images (about 24×32) so that the tests stay fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

from geo4d_core.geometry import look_at

SIZES = [(24, 32), (32, 24), (30, 40), (17, 23)]


@dataclass
class Camera:
    K: np.ndarray  # (3, 3) intrinsics, pixels
    X_WC: np.ndarray  # (4, 4) camera pose in the world (OpenCV axes), metres
    height: int
    width: int


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    X = np.eye(4)
    X[:2, :2] = [[c, -s], [s, c]]
    return X


@st.composite
def poses(draw) -> np.ndarray:
    """A look-at camera pose X_WC on the 0.7-1.2 m shell, with a random roll."""
    radius = draw(st.floats(0.7, 1.2))
    azimuth = draw(st.floats(0.0, 2.0 * math.pi))
    elevation = draw(st.floats(-1.2, 1.2))
    eye = radius * np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    target = np.array([draw(st.floats(-0.1, 0.1)) for _ in range(3)])
    roll = draw(st.floats(-math.pi, math.pi))
    return look_at(eye, target) @ _rot_z(roll)


@st.composite
def intrinsics(draw, height: int, width: int, skew: bool = False) -> np.ndarray:
    fx = draw(st.floats(150.0, 600.0))
    fy = fx * draw(st.floats(0.9, 1.1))
    cx = (width - 1) / 2 + draw(st.floats(-3.0, 3.0))
    cy = (height - 1) / 2 + draw(st.floats(-3.0, 3.0))
    s = draw(st.floats(-0.2, 0.2)) * fx if skew else 0.0
    return np.array([[fx, s, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


@st.composite
def cameras(draw, skew: bool = False, size: tuple[int, int] | None = None) -> Camera:
    height, width = size if size is not None else draw(st.sampled_from(SIZES))
    return Camera(draw(intrinsics(height, width, skew)), draw(poses()), height, width)


@st.composite
def camera_pairs(draw) -> tuple[Camera, Camera]:
    """Two cameras (m, n) with the same image size."""
    size = draw(st.sampled_from(SIZES))
    return draw(cameras(size=size)), draw(cameras(size=size))


@st.composite
def depth_maps(draw, height: int, width: int, batch: tuple[int, ...] = (), dtype=np.float64) -> np.ndarray:
    """Depth (batch..., H, W) in metres, uniform in [0.3, 3] with 0-30 % zero (invalid) pixels."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    depth = rng.uniform(0.3, 3.0, batch + (height, width))
    depth[rng.random(depth.shape) < draw(st.floats(0.0, 0.3))] = 0.0
    return depth.astype(dtype)


@st.composite
def world_points(draw, n: int = 50) -> np.ndarray:
    """(n, 3) world points in a 0.3 m cube around the origin (in front of every random camera)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(-0.15, 0.15, (n, 3))


@st.composite
def rotations(draw, min_angle: float = 0.0, max_angle: float = math.pi) -> np.ndarray:
    """(3, 3) rotation about a random axis by an angle in [min_angle, max_angle]."""
    from scipy.spatial.transform import Rotation

    axis = np.array([draw(st.floats(-1.0, 1.0)) for _ in range(3)])
    norm = float(np.linalg.norm(axis))
    axis = axis / norm if norm > 1e-3 else np.array([0.0, 0.0, 1.0])
    angle = draw(st.floats(min_angle, max_angle))
    return Rotation.from_rotvec(angle * axis).as_matrix()


@st.composite
def rigid_poses(draw) -> np.ndarray:
    """(4, 4) random rigid transform: any rotation, translation within 2 m."""
    X = np.eye(4)
    X[:3, :3] = draw(rotations())
    X[:3, 3] = [draw(st.floats(-2.0, 2.0)) for _ in range(3)]
    return X


@pytest.fixture(scope="session")
def geo() -> SimpleNamespace:
    """The strategies above, as one namespace."""
    return SimpleNamespace(
        Camera=Camera,
        poses=poses,
        intrinsics=intrinsics,
        camera=cameras,
        camera_pair=camera_pairs,
        depth=depth_maps,
        world_points=world_points,
        rotation=rotations,
        rigid_pose=rigid_poses,
    )
