"""First-frame gripper masks: SAM2 on real cameras, the renderer's label image in simulation.

`Sam2MaskProvider` wraps SAM2's video predictor (github.com/facebookresearch/sam2, documented API:
`sam2.build_sam.build_sam2_video_predictor`, `init_state`, `add_new_points_or_box`), prompted with a
pixel box or positive pixel points, e.g. the box around the robot's end effector from
`prompt_from_pose`. SAM2 is imported lazily in the constructor; it needs the `sam2` package, a
checkpoint and torchvision (not installable on the CPU-only machines, DESIGN.md §6), so where it is
missing the constructor raises `MaskProviderUnavailableError`.

`LabelMaskProvider` is the simulation path: the gripper's pixels are those whose render label is one
of the gripper bodies' labels.

Conventions (DESIGN.md §3): metres; OpenCV camera frame C; pixel coordinates (u, v) = (column, row)
with pixel centres at integers; boxes are [u0, v0, u1, v1] (SAM2's xyxy order).
"""

from __future__ import annotations

import importlib
import math
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from geo4d_core.action.tracking import TrackerUnavailableError

__all__ = [
    "MaskProviderUnavailableError",
    "Sam2Config",
    "Sam2MaskProvider",
    "LabelMaskProvider",
    "prompt_from_pose",
]

_REQUIREMENTS = (
    "SAM2 masks need the `sam2` package (github.com/facebookresearch/sam2) with torchvision, a SAM2 "
    "checkpoint file and its model config, and a CUDA GPU unless device is 'cpu'. In simulation use "
    "LabelMaskProvider with the renderer's label image instead."
)
_OBJ_ID = 1  # SAM2 object id of the gripper


class MaskProviderUnavailableError(TrackerUnavailableError):
    """A mask provider cannot run here (missing package, checkpoint or GPU); the message says what is needed.

    A subclass of TrackerUnavailableError so that one `except` covers every unavailable perception backend.
    """


@dataclass
class Sam2Config:
    """Settings of the SAM2 mask provider."""

    # SAM2 model config as build_sam2_video_predictor expects it, e.g. "configs/sam2.1/sam2.1_hiera_s.yaml".
    model_cfg: str
    # Path of the SAM2 checkpoint (.pt) matching model_cfg.
    checkpoint: str
    # torch device the predictor runs on ("cuda", "cuda:1" or "cpu").
    device: str = "cuda"
    # JPEG quality (1-100) of the frame handed to SAM2 (its video predictor reads JPEG folders).
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        for name in ("model_cfg", "checkpoint", "device"):
            value = getattr(self, name)
            if not isinstance(value, (str, Path)) or not str(value):
                raise ValueError(f"Sam2Config.{name} must be a non-empty string, got {value!r}")
            setattr(self, name, str(value))
        q = self.jpeg_quality
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
            raise ValueError(f"Sam2Config.jpeg_quality must be an integer in [1, 100], got {q!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Sam2Config":
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error."""
        if not isinstance(d, Mapping):
            raise TypeError(f"Sam2Config.from_dict expects a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Sam2Config: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly dict that `from_dict` reads back."""
        return asdict(self)


class Sam2MaskProvider:
    """Gripper mask of one RGB frame from SAM2's video predictor, prompted with a box and/or points."""

    def __init__(self, config: Sam2Config):
        if not isinstance(config, Sam2Config):
            raise TypeError(f"config must be a Sam2Config, got {type(config).__name__}")
        self.config = config
        try:
            build_sam = importlib.import_module("sam2.build_sam")
            import torch
        except Exception as err:  # ImportError, or a broken install (e.g. torchvision) failing at import
            raise MaskProviderUnavailableError(
                f"SAM2 unavailable: cannot import `sam2.build_sam` ({type(err).__name__}: {err}). {_REQUIREMENTS}"
            ) from err
        if not Path(config.checkpoint).is_file():
            raise MaskProviderUnavailableError(
                f"SAM2 unavailable: checkpoint file not found: {config.checkpoint}. {_REQUIREMENTS}"
            )
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise MaskProviderUnavailableError(
                f"SAM2 unavailable: device {config.device!r} requested but torch.cuda.is_available() is False "
                f"(set device: cpu to run slowly on the CPU). {_REQUIREMENTS}"
            )
        self._torch = torch
        self._predictor = build_sam.build_sam2_video_predictor(config.model_cfg, config.checkpoint,
                                                               device=config.device)

    def first_frame_mask(self, rgb: np.ndarray, *, points_px: np.ndarray | None = None,
                         box_px: np.ndarray | None = None) -> np.ndarray:
        """Mask of the prompted object (the gripper) in one frame.

        Args:
            rgb: (H, W, 3) uint8 RGB image.
            points_px: optional (P, 2) positive click points (u, v) in pixels, all labelled foreground.
            box_px: optional (4,) box [u0, v0, u1, v1] in pixels, u0 < u1, v0 < v1 (see `prompt_from_pose`).
                At least one of points_px / box_px is required; both may be given.

        Returns:
            (H, W) bool mask, True on the object (SAM2's mask logits > 0).
        """
        import cv2

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        if points_px is None and box_px is None:
            raise ValueError("first_frame_mask needs a prompt: give points_px, box_px or both")
        prompt: dict[str, Any] = {}
        if points_px is not None:
            pts = np.asarray(points_px, dtype=np.float32)
            if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0 or not np.all(np.isfinite(pts)):
                raise ValueError(
                    f"points_px must be a finite (P, 2) array of (u, v) pixels with P >= 1, got {pts.shape}"
                )
            prompt["points"] = pts
            prompt["labels"] = np.ones(pts.shape[0], dtype=np.int32)
        if box_px is not None:
            box = np.asarray(box_px, dtype=np.float32)
            if box.shape != (4,) or not np.all(np.isfinite(box)) or not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(
                    f"box_px must be a finite [u0, v0, u1, v1] with u0 < u1 and v0 < v1, got {box.tolist()}"
                )
            prompt["box"] = box

        with tempfile.TemporaryDirectory(prefix="geo4d-sam2-") as folder:
            # SAM2 reads a folder of JPEGs named by their integer frame index.
            path = str(Path(folder) / "00000.jpg")
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(path, bgr, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]):
                raise RuntimeError(f"could not write the SAM2 input frame {path}")
            with self._torch.inference_mode():
                state = self._predictor.init_state(video_path=folder)
                _, obj_ids, mask_logits = self._predictor.add_new_points_or_box(
                    inference_state=state, frame_idx=0, obj_id=_OBJ_ID, **prompt)
        ids = [int(i) for i in obj_ids]
        if _OBJ_ID not in ids:
            raise RuntimeError(f"SAM2 returned masks for objects {ids}, not for the prompted object {_OBJ_ID}")
        logits = _to_numpy(mask_logits[ids.index(_OBJ_ID)])
        while logits.ndim > 2 and logits.shape[0] == 1:  # SAM2 gives (1, H, W) per object
            logits = logits[0]
        if logits.shape != (height, width):
            raise RuntimeError(f"SAM2 returned a mask of shape {logits.shape}, expected {(height, width)}")
        return logits > 0.0


