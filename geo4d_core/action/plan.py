"""The robot plan produced by action extraction, its safety limits and its checks.

A `Plan` is a short chunk of end-effector targets for one or several arms: per step a timestamp, the
tool-centre-point pose `X_BE` of every arm in the robot base frame B, the gripper command (closed or
open, optionally a width) and the confidence and source view ("n" or "m") of the tracked pose.

Conventions (DESIGN.md §3): metres, seconds, radians; `X_AB` is the 4×4 pose of frame B in frame A, so
`p_A = X_AB @ p_B`. B = robot base, C = camera n (the calibrated reference camera), E = tool-centre
point. Timestamps are seconds from the moment the plan starts, i.e. from the time of the current
end-effector pose `X_BE_current` given to `Plan.check`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from geo4d_core.geometry.poses import (
    compose_poses,
    is_rigid_transform,
    rotation_distance,
    translation_distance,
)

__all__ = ["PlanLimits", "Plan", "PlanViolation", "PlanRejectedError", "ViolationKind", "RIGID_ATOL"]

ViolationKind = Literal["non_finite", "not_rigid", "linear_speed", "angular_speed", "workspace"]
_KINDS = ("non_finite", "not_rigid", "linear_speed", "angular_speed", "workspace")
_VIEWS = ("n", "m")

# Tolerance on R^T R = I, det R = 1 and the bottom row when deciding whether a pose is rigid. Loose enough
# for poses that went through float32 (trackers, networks), tight enough to catch scaled or sheared ones.
RIGID_ATOL = 1e-4
# Relative slack on the speed limits so that a move of exactly the limit is not rejected by rounding.
_SPEED_RTOL = 1e-9


@dataclass
class PlanLimits:
    """Limits a plan must respect before it is sent to the robot (all in the robot base frame B)."""

    # Largest allowed speed of the tool-centre point between consecutive steps, m/s.
    max_linear_speed: float = 1.0
    # Largest allowed rotation rate of the end effector between consecutive steps, rad/s.
    max_angular_speed: float = 3.0
    # Lower corner (x, y, z) of the box the tool-centre point must stay in, metres, frame B.
    workspace_lo: tuple[float, float, float] = (-1.0, -1.0, -0.05)
    # Upper corner (x, y, z) of the box the tool-centre point must stay in, metres, frame B.
    workspace_hi: tuple[float, float, float] = (1.0, 1.0, 1.2)

    def __post_init__(self) -> None:
        for name in ("max_linear_speed", "max_angular_speed"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError) as err:
                raise ValueError(f"PlanLimits.{name} must be a number, got {value!r}") from err
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"PlanLimits.{name} must be finite and > 0, got {value}")
            setattr(self, name, value)
        self.workspace_lo = _vec3(self.workspace_lo, "workspace_lo")
        self.workspace_hi = _vec3(self.workspace_hi, "workspace_hi")
        bad = [axis for axis, lo, hi in zip("xyz", self.workspace_lo, self.workspace_hi) if not hi > lo]
        if bad:
            raise ValueError(
                f"PlanLimits: workspace_hi must be > workspace_lo on every axis; violated on {', '.join(bad)} "
                f"(workspace_lo={self.workspace_lo}, workspace_hi={self.workspace_hi})"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PlanLimits":
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error, missing keys use defaults."""
        if not isinstance(d, Mapping):
            raise TypeError(f"PlanLimits.from_dict expects a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"PlanLimits: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML/JSON-friendly dict (lists for the corners) that `from_dict` reads back."""
        out = asdict(self)
        out["workspace_lo"] = list(self.workspace_lo)
        out["workspace_hi"] = list(self.workspace_hi)
        return out


@dataclass(frozen=True)
class PlanViolation:
    """One reason why a plan must not be executed."""

    step: int  # index of the offending step (for a speed violation: the later step of the pair)
    arm: str  # name of the arm, one of Plan.arms
    kind: ViolationKind  # "non_finite", "not_rigid", "linear_speed", "angular_speed" or "workspace"
    message: str  # human-readable reason with the offending numbers and the limit

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"PlanViolation.kind must be one of {_KINDS}, got {self.kind!r}")

    def __str__(self) -> str:
        return self.message


class PlanRejectedError(ValueError):
    """A plan failed `Plan.validate`; `violations` holds every reason, the message lists them all."""

    def __init__(self, violations: Sequence[PlanViolation]):
        self.violations = list(violations)
        lines = "\n".join(f"  - {v.message}" for v in self.violations)
        super().__init__(f"plan rejected, {len(self.violations)} violation(s):\n{lines}")


@dataclass(frozen=True, eq=False)
class Plan:
    """End-effector targets and gripper commands for A arms over N steps.

    Arrays are copied and converted on construction; shapes and value ranges of the non-pose fields are
    validated here, the poses themselves (finite, rigid, speeds, workspace) by `check` / `validate`, so
    that a bad plan can still be built, logged and explained.
    """

    # (N,) seconds from the plan start (the time of the current pose), finite, >= 0, strictly increasing.
    timestamps: np.ndarray
    # A distinct arm names, e.g. ("arm",) or ("left", "right"); the second axis of every (N, A) array.
    arms: tuple[str, ...]
    # (N, A, 4, 4) tool-centre-point poses in the robot base frame B, metres.
    X_BE: np.ndarray
    # (N, A) bool gripper command, True = closed.
    gripper_closed: np.ndarray
    # (N, A) per-step confidence of the tracked pose in [0, 1].
    confidence: np.ndarray
    # (N, A) "n" or "m": the camera view whose prediction gave the pose.
    source_view: np.ndarray
    # Optional (N, A) commanded finger opening, metres, >= 0 (None = open/closed only).
    gripper_width: np.ndarray | None = None

    def __post_init__(self) -> None:
        t = _float_array(self.timestamps, "timestamps")
        if t.ndim != 1 or t.shape[0] < 1:
            raise ValueError(f"Plan.timestamps must have shape (N,) with N >= 1, got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"Plan.timestamps must be finite, got {t.tolist()}")
        if t[0] < 0.0:
            raise ValueError(
                f"Plan.timestamps are seconds from the plan start and must be >= 0, got first {t[0]}"
            )
        dt = np.diff(t)
        if np.any(dt <= 0.0):
            i = int(np.argmax(dt <= 0.0))
            raise ValueError(
                f"Plan.timestamps must be strictly increasing; step {i + 1} at {t[i + 1]} s does not come "
                f"after step {i} at {t[i]} s"
            )
        n = t.shape[0]

        if isinstance(self.arms, str):
            raise ValueError(f"Plan.arms must be a sequence of names, got the string {self.arms!r}")
        arms = tuple(self.arms)
        if not arms or not all(isinstance(a, str) and a for a in arms):
            raise ValueError(f"Plan.arms must be a non-empty sequence of non-empty strings, got {arms!r}")
        if len(set(arms)) != len(arms):
            raise ValueError(f"Plan.arms must be distinct, got {arms!r}")
        a = len(arms)

        X = _float_array(self.X_BE, "X_BE")
        if X.shape != (n, a, 4, 4):
            raise ValueError(
                f"Plan.X_BE must have shape (N, A, 4, 4) = ({n}, {a}, 4, 4) for {n} timestamps and arms "
                f"{arms}, got {X.shape}"
            )

        closed = np.array(self.gripper_closed, copy=True)
        if closed.shape != (n, a):
            raise ValueError(f"Plan.gripper_closed must have shape (N, A) = ({n}, {a}), got {closed.shape}")
        if closed.dtype != np.bool_:
            if not (np.issubdtype(closed.dtype, np.integer) and np.isin(closed, (0, 1)).all()):
                raise ValueError(
                    f"Plan.gripper_closed must be booleans (True = closed), got dtype {closed.dtype}"
                )
            closed = closed.astype(bool)

        conf = _float_array(self.confidence, "confidence")
        if conf.shape != (n, a):
            raise ValueError(f"Plan.confidence must have shape (N, A) = ({n}, {a}), got {conf.shape}")
        if not np.all(np.isfinite(conf) & (conf >= 0.0) & (conf <= 1.0)):
            raise ValueError(f"Plan.confidence must lie in [0, 1], got {conf.tolist()}")

        view = np.array(self.source_view, dtype=object, copy=True)
        if view.shape != (n, a):
            raise ValueError(f"Plan.source_view must have shape (N, A) = ({n}, {a}), got {view.shape}")
        bad_views = sorted({repr(v) for v in view.ravel() if v not in _VIEWS})
        if bad_views:
            raise ValueError(f"Plan.source_view entries must be 'n' or 'm', got {', '.join(bad_views)}")
        view = view.astype("<U1")

        width = None
        if self.gripper_width is not None:
            width = _float_array(self.gripper_width, "gripper_width")
            if width.shape != (n, a):
                raise ValueError(f"Plan.gripper_width must have shape (N, A) = ({n}, {a}), got {width.shape}")
            if not np.all(np.isfinite(width) & (width >= 0.0)):
                raise ValueError(f"Plan.gripper_width must be finite and >= 0 metres, got {width.tolist()}")

        for name, value in (("timestamps", t), ("arms", arms), ("X_BE", X), ("gripper_closed", closed),
                            ("confidence", conf), ("source_view", view), ("gripper_width", width)):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------------- build

    @classmethod
    def from_camera_poses(
        cls,
        timestamps: np.ndarray,
        X_CE: np.ndarray,
        X_BC: np.ndarray,
        gripper_closed: np.ndarray,
        confidence: np.ndarray,
        source_view: np.ndarray,
        arms: Sequence[str] = ("arm",),
        gripper_width: np.ndarray | None = None,
    ) -> "Plan":
        """Plan from end-effector poses in camera n's frame C, mapped to the base: X_BE = X_BC @ X_CE.

        Args:
            timestamps: (N,) seconds from the plan start.
            X_CE: (N, A, 4, 4) tool-centre-point poses in camera n's frame (OpenCV axes), metres.
            X_BC: (4, 4) camera n's extrinsic, the camera pose in the robot base frame; must be rigid.
            gripper_closed, confidence, source_view, gripper_width: (N, A), as in `Plan`.
            arms: the A arm names.
        """
        X_BC = _float_array(X_BC, "X_BC")
        if X_BC.shape != (4, 4):
            raise ValueError(f"X_BC (camera n in the robot base) must have shape (4, 4), got {X_BC.shape}")
        if not is_rigid_transform(X_BC, atol=RIGID_ATOL):
            raise ValueError(f"X_BC (camera n in the robot base) must be a finite rigid transform, got {X_BC.tolist()}")
        X_CE = _float_array(X_CE, "X_CE")
        if X_CE.ndim != 4 or X_CE.shape[-2:] != (4, 4):
            raise ValueError(f"X_CE must have shape (N, A, 4, 4), got {X_CE.shape}")
        return cls(
            timestamps=timestamps,
            arms=tuple(arms),
            X_BE=compose_poses(X_BC, X_CE),
            gripper_closed=gripper_closed,
            confidence=confidence,
            source_view=source_view,
            gripper_width=gripper_width,
        )

    @property
    def num_steps(self) -> int:
        """N, the number of steps."""
        return int(self.timestamps.shape[0])

    @property
    def num_arms(self) -> int:
        """A, the number of arms."""
        return len(self.arms)

    def prefix(self, steps: int) -> "Plan":
        """The plan's first `steps` steps (1 <= steps <= num_steps), e.g. the part before the first step
        that failed `check`: each step's checks depend only on it and the step before it, so the steps
        before the first violating one pass on their own."""
        if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= self.num_steps:
            raise ValueError(f"Plan.prefix: steps must be an int in [1, {self.num_steps}], got {steps!r}")
        return Plan(timestamps=self.timestamps[:steps], arms=self.arms, X_BE=self.X_BE[:steps],
                    gripper_closed=self.gripper_closed[:steps], confidence=self.confidence[:steps],
                    source_view=self.source_view[:steps],
                    gripper_width=None if self.gripper_width is None else self.gripper_width[:steps])

    # ------------------------------------------------------------------------------------------- check

    def check(self, limits: PlanLimits, X_BE_current: np.ndarray | None = None) -> list[PlanViolation]:
        """Every reason why this plan must not be executed under `limits` (empty list = fine).

        Checks, per step and arm: all pose entries finite ("non_finite"); rotation orthonormal with
        det +1 and bottom row [0, 0, 0, 1] within `RIGID_ATOL` ("not_rigid"); the tool-centre point
        inside the workspace box ("workspace"); and the translation / rotation between consecutive
        steps divided by their time difference within the speed limits ("linear_speed",
        "angular_speed"). With `X_BE_current` the move from the current pose to step 0 is checked too,
        over `timestamps[0]` seconds, or over one step period (`timestamps[1] - timestamps[0]`) when
        step 0 is at t = 0 (a one-step plan at t = 0 has no time at all: any motion is a violation).
        Speeds are not checked for pairs with a non-finite or non-rigid pose (those are reported already).

        Args:
            limits: the limits.
            X_BE_current: optional (A, 4, 4) current tool-centre-point poses in frame B, metres ((4, 4)
                is accepted for a single arm). Must be finite and rigid (a bad measurement is a
                ValueError, not a plan violation).

        Returns:
            Violations ordered by step, then arm, then kind.
        """
        if not isinstance(limits, PlanLimits):
            raise TypeError(f"limits must be a PlanLimits, got {type(limits).__name__}")
        n, a = self.num_steps, self.num_arms
        X = self.X_BE
        found: list[PlanViolation] = []

        finite = np.isfinite(X).all(axis=(-2, -1))  # (N, A)
        rigid = np.array(
            [[bool(finite[i, j]) and is_rigid_transform(X[i, j], atol=RIGID_ATOL) for j in range(a)]
             for i in range(n)],
            dtype=bool,
        ).reshape(n, a)
        for i, j in zip(*np.nonzero(~finite)):
            found.append(self._violation(i, j, "non_finite",
                                         f"X_BE has non-finite entries: {X[i, j].tolist()}"))
        for i, j in zip(*np.nonzero(finite & ~rigid)):
            R = X[i, j, :3, :3]
            ortho = float(np.abs(R.T @ R - np.eye(3)).max())
            found.append(self._violation(
                i, j, "not_rigid",
                f"X_BE is not a rigid transform (max |R^T R - I| = {ortho:.3g}, det R = {np.linalg.det(R):.6g}, "
                f"bottom row {X[i, j, 3].tolist()}; tolerance {RIGID_ATOL:g})"))

        # Workspace box.
        lo, hi = np.asarray(limits.workspace_lo), np.asarray(limits.workspace_hi)
        p = X[..., :3, 3]
        outside = finite[..., None] & ((p < lo) | (p > hi))  # (N, A, 3)
        for i, j in zip(*np.nonzero(outside.any(axis=-1))):
            axes = ", ".join("xyz"[k] for k in np.nonzero(outside[i, j])[0])
            found.append(self._violation(
                i, j, "workspace",
                f"tool-centre point {_fmt(p[i, j])} m is outside the workspace box "
                f"[{_fmt(lo)}, {_fmt(hi)}] m on axis {axes}"))

        # Speeds between consecutive steps, with the current pose as a virtual step before step 0.
        if X_BE_current is not None:
            cur = self._current(X_BE_current)
            dt0 = self._time_to_first_step()
            X_prev = np.concatenate([cur[None], X[:-1]], axis=0)
            ok_prev = np.concatenate([np.ones((1, a), dtype=bool), rigid[:-1]], axis=0)
            dt = np.concatenate([[dt0], np.diff(self.timestamps)])
            first = 0
        else:
            X_prev, ok_prev = X[:-1], rigid[:-1]
            dt = np.diff(self.timestamps)
            first = 1
        X_next, ok_next = X[first:], rigid[first:]
        if X_next.shape[0] > 0:
            ok = ok_prev & ok_next  # (N', A) pairs where both poses are usable
            # Unusable pairs become identity -> identity (zero motion); they are reported above.
            safe_prev = np.where(ok[..., None, None], X_prev, np.eye(4))
            safe_next = np.where(ok[..., None, None], X_next, np.eye(4))
            dist = translation_distance(safe_prev, safe_next)
            angle = rotation_distance(safe_prev, safe_next)
            dts = np.broadcast_to(dt[:, None], ok.shape)
            lin = _rate(dist, dts)
            ang = _rate(angle, dts)
            for kind, rate, amount, limit, unit, qty in (
                ("linear_speed", lin, dist, limits.max_linear_speed, "m/s", "m"),
                ("angular_speed", ang, angle, limits.max_angular_speed, "rad/s", "rad"),
            ):
                for k, j in zip(*np.nonzero(ok & (rate > limit * (1.0 + _SPEED_RTOL)))):
                    i = k + first
                    origin = "the current pose" if i == 0 else f"step {i - 1}"
                    found.append(self._violation(
                        i, j, kind,
                        f"{kind.replace('_', ' ')} {rate[k, j]:.4g} {unit} from {origin} "
                        f"({amount[k, j]:.4g} {qty} in {dts[k, j]:.4g} s) exceeds "
                        f"max_{kind} {limit:.4g} {unit}"))

        order = {k: r for r, k in enumerate(_KINDS)}
        found.sort(key=lambda v: (v.step, self.arms.index(v.arm), order[v.kind]))
        return found

    def validate(self, limits: PlanLimits, X_BE_current: np.ndarray | None = None) -> "Plan":
        """Return self when `check` finds nothing, else raise PlanRejectedError listing every violation."""
        violations = self.check(limits, X_BE_current)
        if violations:
            raise PlanRejectedError(violations)
        return self

    # ------------------------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of plain lists (for logging) that `from_dict` reads back exactly.

        Non-finite pose entries become float NaN / inf (Python's json writes them as NaN / Infinity).
        """
        return {
            "timestamps": self.timestamps.tolist(),
            "arms": list(self.arms),
            "X_BE": self.X_BE.tolist(),
            "gripper_closed": self.gripper_closed.tolist(),
            "confidence": self.confidence.tolist(),
            "source_view": self.source_view.tolist(),
            "gripper_width": None if self.gripper_width is None else self.gripper_width.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Plan":
        """Inverse of `to_dict`; unknown or missing keys (other than gripper_width) are an error."""
        if not isinstance(d, Mapping):
            raise TypeError(f"Plan.from_dict expects a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Plan.from_dict: unknown keys {unknown}; expected a subset of {sorted(known)}")
        missing = sorted(known - {"gripper_width"} - set(d))
        if missing:
            raise ValueError(f"Plan.from_dict: missing keys {missing}")
        return cls(**dict(d))

    # ---------------------------------------------------------------------------------------- helpers

    def _violation(self, i: Any, j: Any, kind: ViolationKind, what: str) -> PlanViolation:
        i, j = int(i), int(j)
        arm = self.arms[j]
        return PlanViolation(step=i, arm=arm, kind=kind,
                             message=f"step {i} (t = {self.timestamps[i]:.4g} s), arm {arm!r}: {what}")

    def _current(self, X_BE_current: np.ndarray) -> np.ndarray:
        cur = _float_array(X_BE_current, "X_BE_current")
        if cur.shape == (4, 4) and self.num_arms == 1:
            cur = cur[None]
        if cur.shape != (self.num_arms, 4, 4):
            raise ValueError(
                f"X_BE_current must have shape (A, 4, 4) = ({self.num_arms}, 4, 4) for arms {self.arms}, "
                f"got {cur.shape}"
            )
        for j, arm in enumerate(self.arms):
            if not is_rigid_transform(cur[j], atol=RIGID_ATOL):
                raise ValueError(
                    f"X_BE_current of arm {arm!r} must be a finite rigid transform, got {cur[j].tolist()}"
                )
        return cur

    def _time_to_first_step(self) -> float:
        t0 = float(self.timestamps[0])
        if t0 > 0.0:
            return t0
        if self.num_steps >= 2:
            return float(self.timestamps[1] - self.timestamps[0])
        return 0.0


def _rate(amount: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """amount / dt, with dt = 0 giving inf for any motion and 0 for none."""
    out = np.where(amount > 0.0, np.inf, 0.0)
    np.divide(amount, dt, out=out, where=dt > 0.0)
    return out


def _float_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Plan.{name} must be numeric, got {type(value).__name__}") from err


def _vec3(v: Any, name: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in v)
    except (TypeError, ValueError) as err:
        raise ValueError(f"PlanLimits.{name} must be 3 numbers (metres), got {v!r}") from err
    if len(vals) != 3:
        raise ValueError(f"PlanLimits.{name} must have 3 entries (x, y, z), got {len(vals)}")
    if not all(math.isfinite(x) for x in vals):
        raise ValueError(f"PlanLimits.{name} must be finite, got {vals}")
    return vals  # type: ignore[return-value]


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")"
