"""`PoseTracker` adapter for NVIDIA FoundationPose (GPU), written against its documented API.

FoundationPose (github.com/NVlabs/FoundationPose) is not a pip package: it runs from a checkout of its
repository (on PYTHONPATH, with its downloaded weights and compiled extensions), needs `nvdiffrast`,
`trimesh` and a CUDA GPU. Everything is imported lazily in `FoundationPoseTracker.__init__`, so this
module imports anywhere; where the backend is missing the constructor raises `TrackerUnavailableError`
and the built-in CPU tracker (`tracker: icp` in the configuration) is the alternative.

Frames (DESIGN.md §3): C = the camera of the given RGB-D frame (OpenCV axes); G = the gripper hand
frame. The mesh file must be expressed in G (metres), because FoundationPose returns the pose of the
mesh's own frame in the camera, which is then X_CG.
"""

from __future__ import annotations

import importlib
import math
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from geo4d_core.action.scoring import depth_agreement_score
from geo4d_core.action.tracking import TrackerUnavailableError, TrackingLostError, TrackResult
from geo4d_core.geometry.poses import is_rigid_transform

__all__ = ["FoundationPoseConfig", "FoundationPoseTracker"]

# Tolerance for accepting FoundationPose's (float32, GPU) output as a rigid transform.
_RIGID_ATOL = 1e-3

_REQUIREMENTS = (
    "The FoundationPose tracker needs: the NVlabs/FoundationPose repository on PYTHONPATH (module "
    "`estimater`) with its downloaded weights and built extensions, `nvdiffrast` (module "
    "`nvdiffrast.torch`), `trimesh`, and a CUDA GPU visible to torch. Without them use the built-in CPU "
    "tracker (`tracker: icp` in the configuration)."
)


