"""From a sequence of RGB-D / pointmap frames to the end-effector trajectory and gripper commands.

Works the same on a world-model `Prediction` and on true future frames of a recorded episode:

1. **Register** each arm's hand on a condition frame of view n (observed RGB-D, the hand's mask from the
   simulator's labels or SAM2, optionally the robot's current pose as a guess, its pose one step earlier
   so the first tracked frame is predicted with the hand's current velocity, and the gripper's current
   open / closed state, kept until the fingers are measured).
2. **Track** the hand through the future frames of view n and, separately, through view m's frames,
   whose points are already in camera n's frame (predicted directly by the world model, or transformed
   with the extrinsics for true frames), so both trackers report poses in camera n's frame.
3. **Fuse**: at each step the view with the higher confidence wins; which one is recorded.
4. **Gripper**: finger centroids around the fused hand pose, measured in the winning view's points,
   give open / closed (`gripper_state`). Optionally (`ExtractionConfig.grasp_on_unseen_dwell`) a hand that
   approached and stopped while no view measured its fingers is taken to have closed them
   (`close_on_unseen_dwell`), and (`ExtractionConfig.release_on_unseen_dwell`) a closed hand that advanced and
   stopped the same way is taken to have opened them (`open_on_unseen_dwell`).

All poses are in camera n's frame C (metres). `ExtractionResult.to_plan` maps them to the robot base
with camera n's extrinsic X_BC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from geo4d_core.action.foundationpose import FoundationPoseConfig
from geo4d_core.action.gripper_state import GripperStateConfig, GripperStateEstimator, measure_fingers
from geo4d_core.action.hand import X_GE, HandModel, load_hand_model
from geo4d_core.action.icp_tracker import IcpHandTracker, IcpTrackerConfig
from geo4d_core.action.tracking import TrackingLostError
from geo4d_core.geometry.poses import interpolate_pose, invert_pose

__all__ = ["ExtractionConfig", "ConditionFrame", "ViewSequence", "ExtractionResult", "extract_trajectory",
           "extract_from_prediction", "backdate_releases", "fill_gaps", "close_on_unseen_dwell",
           "open_on_unseen_dwell"]

VIEWS = ("n", "m")


@dataclass
class ExtractionConfig:
    """Settings of action extraction."""

    # Pose tracker: "icp" (built-in, CPU) or "foundationpose" (NVIDIA FoundationPose, GPU; needs the colour images
    # and `foundationpose`; each view's depth image and intrinsics come from its pointmap, `pointmap_rgbd`).
    tracker: str = "icp"
    # Settings of the built-in tracker.
    icp: IcpTrackerConfig = field(default_factory=IcpTrackerConfig)
    # Settings of the FoundationPose adapter (tracker "foundationpose"; a mapping is turned into the config).
    foundationpose: FoundationPoseConfig | None = None
    # Settings of the open / closed test.
    gripper: GripperStateConfig = field(default_factory=GripperStateConfig)
    # Views used for tracking: both ("n", "m") or one of them.
    views: tuple[str, ...] = VIEWS
    # After each step, continue every view's tracker from the fused pose (off: on simulated episodes it
    # spread one view's slips to the other more often than it repaired them).
    share_fused_pose: bool = False
    # A step whose best view scores below this counts as unseen: the hand holds its last pose and gripper
    # state, with confidence 0 (0: only a step no view saw anything of; a mostly hidden hand, e.g. under
    # a shelf, scores 0.3-0.6 on simulated episodes where a visible one scores 0.7-0.95).
    min_confidence: float = 0.0
    # A release (closed -> open) seen at step k is moved back to just after the last earlier step of the
    # same extraction whose fingers read closed: the opening happened somewhere in the steps the fingers
    # were not seen, and an opening detected late drags the released object along (a hand under a shelf
    # is seen open only after it started to retreat). Closings are never moved earlier.
    backdate_release: bool = False
    # Unseen steps followed by a seen step of the same extraction move on the straight line (slerp for the
    # rotation) from the last seen pose (or the registered one) to that next seen pose instead of holding
    # and then jumping: a hand that briefly disappears (behind an object, in a bowl) keeps moving with the
    # prediction. Unseen steps at the end still hold. Their confidence stays 0 (`ExtractionResult.interpolated`).
    interpolate_gaps: bool = False
    # Close an open gripper whose fingers no view measured when the hand, seen at every step, advanced along its
    # own +z (towards the fingertips) by at least grasp_approach and then stayed within grasp_still per step
    # for grasp_dwell_steps steps: a grasp whose fingers are hidden (inside a bowl, under the hand from a
    # high camera) is otherwise never read. Closes from the dwell's first step, until the fingers read open.
    grasp_on_unseen_dwell: bool = False
    # Advance along the hand's +z (from the registered pose) before the dwell, metres.
    grasp_approach: float = 0.02
    # Largest per-step motion of the hand that counts as still, metres.
    grasp_still: float = 0.005
    # Steps the hand must stay still.
    grasp_dwell_steps: int = 3
    # Open a closed gripper whose fingers no view measured when the hand advanced along its own +z by at least
    # grasp_approach (from ConditionFrame.X_CG_carry_from, default the registered pose) and then the final
    # trajectory stays within grasp_still per step for grasp_dwell_steps steps (held unseen steps count: the plan
    # keeps the hand there): an object set down where no view sees the fingers (a box pushed under a shelf top)
    # is otherwise carried away again by the retreat. Opens from the dwell's first step.
    release_on_unseen_dwell: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_confidence) and self.min_confidence >= 0):
            raise ValueError(f"ExtractionConfig.min_confidence must be finite and >= 0, got {self.min_confidence!r}")
        if self.tracker not in ("icp", "foundationpose"):
            raise ValueError(f"ExtractionConfig.tracker must be 'icp' or 'foundationpose', got {self.tracker!r}")
        if isinstance(self.foundationpose, Mapping):
            self.foundationpose = FoundationPoseConfig.from_dict(self.foundationpose)
        if self.tracker == "foundationpose" and not isinstance(self.foundationpose, FoundationPoseConfig):
            raise ValueError("ExtractionConfig.tracker 'foundationpose' needs ExtractionConfig.foundationpose "
                             "(FoundationPoseConfig, at least mesh_path: the gripper mesh in the hand frame)")
        if self.grasp_approach < 0 or self.grasp_still < 0 or self.grasp_dwell_steps < 1:
            raise ValueError("ExtractionConfig: grasp_approach and grasp_still must be >= 0, grasp_dwell_steps >= 1")
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            raise ValueError(f"ExtractionConfig.views must be a non-empty subset of {VIEWS}, got {self.views}")


@dataclass
class ConditionFrame:
    """The frame the hands are registered on: view n's observation at time t, in camera n's frame."""

    points_C: np.ndarray  # (H, W, 3) metres in camera n's frame
    valid: np.ndarray  # (H, W) bool
    hand_masks: Mapping[str, np.ndarray]  # arm name -> (H, W) bool mask of that arm's hand body
    X_CG_init: Mapping[str, np.ndarray] | None = None  # arm -> optional pose guess of the hand in camera n
    # arm -> optional hand pose one step (one frame interval) before the condition frame, in camera n (e.g. the
    # robot's previous end-effector pose); with X_CG_init it gives the hand's current motion, which seeds
    # the constant-velocity prediction of the first tracked frame (otherwise that frame starts from rest).
    X_CG_prev: Mapping[str, np.ndarray] | None = None
    # arm -> optional current open (False) / closed (True) state of the gripper (e.g. from its finger joint):
    # the state reported until the fingers are first measured in the tracked frames (default: open).
    gripper_closed: Mapping[str, bool] | None = None
    # arm -> optional earlier hand poses in camera n, (4, 4) or (K, 4, 4), from which grasp inference
    # (`grasp_on_unseen_dwell`) also counts the approach (the largest advance of the registered pose and these
    # counts), e.g. where the hand was at the last planning cycles' starts while its gripper stayed open: a
    # hand that arrived at the object in an earlier cycle dwells from step 0.
    X_CG_approach_from: Mapping[str, np.ndarray] | None = None
    # arm -> the same for release inference (`release_on_unseen_dwell`), while the gripper stayed closed: a
    # hand that pushed the object home in an earlier cycle dwells from step 0.
    X_CG_carry_from: Mapping[str, np.ndarray] | None = None
    # arm -> optional current finger opening, metres (e.g. the robot's finger joints): a closed gripper holding
    # a wide object then reads open only past the middle between that opening and fully open
    # (`GripperStateEstimator`, held_opening).
    gripper_opening: Mapping[str, float] | None = None
    # (H, W, 3) uint8 colour image of the frame (needed by an RGB-D tracker such as FoundationPose; the built-in
    # tracker uses the points only).
    rgb: np.ndarray | None = None


@dataclass
class ViewSequence:
    """Future frames of one view, all points in camera n's frame."""

    points_C: np.ndarray  # (T, H, W, 3) metres in camera n's frame
    valid: np.ndarray  # (T, H, W) bool
    rgb: np.ndarray | None = None  # (T, H, W, 3) uint8 colour of this view (RGB-D trackers; optional for "icp")


