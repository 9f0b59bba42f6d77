"""The pose-tracker interface shared by the built-in CPU tracker and the FoundationPose adapter.

Frames (DESIGN.md §3): C is the camera whose pixels are given (for view m's predicted pointmaps, the
points are already expressed in camera n's frame, so C = camera n); G is the tracked gripper frame,
the Panda hand frame `panda_hand` (the tool-centre point E is G moved 0.1034 m along +z, see
`geo4d_core.action.hand.X_GE`). Poses are 4x4 homogeneous matrices in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["TrackResult", "PoseTracker", "TrackerUnavailableError", "TrackingLostError"]


class TrackerUnavailableError(RuntimeError):
    """A tracker backend cannot run here (missing package, GPU or weights); the message says what is needed."""


class TrackingLostError(RuntimeError):
    """`track` was called before a successful `register`, or after the target was lost."""


@dataclass(frozen=True)
class TrackResult:
    """One tracked pose."""

    X_CG: np.ndarray  # (4, 4) pose of the gripper frame G in camera frame C, metres
    score: float  # confidence in [0, 1]; its meaning is documented by each tracker (0 = no usable estimate)

    def __post_init__(self) -> None:
        X = np.asarray(self.X_CG, dtype=np.float64)
        if X.shape != (4, 4):
            raise ValueError(f"TrackResult.X_CG must be 4x4, got {X.shape}")
        if not 0.0 <= float(self.score) <= 1.0 or not np.isfinite(self.score):
            raise ValueError(f"TrackResult.score must be in [0, 1], got {self.score}")
        object.__setattr__(self, "X_CG", X)
        object.__setattr__(self, "score", float(self.score))


@runtime_checkable
class PoseTracker(Protocol):
    """6-DoF tracker of one rigid object (the gripper) through a sequence of RGB-D frames.

    `register` finds the object in the first frame from a mask (and optionally a pose guess);
    `track` follows it frame to frame; `reset` forgets the current track.
    """

    def register(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, mask: np.ndarray,
                 X_CG_init: np.ndarray | None = None) -> TrackResult:
        """rgb (H, W, 3) uint8, depth (H, W) float metres (0 = invalid), K (3, 3), mask (H, W) bool of the object."""
        ...

    def track(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray) -> TrackResult:
        """Pose in the next frame, starting from the last one."""
        ...

    def reset(self) -> None:
        ...
