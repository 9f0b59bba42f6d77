"""Affine normalisation of pointmaps into the VAE's [-1, 1]^3 input range, and its exact inverse.

An axis-aligned box [lo, hi] (metres, in the pointmap's own frame, e.g. camera n) maps to [-1, 1]^3:
p_norm = 2 (p - lo) / (hi - lo) - 1. Values are never clipped: points outside the box keep their
(|p_norm| > 1) values and are flagged in the returned `in_range` mask, so the caller decides what to do
with them and no geometry is silently distorted. Functions accept numpy arrays or torch tensors and
return the same type (torch keeps dtype and device).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from geo4d_core.geometry._backend import backend_for

__all__ = ["PointmapNormalizationConfig", "normalize_pointmap", "denormalize_pointmap"]

Array = Any  # numpy.ndarray or torch.Tensor


@dataclass
class PointmapNormalizationConfig:
    """The metric box that maps to the normalised cube [-1, 1]^3, and the fill value for invalid pixels."""

    # Lower corner (x, y, z) of the box, metres, in the pointmap's frame; maps to (-1, -1, -1).
    lo: tuple[float, float, float] = (-1.5, -1.5, 0.0)
    # Upper corner (x, y, z) of the box, metres, in the pointmap's frame; maps to (+1, +1, +1).
    hi: tuple[float, float, float] = (1.5, 1.5, 3.0)
    # Normalised value written into all three channels at invalid pixels.
    invalid_value: float = 0.0

    def __post_init__(self) -> None:
        self.lo = _vec3(self.lo, "lo")
        self.hi = _vec3(self.hi, "hi")
        bad = [axis for axis, a, b in zip("xyz", self.lo, self.hi) if not b > a]
        if bad:
            raise ValueError(
                f"PointmapNormalizationConfig: hi must be > lo on every axis; violated on {', '.join(bad)} "
                f"(lo={self.lo}, hi={self.hi})"
            )
        try:
            self.invalid_value = float(self.invalid_value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"PointmapNormalizationConfig.invalid_value must be a number, got {self.invalid_value!r}"
            ) from err
        if not math.isfinite(self.invalid_value):
            raise ValueError(
                f"PointmapNormalizationConfig.invalid_value must be finite, got {self.invalid_value}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PointmapNormalizationConfig":
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error, missing keys use defaults."""
        if not isinstance(d, Mapping):
            raise TypeError(f"PointmapNormalizationConfig.from_dict expects a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"PointmapNormalizationConfig: unknown keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict (lists for the corners) that `from_dict` reads back."""
        out = asdict(self)
        out["lo"] = list(self.lo)
        out["hi"] = list(self.hi)
        return out


def _vec3(v: Any, name: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(x) for x in v)
    except (TypeError, ValueError) as err:
        raise ValueError(f"PointmapNormalizationConfig.{name} must be 3 numbers (metres), got {v!r}") from err
    if len(vals) != 3:
        raise ValueError(f"PointmapNormalizationConfig.{name} must have 3 entries (x, y, z), got {len(vals)}")
    if not all(math.isfinite(x) for x in vals):
        raise ValueError(f"PointmapNormalizationConfig.{name} must be finite, got {vals}")
    return vals  # type: ignore[return-value]


def _check_points(points: Array, name: str) -> None:
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., H, W, 3), got {tuple(points.shape)}")


def normalize_pointmap(
    points: Array, config: PointmapNormalizationConfig, valid: Array | None = None
) -> tuple[Array, Array]:
    """Map a pointmap from metres into the normalised cube, without clipping.

    Args:
        points: (..., H, W, 3) points in metres, in the frame the config's box is defined in.
        config: the box [lo, hi] and the invalid fill value.
        valid: optional (..., H, W) bool mask of valid pixels. Non-finite points are always invalid.

    Returns:
        normalized: (..., H, W, 3) = 2 (p - lo) / (hi - lo) - 1 (unitless; same dtype as points);
            `config.invalid_value` at invalid pixels; values outside [-1, 1] are kept as they are.
        in_range: (..., H, W) bool, valid and every |normalised coordinate| <= 1.
    """
    be = backend_for(points, like=points)
    points = be.asarray(points)
    _check_points(points, "points")
    lo = be.asarray(config.lo)
    scale = be.asarray([2.0 / (h - l) for l, h in zip(config.lo, config.hi)])
    ok = be.isfinite(points).all(-1)
    if valid is not None:
        valid = be.as_bool(valid)
        if tuple(valid.shape) != tuple(points.shape[:-1]):
            raise ValueError(f"valid must have shape {tuple(points.shape[:-1])}, got {tuple(valid.shape)}")
        ok &= valid
    with be.errstate():
        normalized = (points - lo) * scale - 1.0
    in_range = ok & (be.abs(normalized) <= 1.0).all(-1)
    normalized = be.where(ok[..., None], normalized, config.invalid_value)
    return normalized, in_range


def denormalize_pointmap(
    normalized: Array, config: PointmapNormalizationConfig, valid: Array | None = None
) -> Array:
    """Exact inverse of `normalize_pointmap`'s affine map: p = (p_norm + 1) (hi - lo) / 2 + lo.

    Args:
        normalized: (..., H, W, 3) normalised points (unitless).
        config: the same config used to normalise.
        valid: optional (..., H, W) bool; pixels where it is False are set to (0, 0, 0) metres (the
            pointmap convention for invalid pixels). Without it every pixel is mapped, including those
            that hold `invalid_value`.

    Returns:
        points: (..., H, W, 3) metres, same dtype as `normalized`.
    """
    be = backend_for(normalized, like=normalized)
    normalized = be.asarray(normalized)
    _check_points(normalized, "normalized")
    lo = be.asarray(config.lo)
    half = be.asarray([(h - l) / 2.0 for l, h in zip(config.lo, config.hi)])
    points = (normalized + 1.0) * half + lo
    if valid is None:
        return points
    valid = be.as_bool(valid)
    if tuple(valid.shape) != tuple(points.shape[:-1]):
        raise ValueError(f"valid must have shape {tuple(points.shape[:-1])}, got {tuple(valid.shape)}")
    return be.where(valid[..., None], points, 0.0)
