"""Recorded episodes on disk: the ``geo4d-episode`` zarr v3 format (version 1).

One episode is one zarr v3 directory (e.g. ``episode_000012.zarr``) holding, per time step, the
end-effector poses and gripper widths of every arm and, for every static camera, a colour image,
a depth image and a render-label image. The full on-disk layout is documented in ``README.md``
next to this file.

Conventions (DESIGN.md §3): metres, seconds; poses are 4×4 float64 homogeneous matrices named
``X_AB`` = pose of frame B in frame A (``X_WC``: camera C in world W, ``p_W = X_WC @ p_C``);
camera frames follow OpenCV (+x right, +y down, +z forward); ``K`` is 3×3 in pixels. Depth is
float32 metres in memory (0 = invalid) and uint16 millimetres on disk. Colour is uint8 H×W×3 RGB.

Integrity: :class:`EpisodeWriter` writes into ``<path>.partial`` and renames it to ``<path>`` only
in a successful :meth:`EpisodeWriter.close`, so a final path always holds a finished episode.
:class:`EpisodeReader` refuses unfinished episodes, checks every chunk file exists before reading
it (zarr would silently return zeros for a missing chunk) and turns checksum failures (every
chunk carries a CRC32C) into :class:`EpisodeCorruptError` naming the chunk file.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.storage import LocalStore

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "DEPTH_SCALE_M",
    "MAX_DEPTH_M",
    "PARTIAL_SUFFIX",
    "CameraSpec",
    "CameraFrame",
    "EpisodeMetadata",
    "EpisodeWriter",
    "EpisodeReader",
    "list_episodes",
    "EpisodeError",
    "EpisodeFormatError",
    "EpisodeIncompleteError",
    "EpisodeCorruptError",
    "EpisodeNotFoundError",
]

FORMAT_NAME = "geo4d-episode"  # value of the root attribute ``format``
FORMAT_VERSION = 1  # version written by this module
SUPPORTED_FORMAT_VERSIONS = (1,)  # versions this module can read
DEPTH_SCALE_M = 0.001  # metres per stored depth unit (uint16 millimetres)
MAX_DEPTH_M = 65535 * DEPTH_SCALE_M  # largest storable depth, 65.535 m
PARTIAL_SUFFIX = ".partial"  # suffix of the directory an unfinished episode is written to
SMALL_CHUNK_FRAMES = 256  # frames per chunk of the per-frame robot / time arrays
ZSTD_LEVEL = 3  # zstd compression level of every array
SPLITS = ("train", "test")  # valid camera splits

_INITIAL_CAPACITY = 16  # frames allocated for image arrays before the first growth
_WRITE_THREADS = 8  # threads writing the image chunks of one frame concurrently (zarr's sync API is thread-safe)
_MAX_GROWTH = 1024  # cap on frames added by one capacity growth step
_CAMERA_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CHUNK_KEY_RE = re.compile(r"(^|/)c(/[0-9]+)+$")
_RIGID_ATOL = 1e-4  # tolerance for R^T R = I and the [0 0 0 1] bottom row of poses

# Array paths inside an episode (relative to the episode directory).
_T_PATH = "time/t"
_XWE_PATH = "robot/X_WE"
_GRIPPER_PATH = "robot/gripper_width"
_IMAGE_KINDS = ("color", "depth", "label")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class EpisodeError(Exception):
    """Base class of every error about an episode on disk; messages name the path or file."""


class EpisodeFormatError(EpisodeError, ValueError):
    """The directory is not a valid geo4d episode (bad/unsupported metadata, wrong shapes)."""


class EpisodeIncompleteError(EpisodeError):
    """The episode was never finished: a ``.partial`` directory or ``complete`` is not true."""


class EpisodeCorruptError(EpisodeError):
    """Stored data is damaged: a chunk file is missing, truncated or fails its checksum.

    ``problems`` lists every problem found (one line each; :meth:`EpisodeReader.verify` may find
    several, a read finds one).
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None):
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems is not None else [message]


class EpisodeNotFoundError(EpisodeError, FileNotFoundError):
    """No episode (and no unfinished ``.partial`` directory) exists at the path."""


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _check_rigid(X: np.ndarray, what: str) -> None:
    """Raise ValueError unless ``X`` (…, 4, 4) holds finite rigid transforms."""
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{what}: pose contains non-finite values (NaN or inf)")
    bottom = X[..., 3, :]
    if not np.allclose(bottom, [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise ValueError(f"{what}: last row of a 4x4 pose must be [0, 0, 0, 1], got {bottom.tolist()}")
    R = X[..., :3, :3]
    RtR = np.swapaxes(R, -1, -2) @ R
    if not np.allclose(RtR, np.eye(3), atol=_RIGID_ATOL) or np.any(np.linalg.det(R) <= 0):
        raise ValueError(f"{what}: rotation part of the pose is not a proper rotation (R^T R != I or det <= 0)")


@dataclass(frozen=True, eq=False)
class CameraSpec:
    """A static, calibrated camera of an episode.

    ``K`` is the 3×3 pinhole intrinsic matrix in pixels (OpenCV convention, +x right, +y down,
    +z forward); ``X_WC`` is the 4×4 pose of the camera frame C in the world frame W (metres),
    constant over the episode. Arrays are copied to read-only float64 on construction.
    """

    name: str  # unique camera name; also the zarr group name ([A-Za-z0-9][A-Za-z0-9_.-]*)
    K: np.ndarray  # (3, 3) float64 intrinsics in pixels
    X_WC: np.ndarray  # (4, 4) float64 pose of the camera in the world frame, metres
    height: int  # image height H in pixels
    width: int  # image width W in pixels
    split: str = "train"  # "train" (input view) or "test" (held-out view)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _CAMERA_NAME_RE.match(self.name):
            raise ValueError(
                f"CameraSpec.name must match [A-Za-z0-9][A-Za-z0-9_.-]* (it names a zarr group), got {self.name!r}"
            )
        for attr in ("height", "width"):
            v = getattr(self, attr)
            if not _is_int(v) or v <= 0:
                raise ValueError(f"camera {self.name!r}: {attr} must be a positive int, got {v!r}")
            object.__setattr__(self, attr, int(v))
        if self.split not in SPLITS:
            raise ValueError(f"camera {self.name!r}: split must be one of {SPLITS}, got {self.split!r}")
        K = np.array(self.K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"camera {self.name!r}: K must have shape (3, 3), got {K.shape}")
        if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
            raise ValueError(
                f"camera {self.name!r}: K must be finite with fx, fy > 0 and last row [0, 0, 1], got {K.tolist()}"
            )
        X_WC = np.array(self.X_WC, dtype=np.float64)
        if X_WC.shape != (4, 4):
            raise ValueError(f"camera {self.name!r}: X_WC must have shape (4, 4), got {X_WC.shape}")
        _check_rigid(X_WC, f"camera {self.name!r} X_WC")
        K.flags.writeable = False
        X_WC.flags.writeable = False
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "X_WC", X_WC)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraSpec):
            return NotImplemented
        return (
            self.name == other.name
            and self.height == other.height
            and self.width == other.width
            and self.split == other.split
            and np.array_equal(self.K, other.K)
            and np.array_equal(self.X_WC, other.X_WC)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.height, self.width, self.split, self.K.tobytes(), self.X_WC.tobytes()))


