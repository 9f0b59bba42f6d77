"""Held-out-view evaluation of a stereo 4D world model: the paper's Table 1 metrics.

For every held-out episode, ordered pairs (n, m) of its *test* cameras (cameras never seen in training)
and a few condition times t are chosen deterministically from a seed. The model sees frame t of both
views (RGB, depth in metres, K at the episode's resolution) and forecasts frames t+1 .. t+h; the
forecast is compared with the recorded frames t+1 .. t+h of both views, resized to the model's
resolution exactly as `WorldModel.prepare` resizes its inputs (`resize_frame`: INTER_AREA for RGB,
nearest neighbour for depth and render labels, K scaled with the pixel-centre convention).

Metrics of one sample (one (episode, n, m, t)); each is first averaged over the h predicted frames
(``reduction="frames"`` of `geo4d_core.metrics`), then over samples:

``abs_rel_n``, ``delta1_n`` (AbsRel-n, δ1-n)
    z of the predicted ``points_n`` (camera n's frame, metres; 0 where ``valid_n`` is False) against
    the recorded depth of view n, on pixels whose recorded depth is valid (> 0). An invalid prediction
    on such a pixel counts as a total miss (see `geo4d_core.metrics.depth`).
``abs_rel_m``, ``delta1_m`` (AbsRel-m, δ1-m)
    z **in camera n's frame** of the predicted ``points_m_in_n`` (view m's pixels expressed in camera
    n's frame; 0 where ``valid_m`` is False) against the true z in camera n's frame of view m's pixels:
    view m's recorded depth lifted with its K (`depth_to_pointmap`, camera m's frame) and moved into
    camera n with the recorded extrinsics (`pointmap_m_to_n`, X_CnCm = inv(X_WCn) @ X_WCm). Counted
    pixels: valid recorded depth of m whose point lies in front of camera n (z > 0).
``miou`` (mIoU, cross-view consistency)
    `geo4d_core.metrics.consistency.cross_view_miou` with: the *predicted* pointmap of view n
    (``points_n``, camera n's frame), view n's gripper mask and view m's gripper mask from the
    simulator's render labels of the *true* future frames (label part ``"gripper"``, or the union of
    all ``"<arm>/gripper"`` parts), camera m's true intrinsics at the model's resolution and the true
    pose of camera n in camera m (X_CmCn = inv(X_WCm) @ X_WCn). Per frame: view n's gripper pixels are
    lifted with the predicted points, projected into view m, and the bounding box of the projections is
    compared by IoU with the bounding box of view m's gripper mask; frames with neither box are skipped.
    The exact truth scores high but not 1 (~0.93 at 96x128 on the synthetic episodes, ~0.86 at 48x64):
    view n's pixels sample the gripper surface, and their projections rounded to view m's pixels span
    a box that differs from view m's own silhouette box by about a pixel per side; parts visible in
    only one view (self- or object occlusion) add to that. Small grippers in small images cost most.
``miou_m_to_n`` (JSON only, not a Table 1 column)
    the same measure in the opposite direction, with no extrinsics at all: view m's gripper pixels
    lifted with the predicted ``points_m_in_n`` (already in camera n's frame), projected with camera
    n's K, against view n's gripper box. It is the only consistency number that depends on the
    predicted view-m geometry (the cross-view part of the model).
``psnr_n``, ``psnr_m``
    `geo4d_core.metrics.image.psnr` of the predicted uint8 RGB against the resized recorded RGB (dB,
    mean over frames; +inf for an exact copy).

Models that predict no pointmaps (``getattr(model.config, "use_pointmaps", True)`` is False) get
``None`` ("n/a") for the depth metrics and both mIoUs. A metric that is undefined for a sample (NaN:
no counted pixel, no gripper box in any frame) is left out of that metric's mean; the number of samples
that entered every mean is reported next to it.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from geo4d_core.data.episode import EpisodeReader
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n, pointmap_to_depth, relative_pose
from geo4d_core.metrics import abs_rel, cross_view_miou, delta1, psnr
from geo4d_core.model.world_model import Observation, resize_frame

__all__ = [
    "METRICS",
    "TABLE_COLUMNS",
    "Predictor",
    "EvaluationSample",
    "SampleRecord",
    "MetricSummary",
    "EvaluationResult",
    "GroundTruth",
    "gripper_label_values",
    "plan_samples",
    "load_ground_truth",
    "score_prediction",
    "evaluate_world_model",
    "format_table",
]

# Metric keys of a sample record, in report order.
METRICS = ("abs_rel_n", "abs_rel_m", "delta1_n", "delta1_m", "miou", "miou_m_to_n", "psnr_n", "psnr_m")
# Markdown column header -> metric key of the paper's Table 1.
TABLE_COLUMNS = {
    "AbsRel-n ↓": "abs_rel_n",
    "AbsRel-m ↓": "abs_rel_m",
    "δ1-n ↑": "delta1_n",
    "δ1-m ↑": "delta1_m",
    "mIoU ↑": "miou",
    "PSNR-n ↑": "psnr_n",
    "PSNR-m ↑": "psnr_m",
}
CAMERA_SETS = ("test", "train", "all")  # named camera selections of `plan_samples`


class Predictor(Protocol):
    """What `evaluate_world_model` needs from a model: `WorldModel` or any stand-in (e.g. an oracle).

    ``config`` needs ``horizon`` (h), ``height`` and ``width`` (the prediction's resolution, pixels) and
    may have ``use_pointmaps`` (default True). ``predict`` returns an object with the fields of
    `geo4d_core.model.Prediction` that are scored: ``rgb_n``, ``rgb_m`` ((h, H, W, 3) uint8) and, for
    pointmap models, ``points_n``, ``points_m_in_n`` ((h, H, W, 3) metres, camera n's frame),
    ``valid_n``, ``valid_m`` ((h, H, W) bool).
    """

    config: Any

    def predict(self, obs_n: Observation, obs_m: Observation, steps: int | None = None, seed: int = 0) -> Any: ...


@dataclass(frozen=True)
class EvaluationSample:
    """One forecast to score: condition frame t of cameras n and m of one episode."""

    episode: str  # episode folder name (e.g. "episode_000012.zarr")
    view_n: str  # reference camera name
    view_m: str  # second camera name
    t: int  # condition frame index; frames t+1 .. t+h are predicted
    seed: int  # sampling seed passed to predict()


@dataclass
class SampleRecord:
    """The metrics of one sample."""

    sample: EvaluationSample
    metrics: dict[str, float | None]  # METRICS key -> value (NaN = undefined, None = not applicable)
    seconds: float  # wall time of predict(), seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.sample), **{k: _json_float(v) for k, v in self.metrics.items()},
                "seconds": round(self.seconds, 4)}


@dataclass
class MetricSummary:
    """Mean and (population) standard deviation of one metric over the samples where it is defined."""

    mean: float | None  # None when no sample defines the metric (or it does not apply)
    std: float | None
    count: int  # samples that entered the mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _json_float(self.mean), "std": _json_float(self.std), "count": self.count}


@dataclass
class EvaluationResult:
    """Per-sample records and per-metric summaries of one model."""

    records: list[SampleRecord]  # one per sample, in evaluation order
    settings: dict[str, Any]  # how the samples were drawn and the model run (steps, seed, horizon, ...)
    episodes: list[str]  # evaluated episode folder names
    notes: list[str] = field(default_factory=list)  # everything not evaluated as asked (fewer pairs, ...)

    def summary(self) -> dict[str, MetricSummary]:
        """METRICS key -> MetricSummary over the samples (NaN and None values left out)."""
        out = {}
        for key in METRICS:
            values = np.array([r.metrics.get(key) for r in self.records
                               if r.metrics.get(key) is not None and not math.isnan(r.metrics[key])], dtype=float)
            if values.size == 0:
                out[key] = MetricSummary(None, None, 0)
            else:
                with np.errstate(invalid="ignore"):  # std of values including +inf is NaN
                    out[key] = MetricSummary(float(values.mean()), float(values.std()), int(values.size))
        return out

    def mean(self, key: str) -> float | None:
        """Mean of one metric over the samples (None if undefined everywhere or not applicable)."""
        if key not in METRICS:
            raise KeyError(f"unknown metric {key!r}; expected one of {METRICS}")
        return self.summary()[key].mean

    @property
    def num_samples(self) -> int:
        return len(self.records)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form. Non-finite floats (NaN, the +inf PSNR of an exact copy) become None."""
        return {
            "num_samples": self.num_samples,
            "metrics": {k: v.to_dict() for k, v in self.summary().items()},
            "settings": dict(self.settings),
            "episodes": list(self.episodes),
            "notes": list(self.notes),
            "samples": [r.to_dict() for r in self.records],
        }


@dataclass
class GroundTruth:
    """The recorded frames t+1 .. t+h of both views at the model's resolution (H x W)."""

    rgb_n: np.ndarray  # (h, H, W, 3) uint8, view n
    rgb_m: np.ndarray  # (h, H, W, 3) uint8, view m
    depth_n: np.ndarray  # (h, H, W) float32 metres along camera n's +z, 0 = invalid
    points_m_in_n: np.ndarray  # (h, H, W, 3) float32 metres, view m's pixels in camera n's frame, 0 where invalid
    valid_m_in_n: np.ndarray  # (h, H, W) bool, view m's depth valid and the point in front of camera n
    gripper_n: np.ndarray  # (h, H, W) bool, gripper pixels of view n (render labels)
    gripper_m: np.ndarray  # (h, H, W) bool, gripper pixels of view m
    K_n: np.ndarray  # (3, 3) intrinsics of camera n at H x W, pixels
    K_m: np.ndarray  # (3, 3) intrinsics of camera m at H x W, pixels
    X_CmCn: np.ndarray  # (4, 4) pose of camera n in camera m's frame, metres (recorded extrinsics)


# ---------------------------------------------------------------------------------------------- sampling


def _cameras(reader: EpisodeReader, cameras: str | Sequence[str]) -> list[str]:
    if isinstance(cameras, str):
        if cameras == "test":
            names = reader.test_cameras
        elif cameras == "train":
            names = reader.train_cameras
        elif cameras == "all":
            names = reader.camera_names
        else:
            raise ValueError(f"cameras must be one of {CAMERA_SETS} or a list of camera names, got {cameras!r}")
    else:
        names = list(cameras)
        unknown = [c for c in names if c not in reader.cameras]
        if unknown:
            raise ValueError(f"{reader.path}: cameras {unknown} not in the episode; it has {reader.camera_names}")
    if len(names) < 2:
        split = {c: reader.cameras[c].split for c in reader.camera_names}
        raise ValueError(
            f"{reader.path}: needs at least 2 {cameras if isinstance(cameras, str) else 'selected'} cameras to "
            f"form a pair (n, m), found {names}; cameras and splits: {split}"
        )
    return list(names)


def plan_samples(
    reader: EpisodeReader,
    *,
    horizon: int,
    pairs_per_episode: int,
    times_per_pair: int,
    seed: int,
    cameras: str | Sequence[str] = "test",
) -> tuple[list[EvaluationSample], list[str]]:
    """The samples of one episode and notes on anything evaluated differently from what was asked.

    Pairs: all ordered pairs (n, m), n != m, of the selected cameras, shuffled by a generator seeded with
    (seed, CRC32 of the episode folder name), first `pairs_per_episode` kept (all of them, with a note,
    when there are fewer). Times: `times_per_pair` condition frames spread evenly over [0, T-1-h]
    (rounded; duplicates dropped with a note), the same for every pair. The sampling seed of a sample is
    derived from (seed, episode, n, m, t), so a sample's noise does not depend on which other episodes
    are evaluated, and two checkpoints evaluated with the same seed see the same samples and seeds.
    """
    if pairs_per_episode < 1 or times_per_pair < 1:
        raise ValueError("pairs_per_episode and times_per_pair must be >= 1, "
                         f"got {pairs_per_episode}, {times_per_pair}")
    names = _cameras(reader, cameras)
    episode = reader.path.name
    last = reader.num_frames - 1 - int(horizon)
    if last < 0:
        raise ValueError(f"{reader.path}: {reader.num_frames} frames, but a horizon of {horizon} needs at least "
                         f"{horizon + 1} (a condition frame and {horizon} true future frames)")
    notes = []
    pairs = [(n, m) for n in names for m in names if n != m]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(episode.encode())])
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    if len(pairs) < pairs_per_episode:
        notes.append(f"{episode}: {len(pairs)} ordered camera pairs among {names}, fewer than the "
                     f"{pairs_per_episode} asked for; all of them evaluated")
    pairs = pairs[:pairs_per_episode]
    times = sorted({int(t) for t in np.rint(np.linspace(0, last, times_per_pair))})
    if len(times) < times_per_pair:
        notes.append(f"{episode}: only {len(times)} distinct condition times in [0, {last}] "
                     f"(T = {reader.num_frames}, h = {horizon}), fewer than the {times_per_pair} asked for")
    samples = [
        EvaluationSample(episode, n, m, t, _sample_seed(seed, episode, n, m, t)) for n, m in pairs for t in times
    ]
    return samples, notes


