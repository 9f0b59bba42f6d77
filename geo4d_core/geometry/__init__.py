"""geo4d_core.geometry: cameras, pointmaps, poses, pointmap normalisation and ray maps.

Conventions (DESIGN.md §3), shared by every function here:

- Units: metres and radians. Depth is metres along the optical axis, 0 = invalid.
- Camera frame: OpenCV (+x right, +y down, +z forward). `K` is the 3×3 pinhole intrinsic matrix in
  pixels. Pixel (row i, col j) has its centre at (u, v) = (j, i): u = column, v = row.
- Poses: `X_AB` is the 4×4 homogeneous pose of frame B in frame A, so `p_A = X_AB @ p_B`
  (`X_WC` = camera in world). A pointmap `points_C` holds one 3D point per pixel in frame C.
- Arrays: functions take numpy arrays or torch tensors and return the type of their main data argument
  (torch keeps dtype and device and stays differentiable); `splat_to_depth`, `interpolate_pose`,
  `look_at` and `camera_from_raymap` are numpy only. Leading batch dims (...) are supported where the
  docstrings say so.

Modules: `pointmap` (depth ⇄ pointmap, rigid transforms, view m → view n), `projection` (pinhole
projection, unprojection, z-buffer splatting), `poses` (pose algebra, interpolation, look-at),
`normalization` (metric box ⇄ [-1, 1]^3 for the pointmap VAE), `raymap` (per-pixel rays ⇄ camera).
"""

from geo4d_core.geometry.normalization import (
    PointmapNormalizationConfig,
    denormalize_pointmap,
    normalize_pointmap,
)
from geo4d_core.geometry.pointmap import (
    depth_to_pointmap,
    pointmap_m_to_n,
    pointmap_to_depth,
    relative_pose,
    transform_points,
)
from geo4d_core.geometry.poses import (
    compose_poses,
    interpolate_pose,
    invert_pose,
    is_rigid_transform,
    look_at,
    make_pose,
    rotation_distance,
    translation_distance,
)
from geo4d_core.geometry.projection import (
    apply_projection_matrix,
    decompose_projection_matrix,
    fit_projection_matrix,
    project_points,
    project_world_points,
    splat_to_depth,
    unproject_points,
)
from geo4d_core.geometry.raymap import RaymapKind, camera_from_raymap, raymap_from_camera

__all__ = [
    # pointmap
    "depth_to_pointmap",
    "pointmap_to_depth",
    "transform_points",
    "relative_pose",
    "pointmap_m_to_n",
    # projection
    "project_points",
    "project_world_points",
    "unproject_points",
    "splat_to_depth",
    "fit_projection_matrix",
    "apply_projection_matrix",
    "decompose_projection_matrix",
    # poses
    "make_pose",
    "invert_pose",
    "compose_poses",
    "interpolate_pose",
    "rotation_distance",
    "translation_distance",
    "look_at",
    "is_rigid_transform",
    # normalization
    "PointmapNormalizationConfig",
    "normalize_pointmap",
    "denormalize_pointmap",
    # raymap
    "raymap_from_camera",
    "camera_from_raymap",
    "RaymapKind",
]