@dataclass
class CameraFrame:
    """The images of one camera at one time step (all H×W, pixel (row, col) = (y, x))."""

    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres along the camera +z axis; 0 = invalid
    label: np.ndarray  # (H, W) int32 render label of each pixel (see EpisodeMetadata.label_parts)


@dataclass
class EpisodeMetadata:
    """Episode-level attributes stored in the root ``zarr.json``."""

    task: str  # task name, e.g. "put_cup_in_bowl"
    seed: int  # random seed the episode was generated with
    success: bool | None  # task outcome; None only while unfinished (never for a readable episode)
    num_frames: int  # number of time steps T
    fps: float  # nominal frame rate in Hz (timestamps are authoritative)
    num_arms: int  # number of arms A
    label_parts: dict[str, list[int]] = field(default_factory=dict)  # semantic part -> label values
    extra: dict[str, Any] = field(default_factory=dict)  # free JSON dict supplied by the writer's caller
    format_version: int = FORMAT_VERSION  # on-disk format version


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _chunk_file(episode_dir: Path, array_path: str, coords: Sequence[int]) -> Path:
    """File of chunk ``coords`` of an array with the default ``/`` chunk key encoding."""
    return episode_dir.joinpath(*array_path.split("/"), "c", *(str(int(c)) for c in coords))


def _camera_array_path(cam: str, kind: str) -> str:
    return f"cameras/{cam}/{kind}"


class _StrictLocalStore(LocalStore):
    """Read-only local store that raises instead of returning 'missing' for a chunk key.

    zarr reads a missing chunk as the fill value (zeros); for an episode that is always data loss,
    so it must be an error. This is a safety net behind the explicit existence checks.
    """

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        buf = await super().get(key, prototype, byte_range)
        if buf is None and _CHUNK_KEY_RE.search(key):
            raise EpisodeCorruptError(f"missing chunk file {Path(str(self.root)) / key}")
        return buf


