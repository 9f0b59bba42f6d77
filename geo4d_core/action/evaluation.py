"""Accuracy of action extraction on the true frames of recorded episodes.

For a camera pair (n, m) of an episode, the hand is registered on a frame of view n (hand mask from the
simulator's labels, optionally the recorded pose as a guess) and tracked through the following frames:
view n's depth lifted in camera n's frame, view m's depth lifted in camera m's frame and moved into
camera n's frame with the recorded extrinsics (the world model predicts those points directly). The
extracted end-effector poses, mapped to the world with camera n's extrinsic, are compared with the
recorded ones, and open / closed with the recorded finger opening (closed when below
`GripperStateConfig.closed_below_opening`). Depth noise and missing-depth holes can be added.

Two modes:

* continuous (`chunk=None`): one registration on frame t0, then tracking through t0+1 .. end of episode;
* planning cycles (`chunk=h`): what the robot does, re-observing every h steps. Cycle c registers on
  step s_c = t0 + c*h (hand mask of that frame, the recorded end-effector pose of that frame as the
  guess, i.e. the robot's current pose from its joint states; also, by default, the recorded pose one
  step earlier for its current velocity and the recorded gripper state and opening) and tracks steps
  s_c+1 .. s_c+h. The cycles cover the same steps t0+1 .. end as the continuous mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from geo4d_core.action.extraction import (
    ConditionFrame,
    ExtractionConfig,
    ExtractionResult,
    ViewSequence,
    extract_trajectory,
    hand_masks_from_labels,
)
from geo4d_core.action.hand import X_GE, load_hand_model
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
from geo4d_core.geometry.poses import invert_pose, rotation_distance, translation_distance

__all__ = ["DepthCorruption", "EpisodeExtractionErrors", "evaluate_episode", "corrupt_depth", "cycle_windows"]


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
    register_confidence: float  # mean over arms and registrations (one per cycle)
    chunk: int | None = None  # steps tracked per planning cycle; None = one registration, continuous tracking
    cycles: int = 1  # registrations (planning cycles)

    def as_dict(self) -> dict:
        return asdict(self)


def cycle_windows(num_steps: int, chunk: int | None) -> list[tuple[int, int]]:
    """Planning cycles over step indices 0 .. num_steps-1 as (start, end): register on index `start`, track
    indices start+1 .. end (inclusive). chunk=None: one window (0, num_steps-1)."""
    if num_steps < 2:
        raise ValueError(f"need at least 2 steps (a registration frame and a tracked one), got {num_steps}")
    if chunk is None:
        return [(0, num_steps - 1)]
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    return [(s, min(s + chunk, num_steps - 1)) for s in range(0, num_steps - 1, chunk)]


def _extract_window(reader, cam_n: str, steps: list[int], start: int, end: int, points_n: np.ndarray,
                    valid_n: np.ndarray, tracked: dict[str, ViewSequence], X_WE_true: np.ndarray,
                    cfg: ExtractionConfig, pose_guess: bool, robot_state: bool, stride: int,
                    hand_model) -> ExtractionResult:
    """One registration + tracking window: register on step index `start` of view n (labels mask, and the
    recorded end-effector pose of that frame as the guess; with `robot_state` also the recorded pose one
    step earlier, for the hand's current velocity, and the recorded gripper state and opening), track indices
    start+1 .. end.

    points_n, valid_n: view n's frames of all steps (camera n's frame); tracked: view -> frames of steps
    1 .. (index k holds step index k+1), camera n's frame; X_WE_true: (T, A, 4, 4) recorded poses.
    """
    masks = hand_masks_from_labels(reader.label(cam_n, steps[start]), reader.metadata.label_parts)
    init = prev = closed = opening = None
    X_CnW = invert_pose(reader.cameras[cam_n].X_WC)
    if pose_guess:
        init = {arm: X_CnW @ X_WE_true[start, a] @ invert_pose(X_GE) for a, arm in enumerate(masks)}
    if robot_state:
        t_prev = steps[start] - stride
        if pose_guess and t_prev >= 0:  # the robot's pose one step earlier: its current motion
            X_WE_prev = reader.X_WE[t_prev]
            prev = {arm: X_CnW @ X_WE_prev[a] @ invert_pose(X_GE) for a, arm in enumerate(masks)}
        width = reader.gripper_width[steps[start]]
        closed = {arm: bool(width[a] < cfg.gripper.closed_below_opening) for a, arm in enumerate(masks)}
        opening = {arm: float(width[a]) for a, arm in enumerate(masks)}
    rgb = reader.color(cam_n, steps[start]) if cfg.tracker != "icp" else None  # RGB-D trackers only
    condition = ConditionFrame(points_n[start], valid_n[start], masks, init, prev, closed,
                               gripper_opening=opening, rgb=rgb)
    views = {v: ViewSequence(s.points_C[start:end], s.valid[start:end], None if s.rgb is None else s.rgb[start:end])
             for v, s in tracked.items()}
    return extract_trajectory(condition, views, cfg, hand_model=hand_model)


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
    chunk: int | None = None,
    robot_state: bool = True,
) -> tuple[EpisodeExtractionErrors, dict]:
    """Extract on the episode's true frames and compare with the recording (see module docstring).

    chunk: None = register on t0 and track to the end; h = planning cycles of h steps (register on
        t0, t0+h, ... with that frame's recorded pose as guess, track the next h steps of each).
        Steps are counted after `stride`.
    robot_state: also give each registration what the robot knows of itself besides its pose: with
        `pose_guess` the recorded pose one step before the frame (where there is one; its current
        velocity), so a cycle's first tracked frame is predicted with that motion instead of from rest,
        and the recorded open / closed state, kept until the fingers are measured (otherwise: open).

    Returns the summary and the raw arrays (estimated and true X_WE, closed flags, confidences, and
    `cycle_start`: the episode frame each step's cycle registered on).
    """
    cfg = config or ExtractionConfig()
    rng = np.random.default_rng(seed)
    corr = corruption or DepthCorruption()
    steps = list(range(t0, reader.num_frames, stride))
    windows = cycle_windows(len(steps), chunk)
    if len(windows) > 1 and hand_model is None:
        hand_model = load_hand_model()  # once, not once per cycle
    spec_n, spec_m = reader.cameras[cam_n], reader.cameras[cam_m]
    depth_n = corrupt_depth(reader.depth(cam_n, steps), corr, rng)
    pts_n, val_n = depth_to_pointmap(depth_n, spec_n.K)
    colour = cfg.tracker != "icp"  # RGB-D trackers also get the colour images
    tracked = {"n": ViewSequence(pts_n[1:], val_n[1:], reader.color(cam_n, steps[1:]) if colour else None)}
    if "m" in cfg.views:
        depth_m = corrupt_depth(reader.depth(cam_m, steps[1:]), corr, rng)
        pts_m, val_m = depth_to_pointmap(depth_m, spec_m.K)
        tracked["m"] = ViewSequence(pointmap_m_to_n(pts_m, spec_n.X_WC, spec_m.X_WC, val_m), val_m,
                                    reader.color(cam_m, steps[1:]) if colour else None)
    X_WE_true = reader.X_WE[steps]  # (T, A, 4, 4)
    results = [_extract_window(reader, cam_n, steps, s, e, pts_n, val_n, tracked, X_WE_true, cfg, pose_guess,
                               robot_state, stride, hand_model) for s, e in windows]
    cat = lambda name: np.concatenate([getattr(r, name) for r in results], axis=0)  # noqa: E731
    X_WE_est = spec_n.X_WC @ cat("X_CE")  # (T-1, A, 4, 4)
    closed_est, confidence, source_view = cat("gripper_closed"), cat("confidence"), cat("source_view")
    register_confidence = np.stack([r.register_confidence for r in results])  # (cycles, A)
    cycle_start = np.concatenate([np.full(e - s, steps[s]) for s, e in windows])
    truth = X_WE_true[1:]
    trans = translation_distance(X_WE_est, truth).reshape(-1)
    rot = np.degrees(rotation_distance(X_WE_est, truth)).reshape(-1)
    width_true = reader.gripper_width[steps][1:]
    closed_true = width_true < cfg.gripper.closed_below_opening
    summary = EpisodeExtractionErrors(
        episode=str(reader.path.name), cam_n=cam_n, cam_m=cam_m, views=tuple(tracked), steps=len(trans),
        median_translation_m=float(np.median(trans)), median_rotation_deg=float(np.median(rot)),
        p90_translation_m=float(np.percentile(trans, 90)),
        gripper_accuracy=float(np.mean(closed_est == closed_true)),
        mean_confidence=float(confidence.mean()),
        fraction_from_m=float(np.mean(source_view == "m")),
        register_confidence=float(register_confidence.mean()),
        chunk=None if chunk is None else int(chunk), cycles=len(windows),
    )
    raw = dict(X_WE_est=X_WE_est, X_WE_true=truth, closed_est=closed_est, closed_true=closed_true,
               confidence=confidence, finger_distance=cat("finger_distance"), source_view=source_view,
               width_true=width_true, translation_error=trans, rotation_error_deg=rot,
               steps=np.asarray(steps[1:]), cycle_start=cycle_start, register_confidence=register_confidence)
    return summary, raw