@dataclass
class ExtractionResult:
    """Fused trajectory of every arm (poses in camera n's frame C)."""

    arms: tuple[str, ...]
    X_CE: np.ndarray  # (T, A, 4, 4) end-effector (tool-centre point) poses in camera n's frame, metres
    X_CG: np.ndarray  # (T, A, 4, 4) hand poses in camera n's frame
    confidence: np.ndarray  # (T, A) score of the winning view, [0, 1]
    source_view: np.ndarray  # (T, A) "n" or "m": the view whose pose was used
    gripper_closed: np.ndarray  # (T, A) bool
    finger_distance: np.ndarray  # (T, A) metres between the finger centroids, NaN where not measured
    per_view_confidence: dict[str, np.ndarray]  # view -> (T, A) scores of that view's tracker
    per_view_X_CG: dict[str, np.ndarray]  # view -> (T, A, 4, 4)
    register_confidence: np.ndarray  # (A,) score of the registration on the condition frame
    # (T, A) int8 what the fingers alone read at each step: -1 closed, +1 open, 0 not measured (None: unknown)
    gripper_reading: np.ndarray | None = None
    # (T, A) bool: unseen steps whose pose was interpolated between seen ones (None: not recorded)
    interpolated: np.ndarray | None = None

    def to_plan(self, timestamps: np.ndarray, X_BC: np.ndarray):
        """The executable `Plan`: poses mapped to the robot base with camera n's extrinsic X_BC."""
        from geo4d_core.action.plan import Plan

        return Plan.from_camera_poses(
            timestamps=np.asarray(timestamps, dtype=np.float64), X_CE=self.X_CE, X_BC=np.asarray(X_BC),
            gripper_closed=self.gripper_closed, confidence=self.confidence, source_view=self.source_view,
            arms=self.arms,
        )