def _read_node_json(node_dir: Path, node_type: str) -> dict[str, Any]:
    """Parse ``node_dir/zarr.json`` and check it is a zarr v3 node of ``node_type``."""
    f = node_dir / "zarr.json"
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EpisodeFormatError(f"{f}: missing (not a zarr v3 {node_type})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EpisodeFormatError(f"{f}: cannot be read: {e}") from e
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise EpisodeFormatError(f"{f}: not valid JSON (truncated or corrupted file?): {e}") from e
    if not isinstance(meta, dict):
        raise EpisodeFormatError(f"{f}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("zarr_format") != 3 or meta.get("node_type") != node_type:
        raise EpisodeFormatError(
            f"{f}: expected a zarr v3 {node_type} (zarr_format=3, node_type={node_type!r}), "
            f"got zarr_format={meta.get('zarr_format')!r}, node_type={meta.get('node_type')!r}"
        )
    attrs = meta.get("attributes", {})
    if not isinstance(attrs, dict):
        raise EpisodeFormatError(f"{f}: 'attributes' must be a JSON object")
    return meta


def _count_recorded_frames(episode_dir: Path) -> int | None:
    """Frames with a colour chunk of the first camera on disk (for messages about unfinished episodes)."""
    try:
        attrs = _read_node_json(episode_dir, "group")["attributes"]
        cam = attrs["camera_names"][0]
        cdir = episode_dir / "cameras" / cam / "color" / "c"
        if not cdir.is_dir():
            return 0
        return sum(1 for p in cdir.iterdir() if p.name.isdigit())
    except Exception:
        return None


def _frames_msg(n: int | None) -> str:
    return "an unknown number of frames were recorded" if n is None else f"{n} frame(s) were recorded"


def _compressors() -> list[Any]:
    return [ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()]


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


class EpisodeWriter:
    """Write one episode, frame by frame, atomically.

    Data goes to ``<path>.partial``; :meth:`close` finalises it and renames it to ``path``. Used
    as a context manager, an exception inside the ``with`` block leaves the ``.partial`` directory
    in place (never renamed) and propagates; leaving the block normally without calling
    :meth:`close` is an error (the outcome ``success`` must be given explicitly).

    Args:
        path: final episode directory, e.g. ``dataset/episode_000012.zarr``; parents are created.
        task: task name.
        seed: random seed of the episode.
        cameras: the static cameras; every :meth:`append` must supply exactly these names.
        num_arms: number of arms A.
        fps: nominal frame rate in Hz.
        label_parts: semantic part name -> render label values (e.g. ``{"hand": [4]}``).
        extra: free JSON-serialisable dict stored in the root attributes.
        overwrite: replace an existing episode at ``path`` (only when :meth:`close` succeeds);
            with False an existing ``path`` raises FileExistsError. A stale ``.partial`` directory
            is always removed and started over (do not run two writers on the same path).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        task: str,
        seed: int,
        cameras: Sequence[CameraSpec],
        num_arms: int = 1,
        fps: float = 10.0,
        label_parts: Mapping[str, Sequence[int]] | None = None,
        extra: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self._path = Path(path)
        if self._path.name.endswith(PARTIAL_SUFFIX):
            raise ValueError(f"{self._path}: episode path must not end with {PARTIAL_SUFFIX!r} (reserved)")
        if not isinstance(task, str):
            raise TypeError(f"{self._path}: task must be a str, got {type(task).__name__}")
        if not _is_int(seed):
            raise TypeError(f"{self._path}: seed must be an int, got {seed!r}")
        if not _is_int(num_arms) or num_arms < 1:
            raise ValueError(f"{self._path}: num_arms must be an int >= 1, got {num_arms!r}")
        if not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"{self._path}: fps must be a finite number > 0, got {fps!r}")
        cams = list(cameras)
        if not cams:
            raise ValueError(f"{self._path}: at least one camera is required")
        for c in cams:
            if not isinstance(c, CameraSpec):
                raise TypeError(f"{self._path}: cameras must be CameraSpec instances, got {type(c).__name__}")
        names = [c.name for c in cams]
        if len(set(names)) != len(names):
            raise ValueError(f"{self._path}: duplicate camera names in {names}")
        parts: dict[str, list[int]] = {}
        for part, values in (label_parts or {}).items():
            if not isinstance(part, str):
                raise TypeError(f"{self._path}: label_parts keys must be str, got {part!r}")
            vals = [values] if _is_int(values) else list(values)
            if not all(_is_int(v) and -(2**31) <= v < 2**31 for v in vals):
                raise ValueError(f"{self._path}: label_parts[{part!r}] must be int32 label values, got {values!r}")
            parts[part] = [int(v) for v in vals]
        try:
            extra_json = json.loads(json.dumps(dict(extra or {}), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self._path}: extra must be a JSON-serialisable dict (no NaN/inf): {e}") from e

        if self._path.exists() and not overwrite:
            raise FileExistsError(
                f"{self._path}: episode already exists; pass overwrite=True to replace it or choose another path"
            )
        self._overwrite = bool(overwrite)
        self._partial = _partial_path(self._path)
        if self._partial.exists() or self._partial.is_symlink():
            if self._partial.is_dir() and not self._partial.is_symlink():
                shutil.rmtree(self._partial)
            else:
                self._partial.unlink()
        self._partial.parent.mkdir(parents=True, exist_ok=True)

        self._cameras: dict[str, CameraSpec] = {c.name: c for c in cams}
        self._num_arms = int(num_arms)
        self._n = 0
        self._capacity = 0
        self._last_t = -math.inf
        self._times: list[float] = []
        self._X_WE: list[np.ndarray] = []
        self._gripper: list[np.ndarray] = []
        self._closed = False  # close() finished
        self._failed: str | None = None  # reason the writer became unusable
        self._pool: ThreadPoolExecutor | None = None  # concurrent chunk writes, created on first append

        attrs = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "task": task,
            "seed": int(seed),
            "success": None,
            "complete": False,
            "num_frames": 0,
            "fps": float(fps),
            "num_arms": self._num_arms,
            "camera_names": names,
            "label_parts": parts,
            "extra": extra_json,
        }
        self._store = LocalStore(str(self._partial))
        self._root = zarr.open_group(self._store, mode="w-", zarr_format=3, attributes=attrs)
        A = self._num_arms
        self._t_arr = self._create(_T_PATH, (0,), (SMALL_CHUNK_FRAMES,), np.float64, ("t",), {"units": "s"})
        self._xwe_arr = self._create(
            _XWE_PATH, (0, A, 4, 4), (SMALL_CHUNK_FRAMES, A, 4, 4), np.float64, ("t", "arm", "row", "col"),
            {"units": "m", "frame": "world", "description": "X_WE: end-effector pose in the world frame"},
        )
        self._grip_arr = self._create(
            _GRIPPER_PATH, (0, A), (SMALL_CHUNK_FRAMES, A), np.float32, ("t", "arm"), {"units": "m"}
        )
        self._img: dict[str, dict[str, Any]] = {}
        for c in cams:
            g = self._root.create_group(
                f"cameras/{c.name}", attributes={"split": c.split, "height": c.height, "width": c.width}
            )
            del g
            base = f"cameras/{c.name}"
            k = self._create(f"{base}/K", (3, 3), (3, 3), np.float64, ("row", "col"), {"units": "px"})
            k[...] = c.K
            x = self._create(f"{base}/X_WC", (4, 4), (4, 4), np.float64, ("row", "col"),
                             {"units": "m", "frame": "world", "description": "X_WC: camera pose in the world"})
            x[...] = c.X_WC
            H, W = c.height, c.width
            self._img[c.name] = {
                "color": self._create(f"{base}/color", (0, H, W, 3), (1, H, W, 3), np.uint8,
                                      ("t", "y", "x", "rgb"), {"units": "rgb8"}),
                "depth": self._create(f"{base}/depth", (0, H, W), (1, H, W), np.uint16, ("t", "y", "x"),
                                      {"units": "mm", "invalid_value": 0,
                                       "description": "z-depth along the camera +z axis"}),
                "label": self._create(f"{base}/label", (0, H, W), (1, H, W), np.int32, ("t", "y", "x"),
                                      {"description": "render label; see root attribute label_parts"}),
            }

    def _create(self, name, shape, chunks, dtype, dims, attrs) -> zarr.Array:
        return self._root.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            compressors=_compressors(),
            chunk_key_encoding={"name": "default", "separator": "/"},
            dimension_names=dims,
            attributes=attrs,
            config={"write_empty_chunks": True},
        )

    # ---- properties

    @property
    def path(self) -> Path:
        """Final episode directory (exists only after a successful :meth:`close`)."""
        return self._path

    @property
    def partial_path(self) -> Path:
        """Directory the episode is written to until :meth:`close`."""
        return self._partial

    @property
    def num_frames(self) -> int:
        """Frames appended so far."""
        return self._n

    @property
    def cameras(self) -> dict[str, CameraSpec]:
        """Declared cameras by name."""
        return dict(self._cameras)

    # ---- validation

    def _check_usable(self) -> None:
        if self._closed:
            raise EpisodeError(f"{self._path}: writer is already closed")
        if self._failed is not None:
            raise EpisodeError(
                f"{self._partial}: writer is unusable after an earlier failure ({self._failed}); "
                "the unfinished episode was left in the .partial directory"
            )

    def _validate_frame(self, spec: CameraSpec, frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        name, H, W = spec.name, spec.height, spec.width
        try:
            color, depth, label = frame.color, frame.depth, frame.label
        except AttributeError:
            raise TypeError(
                f"camera {name!r}: expected a CameraFrame (color, depth, label), got {type(frame).__name__}"
            ) from None
        color = np.asarray(color)
        if color.dtype != np.uint8:
            raise ValueError(
                f"camera {name!r}: color must be uint8 RGB (0..255), got dtype {color.dtype}"
                + (" (convert float images in [0, 1] with (img * 255).round().astype(np.uint8))"
                   if color.dtype.kind == "f" else "")
            )
        if color.shape != (H, W, 3):
            hint = " (drop the alpha channel: color[..., :3])" if color.shape == (H, W, 4) else ""
            raise ValueError(f"camera {name!r}: color must have shape {(H, W, 3)}, got {color.shape}{hint}")
        depth = np.asarray(depth)
        if depth.ndim == 3 and depth.shape[2] == 1:
            depth = depth[..., 0]
        if depth.shape != (H, W):
            raise ValueError(f"camera {name!r}: depth must have shape {(H, W)}, got {depth.shape}")
        if depth.dtype.kind != "f":
            raise ValueError(
                f"camera {name!r}: depth must be floating-point metres, got dtype {depth.dtype} "
                "(convert millimetres with depth_mm / 1000.0)"
            )
        d = depth.astype(np.float64)
        finite = np.isfinite(d)
        d = np.where(finite, d, 0.0)  # non-finite depth -> 0 = invalid
        if np.any(d < 0):
            raise ValueError(
                f"camera {name!r}: depth has {int(np.count_nonzero(d < 0))} negative value(s) "
                f"(min {d.min():.6g} m); depth must be >= 0 metres (0 = invalid)"
            )
        mm = np.rint(d * (1.0 / DEPTH_SCALE_M))
        if np.any(mm > 65535):
            raise ValueError(
                f"camera {name!r}: depth has {int(np.count_nonzero(mm > 65535))} value(s) above the storable "
                f"maximum {MAX_DEPTH_M} m (max {d.max():.6g} m); set far pixels to 0 (invalid) or inf"
            )
        depth_mm = mm.astype(np.uint16)
        label = np.asarray(label)
        if label.ndim == 3 and label.shape[2] == 1:
            label = label[..., 0]
        if label.shape != (H, W):
            raise ValueError(f"camera {name!r}: label must have shape {(H, W)}, got {label.shape}")
        if label.dtype.kind not in "iu":
            raise ValueError(f"camera {name!r}: label must have an integer dtype, got {label.dtype}")
        if label.dtype.itemsize >= 4 and label.size and (
            label.min() < np.iinfo(np.int32).min or label.max() > np.iinfo(np.int32).max
        ):
            raise ValueError(f"camera {name!r}: label values must fit in int32")
        return color, depth_mm, label.astype(np.int32, copy=False)

    # ---- writing

    def append(
        self,
        t: float,
        X_WE: np.ndarray,
        gripper_width: np.ndarray | float,
        frames: Mapping[str, CameraFrame],
    ) -> None:
        """Append one time step.

        Args:
            t: timestamp in seconds; strictly greater than the previous one.
            X_WE: (A, 4, 4) end-effector poses in the world frame (metres); (4, 4) when A == 1.
            gripper_width: (A,) gripper opening in metres; a float when A == 1.
            frames: one :class:`CameraFrame` per declared camera, keyed by camera name. Depth is
                float metres; NaN/inf are stored as 0 (invalid); negative depth or depth above
                65.535 m is an error. Depth is rounded to the nearest millimetre (values below
                0.5 mm become 0 = invalid).

        Raises ValueError / TypeError (nothing is written) for bad input.
        """
        self._check_usable()
        A = self._num_arms
        if not isinstance(t, numbers.Real) or isinstance(t, (bool, np.bool_)) or not math.isfinite(t):
            raise ValueError(f"frame {self._n}: t must be a finite number of seconds, got {t!r}")
        t = float(t)
        if t <= self._last_t:
            raise ValueError(
                f"frame {self._n}: timestamps must be strictly increasing, got t={t!r} after t={self._last_t!r}"
            )
        X = np.array(X_WE, dtype=np.float64)
        if A == 1 and X.shape == (4, 4):
            X = X[None]
        if X.shape != (A, 4, 4):
            raise ValueError(f"frame {self._n}: X_WE must have shape ({A}, 4, 4) for {A} arm(s), got {X.shape}")
        _check_rigid(X, f"frame {self._n}: X_WE")
        g = np.array(gripper_width, dtype=np.float64)
        if A == 1 and g.shape == ():
            g = g[None]
        if g.shape != (A,):
            raise ValueError(f"frame {self._n}: gripper_width must have shape ({A},), got {g.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError(f"frame {self._n}: gripper_width must be finite metres, got {g.tolist()}")
        if not isinstance(frames, Mapping):
            raise TypeError(f"frame {self._n}: frames must be a mapping camera name -> CameraFrame")
        got, want = set(frames), set(self._cameras)
        if got != want:
            raise ValueError(
                f"frame {self._n}: frames must contain exactly the declared cameras {sorted(want)}; "
                f"missing {sorted(want - got)}, unexpected {sorted(map(str, got - want))}"
            )
        images = {name: self._validate_frame(spec, frames[name]) for name, spec in self._cameras.items()}

        n = self._n
        writes = [
            (self._img[name][kind], data)
            for name, frame_data in images.items()
            for kind, data in zip(_IMAGE_KINDS, frame_data, strict=True)
        ]
        try:
            if n >= self._capacity:
                self._grow(n + 1)
            if self._pool is None and len(writes) > 1:
                self._pool = ThreadPoolExecutor(min(_WRITE_THREADS, len(writes)), thread_name_prefix="geo4d-episode")
            if self._pool is None:
                for arr, data in writes:
                    arr[n] = data
            else:
                futures = [self._pool.submit(arr.__setitem__, n, data) for arr, data in writes]
                for f in futures:  # wait for all before raising the first error
                    f.exception()
                for f in futures:
                    f.result()
        except BaseException as e:
            self._failed = f"write of frame {n} failed: {type(e).__name__}: {e}"
            raise
        self._times.append(t)
        self._X_WE.append(X)
        self._gripper.append(g.astype(np.float32))
        self._last_t = t
        self._n = n + 1

    def _grow(self, needed: int) -> None:
        cap = max(_INITIAL_CAPACITY, self._capacity)
        while cap < needed:
            cap += min(cap, _MAX_GROWTH)
        for arrs in self._img.values():
            for a in arrs.values():
                a.resize((cap, *a.shape[1:]))
        self._capacity = cap

    def close(self, success: bool) -> Path:
        """Finish the episode and atomically move it to its final path; returns that path.

        Writes the time and robot arrays, trims the image arrays to exactly ``num_frames``, sets
        ``success``, ``num_frames`` and ``complete=True``, then renames ``<path>.partial`` to
        ``<path>`` (replacing an existing episode only when ``overwrite=True``).
        """
        if not isinstance(success, (bool, np.bool_)):
            raise TypeError(f"{self._path}: success must be a bool, got {success!r}")
        self._check_usable()
        n = self._n
        try:
            self._t_arr.resize((n,))
            self._xwe_arr.resize((n, self._num_arms, 4, 4))
            self._grip_arr.resize((n, self._num_arms))
            if n:
                self._t_arr[:] = np.asarray(self._times, dtype=np.float64)
                self._xwe_arr[:] = np.stack(self._X_WE)
                self._grip_arr[:] = np.stack(self._gripper)
            for arrs in self._img.values():
                for a in arrs.values():
                    a.resize((n, *a.shape[1:]))
            self._root.attrs.update({"success": bool(success), "num_frames": n, "complete": True})
            self._publish()
        except BaseException as e:
            self._failed = f"close failed: {type(e).__name__}: {e}"
            raise
        finally:
            self._shutdown_pool()
        self._closed = True
        return self._path

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _publish(self) -> None:
        final = self._path
        if final.exists() or final.is_symlink():
            if not self._overwrite:
                raise FileExistsError(
                    f"{final}: an episode appeared at the final path while writing; the new episode is left at "
                    f"{self._partial} (pass overwrite=True to replace)"
                )
            aside = final.with_name(f"{final.name}.replaced-{os.getpid()}")
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(final, aside)
            os.replace(self._partial, final)
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside)
            else:
                aside.unlink()
        else:
            os.replace(self._partial, final)
        try:  # make the rename durable
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def abort(self) -> None:
        """Discard the unfinished episode (removes the ``.partial`` directory); the writer becomes unusable."""
        if self._closed:
            raise EpisodeError(f"{self._path}: cannot abort, the episode was already closed")
        self._failed = "aborted"
        self._shutdown_pool()
        shutil.rmtree(self._partial, ignore_errors=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._shutdown_pool()
        if exc_type is not None:
            if self._failed is None and not self._closed:
                self._failed = f"exception inside the with block: {exc_type.__name__}"
            return None  # leave the .partial directory, re-raise
        if not self._closed and self._failed != "aborted":
            self._failed = "left the with block without close()"
            raise EpisodeError(
                f"{self._path}: EpisodeWriter left its with block without close(success=...); "
                f"the unfinished episode ({self._n} frames) was left at {self._partial}"
            )

    def __repr__(self) -> str:
        return f"EpisodeWriter({str(self._path)!r}, num_frames={self._n}, closed={self._closed})"


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


FrameIndex = int | slice | Sequence[int] | np.ndarray


class EpisodeReader:
    """Read a finished episode (read-only), validating it on open.

    Opening checks the root metadata (format, version, ``complete``), every array's metadata,
    shape (first dimension = ``num_frames``; images H×W from the camera attributes), dtype and
    chunking, and loads the small arrays (time, robot, K, X_WC). Image reads check that each
    requested frame's chunk file exists and turn decode/checksum failures into
    :class:`EpisodeCorruptError`; :meth:`verify` checks every chunk.

    Frame arguments ``t`` may be an int (negative counts from the end; returns one frame) or a
    slice / sequence of ints (returns arrays stacked along a new first axis N).

    The reader holds only the path and read-only zarr handles: it pickles by path and re-opens
    (and re-validates) in the receiving process, so each DataLoader worker gets its own handle.
    :meth:`close` drops the handles; later reads re-open them.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._path = Path(path)
        self._arrays: dict[str, zarr.Array] | None = None
        self._open()

    # ---- opening / validation

    def _open(self) -> None:
        p = self._path
        if p.name.endswith(PARTIAL_SUFFIX):
            if p.exists():
                final = p.with_name(p.name[: -len(PARTIAL_SUFFIX)])
                raise EpisodeIncompleteError(
                    f"{p}: unfinished episode (a {PARTIAL_SUFFIX} directory is what EpisodeWriter writes "
                    f"before close(); the writer is still running or crashed); "
                    f"{_frames_msg(_count_recorded_frames(p))}; finished episodes live at {final.name}"
                )
            raise EpisodeNotFoundError(f"{p}: no such episode directory")
        if not p.exists():
            partial = _partial_path(p)
            if partial.exists():
                raise EpisodeIncompleteError(
                    f"{p}: episode was never finished: only the unfinished {partial} exists (the writer is "
                    f"still running or crashed before close()); {_frames_msg(_count_recorded_frames(partial))}"
                )
            raise EpisodeNotFoundError(f"{p}: no such episode directory")
        if not p.is_dir():
            raise EpisodeFormatError(f"{p}: not a directory (an episode is a zarr v3 directory)")

        root_json = p / "zarr.json"
        attrs = _read_node_json(p, "group")["attributes"]
        if attrs.get("format") != FORMAT_NAME:
            raise EpisodeFormatError(
                f"{root_json}: attribute 'format' is {attrs.get('format')!r}, expected {FORMAT_NAME!r}"
            )
        version = attrs.get("format_version")
        if version not in SUPPORTED_FORMAT_VERSIONS:
            newer = _is_int(version) and version > max(SUPPORTED_FORMAT_VERSIONS)
            raise EpisodeFormatError(
                f"{root_json}: unsupported format_version {version!r} (this geo4d reads "
                f"{list(SUPPORTED_FORMAT_VERSIONS)})" + ("; upgrade geo4d to read it" if newer else "")
            )
        if attrs.get("complete") is not True:
            raise EpisodeIncompleteError(
                f"{p}: episode is incomplete (root attribute complete={attrs.get('complete')!r}; set only by a "
                f"successful EpisodeWriter.close()); {_frames_msg(_count_recorded_frames(p))}"
            )

        def need(key: str, check, what: str) -> Any:
            if key not in attrs or not check(attrs[key]):
                raise EpisodeFormatError(
                    f"{root_json}: attribute {key!r} must be {what}, got {attrs.get(key, '<missing>')!r}"
                )
            return attrs[key]

        task = need("task", lambda v: isinstance(v, str), "a string")
        seed = need("seed", _is_int, "an int")
        success = need("success", lambda v: isinstance(v, bool), "a bool")
        T = need("num_frames", lambda v: _is_int(v) and v >= 0, "an int >= 0")
        fps = need("fps", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                   "a number > 0")
        A = need("num_arms", lambda v: _is_int(v) and v >= 1, "an int >= 1")
        names = need(
            "camera_names",
            lambda v: isinstance(v, list) and v and all(isinstance(s, str) for s in v) and len(set(v)) == len(v),
            "a non-empty list of unique strings",
        )
        label_parts = need(
            "label_parts",
            lambda v: isinstance(v, dict)
            and all(isinstance(vals, list) and all(_is_int(x) for x in vals) for vals in v.values()),
            "a dict of str -> list of int",
        )
        extra = need("extra", lambda v: isinstance(v, dict), "a JSON object")
        self._metadata = EpisodeMetadata(
            task=task, seed=int(seed), success=success, num_frames=int(T), fps=float(fps), num_arms=int(A),
            label_parts={k: list(v) for k, v in label_parts.items()}, extra=extra, format_version=int(version),
        )
        T, A = int(T), int(A)

        arrays = self._open_arrays(names)
        self._arrays = arrays

        def check(path: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...] | None = None) -> None:
            a = arrays[path]
            f = p / path / "zarr.json"
            if a.dtype != np.dtype(dtype):
                raise EpisodeFormatError(f"{f}: dtype must be {np.dtype(dtype)}, got {a.dtype}")
            if a.shape != shape:
                if a.ndim and shape and a.shape[0] != shape[0] and a.shape[1:] == shape[1:]:
                    raise EpisodeFormatError(
                        f"{f}: array has {a.shape[0]} frames but the episode has num_frames={T} "
                        "(array truncated or metadata inconsistent)"
                    )
                raise EpisodeFormatError(f"{f}: shape must be {shape}, got {a.shape}")
            if chunks is not None and a.chunks != chunks:
                raise EpisodeFormatError(f"{f}: chunks must be {chunks}, got {a.chunks}")
            expected_key = "c/" + "/".join("0" * a.ndim) if a.ndim else "c"
            if a.metadata.encode_chunk_key((0,) * a.ndim) != expected_key:
                raise EpisodeFormatError(f"{f}: chunk_key_encoding must be the default with separator '/'")

        check(_T_PATH, (T,), np.float64)
        check(_XWE_PATH, (T, A, 4, 4), np.float64)
        check(_GRIPPER_PATH, (T, A), np.float32)
        cameras: dict[str, CameraSpec] = {}
        for name in names:
            gdir = p / "cameras" / name
            gattrs = _read_node_json(gdir, "group")["attributes"]
            try:
                H, W, split = gattrs["height"], gattrs["width"], gattrs["split"]
            except KeyError as e:
                raise EpisodeFormatError(f"{gdir / 'zarr.json'}: missing camera attribute {e}") from None
            base = f"cameras/{name}"
            check(f"{base}/K", (3, 3), np.float64)
            check(f"{base}/X_WC", (4, 4), np.float64)
            if not (_is_int(H) and _is_int(W) and H > 0 and W > 0):
                raise EpisodeFormatError(f"{gdir / 'zarr.json'}: height/width must be positive ints, got {H!r}, {W!r}")
            check(f"{base}/color", (T, H, W, 3), np.uint8, (1, H, W, 3))
            check(f"{base}/depth", (T, H, W), np.uint16, (1, H, W))
            check(f"{base}/label", (T, H, W), np.int32, (1, H, W))
            try:
                cameras[name] = CameraSpec(
                    name=name, K=self._read_whole(f"{base}/K"), X_WC=self._read_whole(f"{base}/X_WC"),
                    height=H, width=W, split=split,
                )
            except ValueError as e:
                if isinstance(e, EpisodeError):
                    raise
                raise EpisodeFormatError(f"{gdir}: invalid camera: {e}") from e
        self._cameras = cameras
        self._camera_names = list(names)
        self._t = self._read_whole(_T_PATH)
        self._X_WE = self._read_whole(_XWE_PATH)
        self._gripper = self._read_whole(_GRIPPER_PATH)
        if T > 1 and not np.all(np.diff(self._t) > 0):
            raise EpisodeFormatError(f"{p / _T_PATH}: timestamps are not strictly increasing")
        if not (np.all(np.isfinite(self._t)) and np.all(np.isfinite(self._X_WE))
                and np.all(np.isfinite(self._gripper))):
            raise EpisodeFormatError(f"{p}: time or robot arrays contain non-finite values")

    def _array_paths(self, names: Sequence[str]) -> list[str]:
        paths = [_T_PATH, _XWE_PATH, _GRIPPER_PATH]
        for name in names:
            paths += [f"cameras/{name}/{k}" for k in ("K", "X_WC", *_IMAGE_KINDS)]
        return paths

    def _open_arrays(self, names: Sequence[str]) -> dict[str, zarr.Array]:
        store = _StrictLocalStore(str(self._path), read_only=True)
        arrays: dict[str, zarr.Array] = {}
        for ap in self._array_paths(names):
            _read_node_json(self._path / ap, "array")  # clear message for missing / unparsable metadata
            try:
                arrays[ap] = zarr.open_array(store, path=ap, mode="r", zarr_format=3)
            except Exception as e:
                raise EpisodeFormatError(f"{self._path / ap / 'zarr.json'}: invalid zarr array metadata: {e}") from e
        return arrays

    def _arr(self, array_path: str) -> zarr.Array:
        if self._arrays is None:  # re-open after close()
            self._arrays = self._open_arrays(self._camera_names)
        return self._arrays[array_path]

    def _all_chunks(self, array_path: str) -> list[tuple[int, ...]]:
        a = self._arr(array_path)
        grid = [range(math.ceil(s / c)) for s, c in zip(a.shape, a.chunks, strict=True)]
        return list(product(*grid))

    def _read_whole(self, array_path: str) -> np.ndarray:
        """Read a small array completely after checking all its chunk files exist."""
        for coords in self._all_chunks(array_path):
            f = _chunk_file(self._path, array_path, coords)
            if not f.is_file():
                raise EpisodeCorruptError(f"missing chunk file {f} of array {array_path}")
        a = self._arr(array_path)
        try:
            return np.asarray(a[...])
        except EpisodeError:
            raise
        except Exception as e:
            raise EpisodeCorruptError(
                f"{self._path / array_path}: cannot decode array (corrupt chunk file): {type(e).__name__}: {e}"
            ) from e

    # ---- metadata properties

    @property
    def path(self) -> Path:
        """Episode directory."""
        return self._path

    @property
    def metadata(self) -> EpisodeMetadata:
        """Episode-level attributes (a copy)."""
        m = self._metadata
        return EpisodeMetadata(
            task=m.task, seed=m.seed, success=m.success, num_frames=m.num_frames, fps=m.fps, num_arms=m.num_arms,
            label_parts={k: list(v) for k, v in m.label_parts.items()}, extra=json.loads(json.dumps(m.extra)),
            format_version=m.format_version,
        )

    @property
    def num_frames(self) -> int:
        """Number of time steps T."""
        return self._metadata.num_frames

    @property
    def num_arms(self) -> int:
        """Number of arms A."""
        return self._metadata.num_arms

    @property
    def cameras(self) -> dict[str, CameraSpec]:
        """Cameras by name (intrinsics K in pixels, X_WC camera pose in the world, metres)."""
        return dict(self._cameras)

    @property
    def camera_names(self) -> list[str]:
        """Camera names in the order the writer declared them."""
        return list(self._camera_names)

    @property
    def train_cameras(self) -> list[str]:
        """Names of cameras with split "train"."""
        return [n for n in self._camera_names if self._cameras[n].split == "train"]

    @property
    def test_cameras(self) -> list[str]:
        """Names of cameras with split "test"."""
        return [n for n in self._camera_names if self._cameras[n].split == "test"]

    @property
    def timestamps(self) -> np.ndarray:
        """(T,) float64 timestamps in seconds."""
        return self._t.copy()

    @property
    def X_WE(self) -> np.ndarray:
        """(T, A, 4, 4) float64 end-effector poses in the world frame (metres)."""
        return self._X_WE.copy()

    @property
    def gripper_width(self) -> np.ndarray:
        """(T, A) float32 gripper openings in metres."""
        return self._gripper.copy()

    # ---- image access

    def _frame_indices(self, t: FrameIndex) -> tuple[list[int], bool]:
        T = self.num_frames
        rng = f"valid frames are 0..{T - 1} (or -{T}..-1)" if T else "the episode has no frames"

        def norm(i: Any) -> int:
            if not _is_int(i):
                raise TypeError(f"{self._path}: frame index must be an int, slice or sequence of ints, got {i!r}")
            j = int(i) + T if i < 0 else int(i)
            if not 0 <= j < T:
                raise IndexError(f"{self._path}: frame index {int(i)} out of range; {rng}")
            return j

        if _is_int(t):
            return [norm(t)], True
        if isinstance(t, slice):
            return list(range(*t.indices(T))), False
        if isinstance(t, (str, bytes)) or not isinstance(t, (Sequence, np.ndarray)):
            raise TypeError(f"{self._path}: frame index must be an int, slice or sequence of ints, got {t!r}")
        arr = np.asarray(t)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise TypeError(f"{self._path}: frame index sequence must be 1-D ints, got {t!r}")
        return [norm(i) for i in arr.tolist()], False

    def _camera(self, cam: str) -> CameraSpec:
        try:
            return self._cameras[cam]
        except (KeyError, TypeError):
            raise KeyError(f"{self._path}: unknown camera {cam!r}; cameras are {self._camera_names}") from None

    def _read_frames(self, cam: str, kind: str, t: FrameIndex) -> np.ndarray:
        self._camera(cam)
        ap = _camera_array_path(cam, kind)
        idx, single = self._frame_indices(t)
        a = self._arr(ap)
        trailing = (0,) * (a.ndim - 1)
        for i in idx:
            f = _chunk_file(self._path, ap, (i, *trailing))
            if not f.is_file():
                raise EpisodeCorruptError(f"missing chunk file {f} (camera {cam!r}, {kind}, frame {i})")
        try:
            if single:
                return a[idx[0]]
            if idx and idx == list(range(idx[0], idx[-1] + 1)):
                return a[idx[0] : idx[-1] + 1]
            return a.oindex[np.asarray(idx, dtype=np.int64)]
        except EpisodeError:
            raise
        except Exception as e:
            if not single:  # find the damaged frame for a precise message
                for i in idx:
                    self._read_frames(cam, kind, i)
            f = _chunk_file(self._path, ap, (idx[0], *trailing)) if single else self._path / ap
            raise EpisodeCorruptError(
                f"corrupt chunk file {f} (camera {cam!r}, {kind}, frame(s) {idx if not single else idx[0]}): "
                f"{type(e).__name__}: {e}"
            ) from e

    def color(self, cam: str, t: FrameIndex) -> np.ndarray:
        """Colour image(s): (H, W, 3) or (N, H, W, 3) uint8 RGB."""
        return self._read_frames(cam, "color", t)

    def depth(self, cam: str, t: FrameIndex) -> np.ndarray:
        """Depth image(s) along the camera +z axis: (H, W) or (N, H, W) float32 metres, 0 = invalid.

        Computed as ``float32(mm) / float32(1000)``.
        """
        mm = self._read_frames(cam, "depth", t)
        return mm.astype(np.float32) / np.float32(1.0 / DEPTH_SCALE_M)

    def depth_mm(self, cam: str, t: FrameIndex) -> np.ndarray:
        """Depth image(s) as stored: (H, W) or (N, H, W) uint16 millimetres, 0 = invalid."""
        return self._read_frames(cam, "depth", t)

    def label(self, cam: str, t: FrameIndex) -> np.ndarray:
        """Render-label image(s): (H, W) or (N, H, W) int32 (see ``metadata.label_parts``)."""
        return self._read_frames(cam, "label", t)

    def frame(self, cam: str, t: FrameIndex) -> CameraFrame:
        """Colour, depth (metres) and label of camera ``cam`` at ``t`` (stacked when ``t`` selects several)."""
        return CameraFrame(color=self.color(cam, t), depth=self.depth(cam, t), label=self.label(cam, t))

    def label_mask(self, cam: str, t: FrameIndex, part: str) -> np.ndarray:
        """Bool mask (H, W) or (N, H, W) of pixels whose label is in ``label_parts[part]``."""
        parts = self._metadata.label_parts
        if part not in parts:
            raise KeyError(f"{self._path}: unknown label part {part!r}; label_parts are {sorted(parts)}")
        return np.isin(self.label(cam, t), np.asarray(parts[part], dtype=np.int32))

    # ---- integrity

    def verify(self, progress: bool = False) -> None:
        """Check that every chunk of every array exists and decodes (checksums included).

        Raises :class:`EpisodeCorruptError` listing every problem found (``.problems``).
        Shows a tqdm progress bar when ``progress`` is true.
        """
        work = [(ap, c) for ap in self._array_paths(self._camera_names) for c in self._all_chunks(ap)]
        problems: list[str] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(work), desc=f"verify {self._path.name}", unit="chunk")
        try:
            for ap, coords in work:
                f = _chunk_file(self._path, ap, coords)
                if not f.is_file():
                    problems.append(f"missing chunk file {f}")
                else:
                    a = self._arr(ap)
                    sel = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(coords, a.chunks, a.shape))
                    try:
                        a[sel]
                    except Exception as e:
                        problems.append(f"corrupt chunk file {f}: {type(e).__name__}: {e}")
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise EpisodeCorruptError(
                f"{self._path}: {len(problems)} damaged chunk(s) of {len(work)}:\n  {shown}{more}", problems
            )

    # ---- lifecycle

    def close(self) -> None:
        """Drop the zarr handles (harmless; later reads re-open them)."""
        self._arrays = None

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __reduce__(self):
        return (type(self), (self._path,))

    def __repr__(self) -> str:
        return (
            f"EpisodeReader({str(self._path)!r}, task={self._metadata.task!r}, num_frames={self.num_frames}, "
            f"cameras={self._camera_names})"
        )


def list_episodes(root: str | os.PathLike[str]) -> list[Path]:
    """Finished episodes directly inside dataset directory ``root``, sorted by name.

    A directory counts when its ``zarr.json`` says ``format: "geo4d-episode"`` and ``complete: true``
    (only the root metadata is read; open with :class:`EpisodeReader` to validate fully).
    ``.partial`` directories are ignored. Directories whose ``zarr.json`` cannot be parsed, and
    geo4d episodes not marked complete, are skipped with a warning naming them.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: dataset directory does not exist or is not a directory")
    found: list[Path] = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.endswith(PARTIAL_SUFFIX) or not (d / "zarr.json").exists():
            continue
        try:
            attrs = _read_node_json(d, "group")["attributes"]
        except EpisodeFormatError as e:
            warnings.warn(f"skipping {d}: {e}", stacklevel=2)
            continue
        if attrs.get("format") != FORMAT_NAME:
            continue
        if attrs.get("complete") is not True:
            warnings.warn(f"skipping {d}: episode is not marked complete", stacklevel=2)
            continue
        found.append(d)
    return found