class LabelMaskProvider:
    """Gripper mask from a renderer label image (simulation): pixels whose label is one of `label_values`."""

    def __init__(self, label_values: Sequence[int]):
        values = np.asarray(list(label_values))
        if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"label_values must be a non-empty sequence of integer labels, got {list(label_values)!r}")
        self.label_values = values  # (L,) integer render labels of the gripper bodies

    def mask(self, label_image: np.ndarray) -> np.ndarray:
        """(H, W) bool mask of the pixels whose label is in `label_values`.

        Args:
            label_image: (H, W) or (H, W, 1) integer label image (e.g. Drake's render labels).
        """
        labels = np.asarray(label_image)
        if labels.ndim == 3 and labels.shape[2] == 1:
            labels = labels[..., 0]
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"label_image must be an integer (H, W) image, got {labels.dtype} {labels.shape}")
        return np.isin(labels, self.label_values)


def prompt_from_pose(X_CE: np.ndarray, K: np.ndarray, height: int, width: int,
                     radius_m: float = 0.05) -> np.ndarray:
    """Pixel box around the image of a sphere of `radius_m` centred on the end effector.

    The box is the exact bounding box of the sphere's perspective image (its extreme rays are the planes
    through the camera centre tangent to the sphere), clipped to the image. With a skewed K it is the
    box of the skewed image of the x/y tangent bounds, which still contains the sphere's image.

    Args:
        X_CE: (4, 4) pose of the end effector E in camera C (only its origin is used), metres.
        K: (3, 3) intrinsics of camera C, pixels.
        height, width: image size, pixels.
        radius_m: sphere radius, metres, > 0 (large enough to contain the gripper).

    Returns:
        (4,) float64 box [u0, v0, u1, v1] in pixels, inside [0, width - 1] x [0, height - 1].

    Raises:
        ValueError: if the sphere is not entirely in front of the camera or its image misses the image.
    """
    X = np.asarray(X_CE, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    if X.shape != (4, 4) or not np.all(np.isfinite(X)):
        raise ValueError(f"X_CE must be a finite (4, 4) pose, got shape {X.shape}")
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must be a finite (3, 3) intrinsic matrix with fx, fy > 0, got {K.tolist()}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    r = float(radius_m)
    if not (math.isfinite(r) and r > 0.0):
        raise ValueError(f"radius_m must be finite and > 0, got {radius_m!r}")
    c = X[:3, 3]
    if c[2] <= r:
        raise ValueError(
            f"the {r} m sphere around the end effector at {c.tolist()} m (camera frame) is not entirely in "
            "front of the camera (z must exceed the radius)"
        )
    # Tangent planes x - t z = 0 (and y - t z = 0): (c_a - t c_z)^2 = r^2 (1 + t^2), solved for t (a = x, y).
    ca, cz = c[:2], c[2]
    root = r * np.sqrt(ca ** 2 + cz ** 2 - r ** 2)
    denom = cz ** 2 - r ** 2
    t_lo, t_hi = (ca * cz - root) / denom, (ca * cz + root) / denom  # (2,) normalised x, y bounds
    fx, s, cx, fy, cy = K[0, 0], K[0, 1], K[0, 2], K[1, 1], K[1, 2]
    skew = sorted((s * t_lo[1], s * t_hi[1]))
    u0, u1 = fx * t_lo[0] + skew[0] + cx, fx * t_hi[0] + skew[1] + cx
    v0, v1 = fy * t_lo[1] + cy, fy * t_hi[1] + cy
    if u1 < -0.5 or u0 >= width - 0.5 or v1 < -0.5 or v0 >= height - 0.5:
        raise ValueError(
            f"the end-effector sphere projects to [{u0:.1f}, {v0:.1f}, {u1:.1f}, {v1:.1f}] px, outside the "
            f"{width}x{height} image"
        )
    return np.array([np.clip(u0, 0, width - 1), np.clip(v0, 0, height - 1),
                     np.clip(u1, 0, width - 1), np.clip(v1, 0, height - 1)], dtype=np.float64)


def _to_numpy(x: Any) -> np.ndarray:
    """numpy array from a numpy array or a (possibly CUDA) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)