@dataclass
class FoundationPoseConfig:
    """Settings of the FoundationPose adapter."""

    # Gripper mesh file (any format trimesh loads), vertices in metres in the gripper frame G.
    mesh_path: str
    # Refinement iterations of FoundationPose.register (first frame), as in its run_demo.py.
    est_refine_iter: int = 5
    # Refinement iterations of FoundationPose.track_one (later frames), as in its run_demo.py.
    track_refine_iter: int = 2
    # Folder for FoundationPose's debug output; None = a private temporary folder and no debug output.
    debug_dir: str | None = None
    # Depth agreement tolerance of the returned score (see depth_agreement_score), metres.
    score_tolerance: float = 0.01
    # Refuse to start without a CUDA GPU (FoundationPose itself only runs on CUDA).
    require_cuda: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.mesh_path, (str, Path)) or not str(self.mesh_path):
            raise ValueError(f"FoundationPoseConfig.mesh_path must be a file path, got {self.mesh_path!r}")
        self.mesh_path = str(self.mesh_path)
        for name in ("est_refine_iter", "track_refine_iter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FoundationPoseConfig.{name} must be an integer >= 1, got {value!r}")
        if self.debug_dir is not None:
            self.debug_dir = str(self.debug_dir)
        tol = self.score_tolerance
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"FoundationPoseConfig.score_tolerance must be finite and > 0 metres, got {tol!r}")
        self.score_tolerance = float(tol)
        if not isinstance(self.require_cuda, bool):
            raise ValueError(f"FoundationPoseConfig.require_cuda must be a bool, got {self.require_cuda!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FoundationPoseConfig":
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error, mesh_path is required."""
        if not isinstance(d, Mapping):
            raise TypeError(f"FoundationPoseConfig.from_dict expects a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"FoundationPoseConfig: unknown keys {unknown}; expected a subset of {sorted(known)}")
        if "mesh_path" not in d:
            raise ValueError("FoundationPoseConfig: mesh_path is required")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict that `from_dict` reads back."""
        return asdict(self)


class FoundationPoseTracker:
    """Tracks the gripper with FoundationPose: `register` on the first frame, then `track_one`.

    Score of every `TrackResult`: `depth_agreement_score` of the mesh vertices posed at the returned
    X_CG against the given depth image (tolerance `score_tolerance`), i.e. the fraction of the pixels
    covered by the posed mesh where the observed depth is within the tolerance of the mesh's depth.
    It is computed by this adapter, not taken from FoundationPose's internal scorer, so it means the
    same for every tracker that uses it.
    """

    def __init__(self, config: FoundationPoseConfig):
        if not isinstance(config, FoundationPoseConfig):
            raise TypeError(f"config must be a FoundationPoseConfig, got {type(config).__name__}")
        self.config = config
        estimater, dr, trimesh = self._import_backend(config.require_cuda)
        mesh_path = Path(config.mesh_path)
        if not mesh_path.is_file():
            raise FileNotFoundError(f"FoundationPose gripper mesh not found: {mesh_path}")
        mesh = trimesh.load(str(mesh_path))
        vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
            raise ValueError(
                f"FoundationPose gripper mesh {mesh_path} has no usable vertices (got shape {vertices.shape}); "
                "give a single triangle mesh, not an empty file or a scene"
            )
        self._vertices_G = vertices  # (V, 3) metres, gripper frame G, used for the score
        if config.debug_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="geo4d-foundationpose-")
            debug_dir, debug = self._tmp.name, 0
        else:
            self._tmp = None
            debug_dir, debug = config.debug_dir, 1
        self._estimator = estimater.FoundationPose(
            model_pts=mesh.vertices,
            model_normals=mesh.vertex_normals,
            mesh=mesh,
            scorer=estimater.ScorePredictor(),
            refiner=estimater.PoseRefinePredictor(),
            debug_dir=debug_dir,
            debug=debug,
            glctx=dr.RasterizeCudaContext(),
        )
        self._registered = False

    @classmethod
    def check_available(cls, config: FoundationPoseConfig) -> None:
        """Raise TrackerUnavailableError (what is missing) or FileNotFoundError (the mesh) without building the
        networks: for checking a configuration when a program starts."""
        cls._import_backend(config.require_cuda)
        if not Path(config.mesh_path).is_file():
            raise FileNotFoundError(f"FoundationPose gripper mesh not found: {config.mesh_path}")

    @staticmethod
    def _import_backend(require_cuda: bool) -> tuple[Any, Any, Any]:
        """Import estimater, nvdiffrast.torch and trimesh; TrackerUnavailableError listing what is missing."""
        modules: dict[str, Any] = {}
        problems: list[str] = []
        for name in ("estimater", "nvdiffrast.torch", "trimesh"):
            try:
                modules[name] = importlib.import_module(name)
            except Exception as err:  # ImportError, or a broken install failing at import time
                problems.append(f"cannot import `{name}` ({type(err).__name__}: {err})")
        if require_cuda:
            try:
                import torch

                cuda = bool(torch.cuda.is_available())
            except Exception as err:  # pragma: no cover - torch is a core dependency
                cuda, problems = False, problems + [f"cannot import torch ({err})"]
            if not cuda:
                problems.append("no CUDA GPU is available (torch.cuda.is_available() is False)")
        if problems:
            raise TrackerUnavailableError(
                "FoundationPose tracker unavailable: " + "; ".join(problems) + ". " + _REQUIREMENTS
            )
        return modules["estimater"], modules["nvdiffrast.torch"], modules["trimesh"]

    # -------------------------------------------------------------------------------- PoseTracker API

    def register(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, mask: np.ndarray,
                 X_CG_init: np.ndarray | None = None) -> TrackResult:
        """Find the gripper in the first frame (FoundationPose.register with est_refine_iter iterations).

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            depth: (H, W) float depth in metres, 0 = invalid.
            K: (3, 3) intrinsics of camera C, pixels.
            mask: (H, W) bool mask of the gripper.
            X_CG_init: ignored: FoundationPose searches its own grid of rotations around the mask's
                centre and has no initial-guess input. Accepted for the PoseTracker protocol.

        Returns:
            TrackResult with X_CG (pose of G in C, metres) and the depth agreement score.
        """
        rgb, depth, K = self._check_frame(rgb, depth, K)
        mask = np.asarray(mask)
        if mask.shape != depth.shape:
            raise ValueError(f"mask must have the depth image's shape {depth.shape}, got {mask.shape}")
        mask = mask.astype(bool)
        if not mask.any():
            raise ValueError("mask is empty: FoundationPose.register needs the gripper's pixels in the first frame")
        self._registered = False
        pose = self._estimator.register(K=K, rgb=rgb, depth=depth, ob_mask=mask,
                                        iteration=self.config.est_refine_iter)
        return self._result(pose, depth, K, "register")

    def track(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray) -> TrackResult:
        """Follow the gripper into the next frame (FoundationPose.track_one with track_refine_iter iterations)."""
        if not self._registered:
            raise TrackingLostError("FoundationPoseTracker.track called before a successful register (or after reset)")
        rgb, depth, K = self._check_frame(rgb, depth, K)
        pose = self._estimator.track_one(rgb=rgb, depth=depth, K=K, iteration=self.config.track_refine_iter)
        return self._result(pose, depth, K, "track_one")

    def reset(self) -> None:
        """Forget the track; the next call must be `register`."""
        self._registered = False

    # ---------------------------------------------------------------------------------------- helpers

    def _result(self, pose: Any, depth: np.ndarray, K: np.ndarray, call: str) -> TrackResult:
        X_CG = _to_numpy(pose).astype(np.float64).reshape(-1)
        if X_CG.size != 16:
            self._registered = False
            raise TrackingLostError(f"FoundationPose.{call} returned {X_CG.size} values, expected a 4x4 pose")
        X_CG = X_CG.reshape(4, 4)
        if not is_rigid_transform(X_CG, atol=_RIGID_ATOL):
            self._registered = False
            raise TrackingLostError(f"FoundationPose.{call} returned a non-finite or non-rigid pose: {X_CG.tolist()}")
        score = depth_agreement_score(self._vertices_G, X_CG, depth, K, tolerance=self.config.score_tolerance)
        self._registered = True
        return TrackResult(X_CG=X_CG, score=score)

    @staticmethod
    def _check_frame(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = np.asarray(rgb)
        depth = np.asarray(depth)
        K = np.asarray(K, dtype=np.float64)
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise ValueError(f"depth must be a float (H, W) image in metres, got {depth.dtype} {depth.shape}")
        if rgb.shape != depth.shape + (3,) or rgb.dtype != np.uint8:
            raise ValueError(
                f"rgb must be a uint8 (H, W, 3) image matching depth {depth.shape}, got {rgb.dtype} {rgb.shape}"
            )
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"K must be a finite (3, 3) intrinsic matrix, got shape {K.shape}")
        return rgb, depth, K


def _to_numpy(x: Any) -> np.ndarray:
    """numpy array from a numpy array or a (possibly CUDA) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