def _sample_seed(seed: int, episode: str, n: str, m: str, t: int) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(f"{episode}|{n}|{m}|{t}".encode())) % (2**31 - 1)


# ---------------------------------------------------------------------------------------------- ground truth


def gripper_label_values(reader: EpisodeReader) -> list[int]:
    """Render labels of the gripper(s): part ``"gripper"``, else the union of every ``"<arm>/gripper"`` part."""
    parts = reader.metadata.label_parts
    if "gripper" in parts:
        keys = ["gripper"]
    else:
        keys = sorted(k for k in parts if k.endswith("/gripper"))
    if not keys:
        raise ValueError(f"{reader.path}: no 'gripper' (or '<arm>/gripper') label part for the mIoU; "
                         f"label parts are {sorted(parts)}")
    return sorted({int(v) for k in keys for v in parts[k]})


def load_ground_truth(
    reader: EpisodeReader,
    sample: EvaluationSample,
    *,
    horizon: int,
    height: int,
    width: int,
    gripper_labels: Sequence[int] | None = None,
) -> GroundTruth:
    """Recorded frames t+1 .. t+h of views n and m at `height` x `width`, view m's points in camera n.

    `gripper_labels` defaults to `gripper_label_values(reader)`; pass an empty list to skip the masks
    (they are then all False).
    """
    frames = slice(sample.t + 1, sample.t + 1 + horizon)
    labels = gripper_label_values(reader) if gripper_labels is None else list(gripper_labels)
    per_view = {}
    for cam in (sample.view_n, sample.view_m):
        spec = reader.cameras[cam]
        rgb, depth, label = reader.color(cam, frames), reader.depth(cam, frames), reader.label(cam, frames)
        out = [resize_frame(rgb[k], depth[k], spec.K, height, width, label=label[k]) for k in range(horizon)]
        depth_s = np.stack([o[1] for o in out])
        per_view[cam] = (
            np.stack([o[0] for o in out]),
            np.where(np.isfinite(depth_s) & (depth_s > 0), depth_s, 0.0).astype(np.float32),
            out[0][2],
            np.isin(np.stack([o[3] for o in out]), labels),
        )
    rgb_n, depth_n, K_n, grip_n = per_view[sample.view_n]
    rgb_m, depth_m, K_m, grip_m = per_view[sample.view_m]
    X_WCn, X_WCm = reader.cameras[sample.view_n].X_WC, reader.cameras[sample.view_m].X_WC
    points_m, valid_m = depth_to_pointmap(depth_m, K_m)  # camera m's frame
    points_m_in_n = pointmap_m_to_n(points_m, X_WCn, X_WCm, valid_m)  # camera n's frame
    valid_m_in_n = valid_m & (points_m_in_n[..., 2] > 0)
    points_m_in_n = np.where(valid_m_in_n[..., None], points_m_in_n, 0.0).astype(np.float32)
    return GroundTruth(rgb_n, rgb_m, depth_n, points_m_in_n, valid_m_in_n, grip_n, grip_m, K_n, K_m,
                       relative_pose(X_WCm, X_WCn))


