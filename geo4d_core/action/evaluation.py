"""Accuracy of action extraction on the true frames of recorded episodes.

For a camera pair (n, m) of an episode, the hand is registered on frame t0 of view n (hand mask from the
simulator's labels, optionally the recorded pose as a guess), then tracked through frames t0+1 .. end:
view n's depth lifted in camera n's frame, view m's depth lifted in camera m's frame and moved into
camera n's frame with the recorded extrinsics (the world model predicts those points directly). The
extracted end-effector poses, mapped to the world with camera n's extrinsic, are compared with the
recorded ones, and open / closed with the recorded finger opening (closed when below
`GripperStateConfig.closed_below_opening`). Depth noise and missing-depth holes can be added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from geo4d_core.action.extraction import (
    ConditionFrame,
    ExtractionConfig,
    ViewSequence,
    extract_trajectory,
    hand_masks_from_labels,
)
from geo4d_core.action.hand import X_GE
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
from geo4d_core.geometry.poses import invert_pose, rotation_distance, translation_distance

__all__ = ["DepthCorruption", "EpisodeExtractionErrors", "evaluate_episode", "corrupt_depth"]


@dataclass
class DepthCorruption:
    """Synthetic sensor / prediction errors added to true depth before extraction."""

    # Standard deviation of Gaussian depth noise, metres.
    noise_std: float = 0.0
    # Fraction of pixels whose depth is removed, in square holes of `hole_size` pixels.
    hole_fraction: float = 0.0
    # Side of a square hole, pixels.
    hole_size: int = 8


def corrupt_depth(depth: np.ndarray, corruption: DepthCorruption, rng: np.random.Generator) -> np.ndarray:
    """(..., H, W) metres -> the same with Gaussian noise on valid pixels and square holes (0)."""
    d = np.array(depth, dtype=np.float32, copy=True)
    valid = d > 0
    if corruption.noise_std > 0:
        d = np.where(valid, d + rng.normal(0.0, corruption.noise_std, d.shape).astype(np.float32), 0.0)
    if corruption.hole_fraction > 0:
        s = max(1, int(corruption.hole_size))
        H, W = d.shape[-2:]
        coarse = rng.random((*d.shape[:-2], -(-H // s), -(-W // s))) < corruption.hole_fraction
        holes = np.repeat(np.repeat(coarse, s, axis=-2), s, axis=-1)[..., :H, :W]
        d = np.where(holes, 0.0, d)
    return d.astype(np.float32)


@dataclass
class EpisodeExtractionErrors:
    """Errors of the extracted trajectory against the recording (all arms pooled)."""

    episode: str
    cam_n: str
    cam_m: str
    views: tuple[str, ...]
    steps: int
    median_translation_m: float
    median_rotation_deg: float
    p90_translation_m: float
    gripper_accuracy: float
    mean_confidence: float
    fraction_from_m: float
    register_confidence: float

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_episode(
    reader,
    cam_n: str,
    cam_m: str,
    *,
    config: ExtractionConfig | None = None,
    corruption: DepthCorruption | None = None,
    t0: int = 0,
    stride: int = 1,
    pose_guess: bool = True,
    seed: int = 0,
    hand_model=None,
) -> tuple[EpisodeExtractionErrors, dict]:
    """Extract on the episode's true frames and compare with the recording (see module docstring).

    Returns the summary and the raw arrays (estimated and true X_WE, closed flags, confidences).
    """
    cfg = config or ExtractionConfig()
    rng = np.random.default_rng(seed)
    corr = corruption or DepthCorruption()
    steps = list(range(t0, reader.num_frames, stride))
    spec_n, spec_m = reader.cameras[cam_n], reader.cameras[cam_m]
    depth_n = corrupt_depth(reader.depth(cam_n, steps), corr, rng)
    pts_n, val_n = depth_to_pointmap(depth_n, spec_n.K)
    views = {"n": ViewSequence(pts_n[1:], val_n[1:])}
    if "m" in cfg.views:
        depth_m = corrupt_depth(reader.depth(cam_m, steps[1:]), corr, rng)
        pts_m, val_m = depth_to_pointmap(depth_m, spec_m.K)
        views["m"] = ViewSequence(pointmap_m_to_n(pts_m, spec_n.X_WC, spec_m.X_WC, val_m), val_m)
    label_parts = reader.metadata.label_parts
    masks = hand_masks_from_labels(reader.label(cam_n, t0), label_parts)
    arms = tuple(masks)
    X_WE_true = reader.X_WE[steps]  # (T, A, 4, 4)
    X_CnW = invert_pose(spec_n.X_WC)
    init = None
    if pose_guess:
        init = {arm: X_CnW @ X_WE_true[0, a] @ invert_pose(X_GE) for a, arm in enumerate(arms)}
    condition = ConditionFrame(pts_n[0], val_n[0], masks, init)
    result = extract_trajectory(condition, views, cfg, hand_model=hand_model)
    X_WE_est = spec_n.X_WC @ result.X_CE  # (T-1, A, 4, 4)
    truth = X_WE_true[1:]
    trans = translation_distance(X_WE_est, truth).reshape(-1)
    rot = np.degrees(rotation_distance(X_WE_est, truth)).reshape(-1)
    closed_true = reader.gripper_width[steps][1:] < cfg.gripper.closed_below_opening
    summary = EpisodeExtractionErrors(
        episode=str(reader.path.name), cam_n=cam_n, cam_m=cam_m, views=tuple(views), steps=len(trans),
        median_translation_m=float(np.median(trans)), median_rotation_deg=float(np.median(rot)),
        p90_translation_m=float(np.percentile(trans, 90)),
        gripper_accuracy=float(np.mean(result.gripper_closed == closed_true)),
        mean_confidence=float(result.confidence.mean()),
        fraction_from_m=float(np.mean(result.source_view == "m")),
        register_confidence=float(result.register_confidence.mean()),
    )
    raw = dict(X_WE_est=X_WE_est, X_WE_true=truth, closed_est=result.gripper_closed, closed_true=closed_true,
               confidence=result.confidence, finger_distance=result.finger_distance,
               width_true=reader.gripper_width[steps][1:], translation_error=trans, rotation_error_deg=rot)
    return summary, raw