def _make_tracker(config: ExtractionConfig, model: HandModel | None):
    if config.tracker == "foundationpose":
        from geo4d_core.action.foundationpose import FoundationPoseTracker
        from geo4d_core.action.pointmap_rgbd import PointmapRgbdTracker

        return PointmapRgbdTracker(FoundationPoseTracker(config.foundationpose), model or load_hand_model())
    return IcpHandTracker(config.icp, model)


def extract_trajectory(
    condition: ConditionFrame,
    views: Mapping[str, ViewSequence],
    config: ExtractionConfig | None = None,
    *,
    hand_model: HandModel | None = None,
    trackers: Mapping[tuple[str, str], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractionResult:
    """Register on `condition`, track through every view's frames, fuse, and read the gripper state.

    Args:
        condition: view n's frame the hands are registered on (with a hand mask per arm).
        views: "n" and/or "m" -> future frames (T of them, all views the same T), points in camera n's frame.
        config: extraction settings (default ExtractionConfig()).
        hand_model: hand surface model (default: loaded once from `default_hand_mesh()`).
        trackers: optional (arm, view) -> tracker objects to reuse (the hand model is loaded once).
        progress: callback(step, T) after each step.

    Returns:
        ExtractionResult; a step where no view saw the hand (every tracker lost it or scored 0, or the best
        score is below `config.min_confidence`) holds the last pose some view saw (the registered pose
        before the first step) and the gripper state, with confidence 0: the plan then keeps that arm still
        instead of following an extrapolated guess. With `config.interpolate_gaps` such steps followed by a
        seen step are interpolated between the seen poses around them instead (`fill_gaps`).
    """
    cfg = config or ExtractionConfig()
    names = [v for v in cfg.views if v in views]
    if not names:
        raise ValueError(f"no frames for the configured views {cfg.views}; got views {sorted(views)}")
    T = {v: views[v].points_C.shape[0] for v in names}
    if len(set(T.values())) != 1:
        raise ValueError(f"all views need the same number of frames, got {T}")
    T = next(iter(T.values()))
    arms = tuple(condition.hand_masks)
    if not arms:
        raise ValueError("condition.hand_masks is empty: give at least one arm's hand mask")
    model = hand_model
    trk: dict[tuple[str, str], IcpHandTracker] = dict(trackers or {})  # or PointmapRgbdTracker
    for arm in arms:
        for v in names:
            if (arm, v) not in trk:
                trk[(arm, v)] = _make_tracker(cfg, model)
                model = trk[(arm, v)].model  # load the mesh once
    A = len(arms)
    per_X = {v: np.tile(np.eye(4), (T, A, 1, 1)) for v in names}
    per_s = {v: np.zeros((T, A)) for v in names}
    reg_score = np.zeros(A)
    held = np.tile(np.eye(4), (A, 1, 1))  # per arm the last pose some view saw: the registered pose to begin with
    registered = held.copy()
    for a, arm in enumerate(arms):
        init = (condition.X_CG_init or {}).get(arm)
        first = trk[(arm, names[0])]
        res = first.register_points(condition.points_C, condition.valid, condition.hand_masks[arm], init,
                                    rgb=condition.rgb)
        reg_score[a], held[a] = res.score, res.X_CG
        registered[a] = res.X_CG
        prev = (condition.X_CG_prev or {}).get(arm)
        if prev is not None and init is not None:
            # The guessed motion prev -> init, applied backwards from the registered pose.
            prev = res.X_CG @ invert_pose(np.asarray(init, dtype=np.float64)) @ np.asarray(prev, dtype=np.float64)
        else:
            prev = None
        for v in names:
            t = trk[(arm, v)]
            if t is not first or prev is not None:
                # Same hand, same frame C: start every view's tracker from the registered pose.
                t.set_pose(res.X_CG, prev)
    fused_X = np.tile(np.eye(4), (T, A, 1, 1))
    conf = np.zeros((T, A))
    src = np.full((T, A), names[0], dtype="<U1")
    closed = np.zeros((T, A), bool)
    reading = np.zeros((T, A), np.int8)  # what the fingers alone read: -1 closed, +1 open, 0 not measured
    dist = np.full((T, A), np.nan)
    grippers = [GripperStateEstimator(cfg.gripper, closed=bool((condition.gripper_closed or {}).get(arm, False)),
                                      held_opening=(condition.gripper_opening or {}).get(arm))
                for arm in arms]
    for k in range(T):
        for a, arm in enumerate(arms):
            for v in names:
                per_X[v][k, a] = held[a]
                try:
                    rgb = None if views[v].rgb is None else views[v].rgb[k]
                    r = trk[(arm, v)].track_points(views[v].points_C[k], views[v].valid[k], rgb=rgb)
                except TrackingLostError:
                    continue
                if r.score > 0:  # a score of 0 means this view saw nothing of the hand: hold, do not guess
                    per_X[v][k, a], per_s[v][k, a] = r.X_CG, r.score
            best = max(names, key=lambda v: per_s[v][k, a])
            src[k, a] = best
            if per_s[best][k, a] <= 0 or per_s[best][k, a] < cfg.min_confidence:
                # Unseen (or too little of it): hold the last pose and gripper state, confidence 0.
                fused_X[k, a] = held[a]
                closed[k, a] = grippers[a].closed
                continue
            fused_X[k, a], conf[k, a] = per_X[best][k, a], per_s[best][k, a]
            held[a] = fused_X[k, a]
            if cfg.share_fused_pose and len(names) > 1:
                prev = fused_X[k - 1, a] if k > 0 else None
                for v in names:
                    trk[(arm, v)].set_pose(fused_X[k, a], prev)
            meas = measure_fingers(views[best].points_C[k], views[best].valid[k], fused_X[k, a], cfg.gripper,
                                   trk[(arm, best)].model)
            d = meas.distance
            dist[k, a] = np.nan if d is None else d
            closed[k, a] = grippers[a].update_measurement(meas)
            if grippers[a].last_reading is not None:
                reading[k, a] = -1 if grippers[a].last_reading else 1
        if progress is not None:
            progress(k, T)
    if cfg.backdate_release:
        backdate_releases(closed, reading)
    if cfg.grasp_on_unseen_dwell:
        close_on_unseen_dwell(fused_X, closed, reading, conf > 0, registered, approach=cfg.grasp_approach,
                              still=cfg.grasp_still, dwell_steps=cfg.grasp_dwell_steps,
                              X_approach_from=_references(condition.X_CG_approach_from, arms, registered))
    interpolated = fill_gaps(fused_X, conf > 0, registered) if cfg.interpolate_gaps else np.zeros((T, A), bool)
    if cfg.release_on_unseen_dwell:
        open_on_unseen_dwell(fused_X, closed, reading, registered, approach=cfg.grasp_approach,
                             still=cfg.grasp_still, dwell_steps=cfg.grasp_dwell_steps,
                             X_carry_from=_references(condition.X_CG_carry_from, arms, registered))
    return ExtractionResult(
        arms=arms, X_CE=fused_X @ X_GE, X_CG=fused_X, confidence=conf, source_view=src, gripper_closed=closed,
        finger_distance=dist, per_view_confidence=per_s, per_view_X_CG=per_X, register_confidence=reg_score,
        gripper_reading=reading, interpolated=interpolated,
    )


def fill_gaps(X: np.ndarray, seen: np.ndarray, X_start: np.ndarray) -> np.ndarray:
    """Interpolate, in place, the poses of unseen steps that a seen step follows.

    Args:
        X: (T, A, 4, 4) poses per step and arm (any one frame, metres); unseen steps are overwritten.
        seen: (T, A) bool, the steps whose pose was measured.
        X_start: (A, 4, 4) the pose before step 0 (the registered pose), the start of a gap at step 0.

    Returns:
        (T, A) bool, the steps that were interpolated. A gap runs on the straight line (rotation: slerp)
        from the pose before it to the next seen pose, evenly in time; unseen steps after the last seen
        one are left as they are.
    """
    T, A = seen.shape
    filled = np.zeros((T, A), bool)
    for a in range(A):
        idx = np.flatnonzero(seen[:, a])
        before = -1  # the step of the gap's start pose (-1: X_start)
        for k1 in idx:
            if k1 - before > 1:
                X0 = X_start[a] if before < 0 else X[before, a]
                s = (np.arange(before + 1, k1) - before) / (k1 - before)
                X[before + 1:k1, a] = interpolate_pose(X0, X[k1, a], s)
                filled[before + 1:k1, a] = True
            before = k1
    return filled


def _references(given: Mapping[str, np.ndarray] | None, arms: Sequence[str], registered: np.ndarray) -> list[np.ndarray]:
    """Per arm the (K, 4, 4) poses an advance is counted from: the registered pose and the `given` ones."""
    return [np.concatenate([registered[a][None], np.asarray((given or {}).get(arm, np.empty((0, 4, 4))),
                                                            dtype=np.float64).reshape(-1, 4, 4)])
            for a, arm in enumerate(arms)]


def _dwell_after_advance(X: np.ndarray, X_start: np.ndarray, X_from: np.ndarray, still_counts: np.ndarray,
                         stop: np.ndarray, *, approach: float, still: float, dwell_steps: int) -> int | None:
    """First step of the first `dwell_steps` steps in a row of one arm's (T, 4, 4) poses `X` that each moved at
    most `still` from the step before (the first from `X_start`) and count (`still_counts`), and whose first step
    lies at least `approach` along `X_start`'s +z beyond one of the (4, 4) or (K, 4, 4) poses `X_from`; None
    when there is none or a `stop` step comes first (before the dwell's end)."""
    p = np.concatenate([X_start[None, :3, 3], X[:, :3, 3]])  # p[k + 1] = step k
    axis = X_start[:3, 2]
    behind = np.min(np.asarray(X_from, dtype=np.float64).reshape(-1, 4, 4)[:, :3, 3] @ axis)  # the farthest back
    run = 0  # counted steps in a row that moved less than `still`
    for k in range(len(X)):
        if stop[k]:
            return None
        run = run + 1 if still_counts[k] and np.linalg.norm(p[k + 1] - p[k]) <= still else 0
        if run >= dwell_steps and np.dot(p[k + 1 - dwell_steps], axis) - behind >= approach:
            return k + 1 - dwell_steps
    return None


def close_on_unseen_dwell(X: np.ndarray, closed: np.ndarray, reading: np.ndarray, seen: np.ndarray,
                          X_start: np.ndarray, *, approach: float, still: float, dwell_steps: int,
                          X_approach_from: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Close, in place, the grippers of hands that approached and stopped while their fingers were unmeasured.

    Args:
        X: (T, A, 4, 4) hand poses per step (camera frame, metres).
        closed: (T, A) bool gripper state per step; changed in place.
        reading: (T, A) int8 finger readings (-1 closed, +1 open, 0 none).
        seen: (T, A) bool, the steps whose pose was measured (held poses do not count as a dwell).
        X_start: (A, 4, 4) the registered pose before step 0.
        approach: advance along the registered hand's +z before the dwell, metres.
        still: largest per-step motion during the dwell, metres.
        dwell_steps: steps of the dwell.
        X_approach_from: per arm a (4, 4) or (K, 4, 4) pose(s) the approach is counted from (the largest advance
            counts; default X_start), e.g. earlier poses.

    Returns:
        (T, A) bool `closed`. For each arm open at the dwell and without any finger reading from step 0 to its
        end, the gripper closes from the dwell's first step (the hand's first still step) and stays closed
        until the fingers read open.
    """
    T, A = closed.shape
    since = X_start if X_approach_from is None else X_approach_from
    for a in range(A):
        j = _dwell_after_advance(X[:, a], X_start[a], since[a], seen[:, a], (reading[:, a] != 0) | closed[:, a],
                                 approach=approach, still=still, dwell_steps=dwell_steps)
        while j is not None and j < T and reading[j, a] != 1:  # the fingers close while the hand waits
            closed[j, a] = True
            j += 1
    return closed


def open_on_unseen_dwell(X: np.ndarray, closed: np.ndarray, reading: np.ndarray, X_start: np.ndarray, *,
                         approach: float, still: float, dwell_steps: int,
                         X_carry_from: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Open, in place, the grippers of closed hands that advanced and stopped while their fingers were unmeasured.

    The release counterpart of `close_on_unseen_dwell`: an object is set down by pushing it home along the
    hand's +z (into a compartment, onto a table from above) and letting go while the hand waits.

    Args:
        X: (T, A, 4, 4) hand poses per step as the plan will run them (camera frame, metres); unseen steps that
            hold the last pose count as still (the hand waits there).
        closed: (T, A) bool gripper state per step; changed in place.
        reading: (T, A) int8 finger readings (-1 closed, +1 open, 0 none).
        X_start: (A, 4, 4) the registered pose before step 0.
        approach: advance along the registered hand's +z before the dwell, metres.
        still: largest per-step motion during the dwell, metres.
        dwell_steps: steps of the dwell.
        X_carry_from: per arm a (4, 4) or (K, 4, 4) pose(s) the advance is counted from (the largest advance
            counts; default X_start), e.g. earlier poses.

    Returns:
        (T, A) bool `closed`. For each arm closed at the dwell and without any finger reading from step 0 to its
        end, the gripper opens from the dwell's first step and stays open until the fingers read closed.
    """
    T, A = closed.shape
    since = X_start if X_carry_from is None else X_carry_from
    for a in range(A):
        j = _dwell_after_advance(X[:, a], X_start[a], since[a], np.ones(T, bool),
                                 (reading[:, a] != 0) | ~closed[:, a], approach=approach, still=still,
                                 dwell_steps=dwell_steps)
        while j is not None and j < T and reading[j, a] != -1:
            closed[j, a] = False
            j += 1
    return closed


def backdate_releases(closed: np.ndarray, reading: np.ndarray) -> np.ndarray:
    """Move every release (closed at k-1, open at k) of (T, A) `closed` back, in place, to just after the
    last earlier step whose finger reading (`reading`: -1 closed, +1 open, 0 none) was closed."""
    T, A = closed.shape
    for a in range(A):
        for k in range(1, T):
            if closed[k - 1, a] and not closed[k, a]:
                j = k - 1
                while j >= 0 and closed[j, a] and reading[j, a] != -1:
                    closed[j, a] = False
                    j -= 1
    return closed


def extract_from_prediction(prediction, condition: ConditionFrame, config: ExtractionConfig | None = None,
                            **kwargs) -> ExtractionResult:
    """`extract_trajectory` on a world-model `Prediction` (view n's and view m's points in camera n's frame).

    `condition` must be at the prediction's resolution (see `WorldModel.prepare`).
    """
    views = {
        "n": ViewSequence(prediction.points_n, prediction.valid_n, prediction.rgb_n),
        "m": ViewSequence(prediction.points_m_in_n, prediction.valid_m, prediction.rgb_m),
    }
    return extract_trajectory(condition, views, config, **kwargs)


def hand_masks_from_labels(label: np.ndarray, label_parts: Mapping[str, Sequence[int]],
                           arms: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Per-arm hand masks from a simulator label image: parts "hand" (one arm) or "<arm>/hand"."""
    label = np.asarray(label)
    if arms is None:
        arms = sorted({k.split("/")[0] for k in label_parts if k.endswith("/hand")})
    if not arms:
        return {"arm": np.isin(label, list(label_parts["hand"]))}
    return {arm: np.isin(label, list(label_parts[f"{arm}/hand"])) for arm in arms}