# ---------------------------------------------------------------------------------------------- scoring


def _field(pred: Any, name: str, shape: tuple[int, ...], sample: EvaluationSample | None) -> np.ndarray:
    value = getattr(pred, name, None)
    where = f" ({sample.episode}, n={sample.view_n}, m={sample.view_m}, t={sample.t})" if sample else ""
    if value is None:
        raise ValueError(f"prediction{where} has no field {name!r}")
    value = np.asarray(value)
    if value.shape != shape:
        raise ValueError(f"prediction{where}: {name} has shape {value.shape}, expected {shape} "
                         "(horizon and model resolution)")
    return value


def score_prediction(
    pred: Any, truth: GroundTruth, *, use_pointmaps: bool = True, sample: EvaluationSample | None = None
) -> dict[str, float | None]:
    """The Table 1 metrics of one prediction (see the module docstring for exactly what is compared).

    Returns METRICS key -> float (NaN where undefined) or None (geometry metrics of an RGB-only model).
    """
    h, H, W = truth.depth_n.shape
    rgb_n = _field(pred, "rgb_n", (h, H, W, 3), sample)
    rgb_m = _field(pred, "rgb_m", (h, H, W, 3), sample)
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    for name, rgb in (("rgb_n", rgb_n), ("rgb_m", rgb_m)):
        if rgb.dtype != np.uint8:
            raise ValueError(f"prediction: {name} must be uint8 RGB, got dtype {rgb.dtype}")
    out["psnr_n"] = float(psnr(rgb_n, truth.rgb_n))
    out["psnr_m"] = float(psnr(rgb_m, truth.rgb_m))
    if not use_pointmaps:
        return out
    valid_n = _field(pred, "valid_n", (h, H, W), sample).astype(bool)
    valid_m = _field(pred, "valid_m", (h, H, W), sample).astype(bool)
    # Invalid predicted pixels become (0, 0, 0): depth 0 (a miss where the truth is valid), never projected.
    points_n = np.where(valid_n[..., None], _field(pred, "points_n", (h, H, W, 3), sample), 0.0)
    points_m_in_n = np.where(valid_m[..., None], _field(pred, "points_m_in_n", (h, H, W, 3), sample), 0.0)
    z_n = pointmap_to_depth(points_n)  # camera n's frame, metres
    z_m_in_n = pointmap_to_depth(points_m_in_n)  # camera n's frame, metres
    true_z_m_in_n = np.where(truth.valid_m_in_n, truth.points_m_in_n[..., 2], 0.0)
    out["abs_rel_n"] = float(abs_rel(z_n, truth.depth_n))
    out["delta1_n"] = float(delta1(z_n, truth.depth_n))
    out["abs_rel_m"] = float(abs_rel(z_m_in_n, true_z_m_in_n))
    out["delta1_m"] = float(delta1(z_m_in_n, true_z_m_in_n))
    out["miou"] = float(cross_view_miou(points_n, truth.gripper_n, truth.gripper_m, truth.K_m, truth.X_CmCn))
    out["miou_m_to_n"] = float(cross_view_miou(points_m_in_n, truth.gripper_m, truth.gripper_n, truth.K_n, np.eye(4)))
    return out


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_world_model(
    model: Predictor,
    episodes: Sequence[str | Path],
    *,
    cameras: str | Sequence[str] = "test",
    pairs_per_episode: int = 4,
    times_per_pair: int = 3,
    steps: int = 25,
    seed: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Score `model` on held-out camera pairs of `episodes` (geo4d episode folders).

    Args:
        model: a `WorldModel`, or any object with ``config.horizon / height / width`` (and optionally
            ``config.use_pointmaps``) and ``predict(obs_n, obs_m, steps=..., seed=...)``.
        episodes: episode folders (``*.zarr``).
        cameras: "test" (default: cameras never used in training), "train", "all", or camera names.
        pairs_per_episode: ordered camera pairs (n, m) per episode.
        times_per_pair: condition times per pair, spread evenly over [0, T-1-h].
        steps: denoising steps passed to predict().
        seed: seeds the choice of pairs and each sample's sampling seed.
        progress: show a tqdm bar over samples (on stderr).
    Returns:
        EvaluationResult (per-sample records, means, notes).
    Raises:
        ValueError naming the episode when it has fewer than 2 selected cameras, fewer than h + 1 frames,
        or (pointmap models) no gripper label part; `geo4d_core.data.EpisodeError` for unreadable episodes.
    """
    config = model.config
    horizon, height, width = int(config.horizon), int(config.height), int(config.width)
    use_pointmaps = bool(getattr(config, "use_pointmaps", True))
    if not episodes:
        raise ValueError("no episodes to evaluate")
    readers, plans, notes = [], [], []
    for path in episodes:  # open and plan everything first: bad input fails before any model time is spent
        reader = EpisodeReader(path)
        samples, episode_notes = plan_samples(reader, horizon=horizon, pairs_per_episode=pairs_per_episode,
                                              times_per_pair=times_per_pair, seed=seed, cameras=cameras)
        grip = gripper_label_values(reader) if use_pointmaps else []
        readers.append(reader)
        plans.append((samples, grip))
        notes += episode_notes
    records: list[SampleRecord] = []
    total = sum(len(s) for s, _ in plans)
    with tqdm(total=total, desc="evaluating", unit="sample", disable=not progress) as bar:
        for reader, (samples, grip) in zip(readers, plans):
            for sample in samples:
                obs_n = _observation(reader, sample.view_n, sample.t)
                obs_m = _observation(reader, sample.view_m, sample.t)
                t0 = time.perf_counter()
                pred = model.predict(obs_n, obs_m, steps=steps, seed=sample.seed)
                seconds = time.perf_counter() - t0
                truth = load_ground_truth(reader, sample, horizon=horizon, height=height, width=width,
                                          gripper_labels=grip)
                metrics = score_prediction(pred, truth, use_pointmaps=use_pointmaps, sample=sample)
                records.append(SampleRecord(sample, metrics, seconds))
                bar.update(1)
                running = {k: np.nanmean([r.metrics[k] for r in records]) for k in ("abs_rel_n", "psnr_n")
                           if metrics[k] is not None and not math.isnan(metrics[k])}
                bar.set_postfix({f"mean_{k}": f"{v:.3f}" for k, v in running.items()})
    settings = {
        "cameras": cameras if isinstance(cameras, str) else list(cameras),
        "pairs_per_episode": int(pairs_per_episode),
        "times_per_pair": int(times_per_pair),
        "steps": int(steps),
        "seed": int(seed),
        "horizon": horizon,
        "height": height,
        "width": width,
        "use_pointmaps": use_pointmaps,
    }
    return EvaluationResult(records, settings, [r.path.name for r in readers], notes)


def _observation(reader: EpisodeReader, cam: str, t: int) -> Observation:
    """Frame t of a camera at the episode's resolution (the model resizes it)."""
    return Observation(reader.color(cam, t), reader.depth(cam, t), reader.cameras[cam].K)


# ---------------------------------------------------------------------------------------------- reporting


def _json_float(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _cell(key: str, summary: MetricSummary) -> str:
    if summary.mean is None:
        return "n/a"
    if math.isinf(summary.mean):
        return "inf"
    if key.startswith("psnr"):
        return f"{summary.mean:.2f}"
    return f"{summary.mean:.3f}"


def format_table(rows: Mapping[str, EvaluationResult]) -> str:
    """Markdown table of Table 1: one row per model (name -> result), means over samples.

    "n/a" marks metrics that do not apply (RGB-only models) or are undefined on every sample.
    """
    header = ["model", *TABLE_COLUMNS, "samples"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, result in rows.items():
        summary = result.summary()
        cells = [str(name).replace("|", "\\|"), *(_cell(k, summary[k]) for k in TABLE_COLUMNS.values()),
                 str(result.num_samples)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
