"""Training data over recorded episodes: held-out split, stereo clips (pixels or cached latents), VAE frames.

A stereo sample is (episode, condition time t, view pair n != m): the condition is frame t of both views
(RGB and each view's pointmap in its *own* camera frame, as the robot would observe it), the targets are
frames t+1 .. t+h: RGB of both views, view n's pointmaps in camera n's frame and view m's pointmaps moved
into camera n's frame with the recorded extrinsics (only training needs them), and the gripper masks of
both views from the simulator's labels.

Two datasets give the same sample two ways:
- `StereoPixelDataset`: images in [-1, 1] and normalised pointmaps, (.., 3, H, W); the trainer encodes them
  with the frozen VAEs every step (GPU servers).
- `StereoLatentDataset`: the VAE latents, encoded once by `build_latent_cache` and memory-mapped from disk
  (CPU training, where encoding would dominate the step).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from geo4d_core.data.episode import EpisodeReader, list_episodes
from geo4d_core.geometry.normalization import normalize_pointmap
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
from geo4d_core.model.vae import VAE_DOWNSAMPLE, LatentCodec, PointmapCodecConfig

__all__ = [
    "DataError",
    "EpisodeSplit",
    "split_episodes",
    "SampleKey",
    "index_samples",
    "gripper_parts",
    "load_clip",
    "StereoPixelDataset",
    "StereoLatentDataset",
    "build_latent_cache",
    "cache_fingerprint",
    "FrameDataset",
]


class DataError(ValueError):
    """The dataset on disk cannot be used as configured (message names the folder / episode / camera)."""


@dataclass
class EpisodeSplit:
    """Episodes used for training and those held out (by folder name, sorted)."""

    root: Path
    train: list[Path]
    heldout: list[Path]

    def to_dict(self) -> dict:
        return {"root": str(self.root), "train_episodes": [p.name for p in self.train],
                "heldout_episodes": [p.name for p in self.heldout]}


def split_episodes(root: str | Path, heldout: int) -> EpisodeSplit:
    """The last `heldout` complete episodes under `root` (sorted by name) are held out."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root {root}: dataset folder does not exist (generate one with `geo4d sim generate`)")
    eps = list_episodes(root)
    if len(eps) <= heldout:
        raise DataError(f"data.root {root}: {len(eps)} complete episode(s), need more than "
                        f"data.heldout_episodes = {heldout} to keep any for training")
    cut = len(eps) - heldout
    return EpisodeSplit(root, eps[:cut], eps[cut:])


@dataclass(frozen=True)
class SampleKey:
    """One training sample: episode index (into the dataset's episode list), condition time, view pair."""

    episode: int
    t: int
    cam_n: str
    cam_m: str


def _cameras(reader: EpisodeReader, which: str) -> list[str]:
    cams = reader.train_cameras if which == "train" else reader.camera_names
    if len(cams) < 2:
        raise DataError(f"{reader.path}: {len(cams)} {which} camera(s); a view pair needs at least 2")
    return list(cams)


def index_samples(readers: Sequence[EpisodeReader], horizon: int, cameras: str = "train",
                  stride: int = 1) -> list[SampleKey]:
    """Every (episode, t, n, m) with t + horizon < T, n != m among the episode's `cameras` split."""
    keys: list[SampleKey] = []
    for e, r in enumerate(readers):
        if r.num_frames <= horizon:
            raise DataError(f"{r.path}: {r.num_frames} frames, need more than the horizon {horizon}")
        pairs = list(permutations(_cameras(r, cameras), 2))
        for t in range(0, r.num_frames - horizon, stride):
            keys.extend(SampleKey(e, t, n, m) for n, m in pairs)
    return keys


def gripper_parts(label_parts: dict[str, list[int]]) -> np.ndarray:
    """Render-label values of every gripper (hand + fingers) in the episode (all arms)."""
    vals = [v for k, vs in label_parts.items() if k == "gripper" or k.endswith("/gripper") for v in vs]
    if not vals:
        raise DataError(f"no 'gripper' label part among {sorted(label_parts)}")
    return np.asarray(sorted(set(vals)), dtype=np.int32)


def _check_size(reader: EpisodeReader, cam: str, height: int, width: int) -> None:
    spec = reader.cameras[cam]
    if (spec.height, spec.width) != (height, width):
        raise DataError(f"{reader.path} camera {cam}: images are {spec.height}x{spec.width}, the model runs at "
                        f"{height}x{width}; generate the data at the model's size (--height/--width)")


def load_clip(reader: EpisodeReader, key: SampleKey, horizon: int) -> dict[str, np.ndarray]:
    """Frames t .. t+h of views n and m in natural units (uint8 RGB, metres; see module docstring).

    Returns rgb_n / rgb_m (h+1, H, W, 3) uint8; points_n (h+1, H, W, 3) in camera n; points_m_own (H, W, 3)
    = frame t of view m in camera m; points_m_in_n (h, H, W, 3) = frames t+1.. of view m in camera n;
    valid_n (h+1, H, W), valid_m_own (H, W), valid_m (h, H, W); gripper_n / gripper_m (h, H, W) bool.
    """
    frames = list(range(key.t, key.t + horizon + 1))
    spec_n, spec_m = reader.cameras[key.cam_n], reader.cameras[key.cam_m]
    grip = gripper_parts(reader.metadata.label_parts)
    out: dict[str, np.ndarray] = {}
    for v, cam, spec in (("n", key.cam_n, spec_n), ("m", key.cam_m, spec_m)):
        out[f"rgb_{v}"] = reader.color(cam, frames)
        pts, valid = depth_to_pointmap(reader.depth(cam, frames), spec.K)
        out[f"gripper_{v}"] = np.isin(reader.label(cam, frames[1:]), grip)
        if v == "n":
            out["points_n"], out["valid_n"] = pts, valid
        else:
            out["points_m_own"], out["valid_m_own"] = pts[0], valid[0]
            out["points_m_in_n"] = pointmap_m_to_n(pts[1:], spec_n.X_WC, spec_m.X_WC, valid[1:])
            out["valid_m"] = valid[1:]
    return out


def _images(rgb: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 127.5 - 1.0
    return x.movedim(-1, -3)


def _normalized(points: np.ndarray, valid: np.ndarray, codec: PointmapCodecConfig) -> torch.Tensor:
    """(..., H, W, 3) metres -> (..., 3, H, W) pointmap-VAE input."""
    nrm, _ = normalize_pointmap(torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
                                codec.normalization, torch.from_numpy(np.asarray(valid)))
    return nrm.movedim(-1, -3)


class _EpisodeDataset(torch.utils.data.Dataset):
    """Shared plumbing: readers opened lazily in each worker process."""

    def __init__(self, episodes: Sequence[str | Path], horizon: int, cameras: str, stride: int,
                 height: int, width: int):
        self.episodes = [Path(p) for p in episodes]
        self.horizon = horizon
        readers = [EpisodeReader(p) for p in self.episodes]
        for r in readers:
            for cam in _cameras(r, cameras):
                _check_size(r, cam, height, width)
        self.keys = index_samples(readers, horizon, cameras, stride)
        self._readers: list[EpisodeReader] | None = readers

    def reader(self, e: int) -> EpisodeReader:
        if self._readers is None:
            self._readers = [EpisodeReader(p) for p in self.episodes]
        return self._readers[e]

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self):  # workers reopen the episodes
        state = dict(self.__dict__)
        state["_readers"] = None
        return state


class StereoPixelDataset(_EpisodeDataset):
    """Stereo samples as model-range tensors (see module docstring); `sample_key(i)` names the sample.

    Items: cond_rgb (2, 3, H, W), cond_points (2, 3, H, W) [view m in its own frame], target_rgb
    (2, h, 3, H, W), target_points (2, h, 3, H, W) [both in camera n's frame], gripper (2, h, H, W) float;
    index 0 = view n, 1 = view m.
    """

    def __init__(self, episodes: Sequence[str | Path], horizon: int, *, height: int, width: int,
                 cameras: str = "train", stride: int = 1, codec: PointmapCodecConfig | None = None):
        super().__init__(episodes, horizon, cameras, stride, height, width)
        self.codec = codec or PointmapCodecConfig()

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        key = self.keys[i]
        c = load_clip(self.reader(key.episode), key, self.horizon)
        rgb_n, rgb_m = _images(c["rgb_n"]), _images(c["rgb_m"])
        pts_n = _normalized(c["points_n"], c["valid_n"], self.codec)
        cond_pm = _normalized(np.stack([c["points_n"][0], c["points_m_own"]]),
                              np.stack([c["valid_n"][0], c["valid_m_own"]]), self.codec)
        pts_m = _normalized(c["points_m_in_n"], c["valid_m"], self.codec)
        return {
            "cond_rgb": torch.stack([rgb_n[0], rgb_m[0]]),
            "cond_points": cond_pm,
            "target_rgb": torch.stack([rgb_n[1:], rgb_m[1:]]),
            "target_points": torch.stack([pts_n[1:], pts_m]),
            "gripper": torch.from_numpy(np.stack([c["gripper_n"], c["gripper_m"]])).float(),
        }


# ---------------------------------------------------------------------------------------------- latent cache
def cache_fingerprint(codec: LatentCodec, episodes: Sequence[Path], cameras: str) -> str:
    """Hash of everything the cached latents depend on: both VAEs' weights, normalisation, episodes, cameras."""
    h = hashlib.sha256()
    for vae in (codec.rgb_vae, codec.pointmap_vae):
        h.update(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
        for name, t in sorted(vae.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().numpy().tobytes())
    h.update(json.dumps(codec.config.to_dict(), sort_keys=True).encode())
    h.update(json.dumps([str(Path(p).resolve()) for p in episodes]).encode())
    h.update(cameras.encode())
    return h.hexdigest()[:16]


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _cache_file(cache_dir: Path, episode: Path, name: str) -> Path:
    return cache_dir / episode.name / f"{name}.npy"


def build_latent_cache(episodes: Sequence[str | Path], codec: LatentCodec, cache_dir: str | Path, *,
                       cameras: str = "train", batch: int = 32, progress: bool = True) -> Path:
    """Encode every frame needed by `StereoLatentDataset` once (resumable: finished files are kept).

    Per episode and camera c: `c.rgb` (T, 4, h, w) RGB latents, `c.pm` (T, 4, h, w) pointmap latents in c's
    own frame, `c.grip` (T, h, w) uint8 gripper mask max-pooled to latent cells; per ordered pair (n, m):
    `m_in_n.pm` (T, 4, h, w) latents of m's pointmaps in n's frame. float16 on disk.
    A `fingerprint.json` ties the cache to the VAEs and episodes; a mismatch is an error.
    """
    cache_dir = Path(cache_dir)
    episodes = [Path(p) for p in episodes]
    fp = cache_fingerprint(codec, episodes, cameras)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp_file = cache_dir / "fingerprint.json"
    if fp_file.exists():
        old = json.loads(fp_file.read_text()).get("fingerprint")
        if old != fp:
            raise DataError(f"latent cache {cache_dir} was built with other VAEs or episodes (fingerprint {old}, "
                            f"now {fp}); delete it or set data.cache_dir to another folder")
    else:
        fp_file.write_text(json.dumps({"fingerprint": fp, "episodes": [p.name for p in episodes],
                                       "cameras": cameras}, indent=1))
    jobs = []
    for ep in episodes:
        r = EpisodeReader(ep)
        cams = _cameras(r, cameras)
        jobs += [(ep, c, None) for c in cams] + [(ep, n, m) for n, m in permutations(cams, 2)]
    todo = [j for j in jobs if not _cache_file(cache_dir, j[0], _job_name(j)).exists()]
    bar = tqdm(todo, desc="latent cache", unit="stream", disable=not progress)
    reader, grip = None, None
    for ep, c, m in bar:
        if reader is None or reader.path != ep:
            reader = EpisodeReader(ep)
            grip = gripper_parts(reader.metadata.label_parts)
        (cache_dir / ep.name).mkdir(exist_ok=True)
        frames = list(range(reader.num_frames))
        if m is None:
            spec = reader.cameras[c]
            rgb = codec.encode_rgb(reader.color(c, frames))
            pts, valid = depth_to_pointmap(reader.depth(c, frames), spec.K)
            pm = _encode_points(codec, pts, valid, batch)
            mask = torch.from_numpy(np.isin(reader.label(c, frames), grip)).float()[:, None]
            cells = F.max_pool2d(mask, VAE_DOWNSAMPLE)[:, 0].to(torch.uint8).numpy()
            _save_atomic(_cache_file(cache_dir, ep, f"{c}.grip"), cells)
            _save_atomic(_cache_file(cache_dir, ep, f"{c}.rgb"), rgb.cpu().numpy().astype(np.float16))
            _save_atomic(_cache_file(cache_dir, ep, f"{c}.pm"), pm)
        else:
            spec_n, spec_m = reader.cameras[c], reader.cameras[m]
            pts, valid = depth_to_pointmap(reader.depth(m, frames), spec_m.K)
            pts = pointmap_m_to_n(pts, spec_n.X_WC, spec_m.X_WC, valid)
            _save_atomic(_cache_file(cache_dir, ep, _job_name((ep, c, m))), _encode_points(codec, pts, valid, batch))
    return cache_dir


def _job_name(job: tuple) -> str:
    _, c, m = job
    return f"{c}.pm" if m is None else f"{m}_in_{c}.pm"


def _encode_points(codec: LatentCodec, pts: np.ndarray, valid: np.ndarray, batch: int) -> np.ndarray:
    out = [codec.encode_pointmap(pts[i:i + batch], valid[i:i + batch]) for i in range(0, len(pts), batch)]
    return torch.cat(out).cpu().numpy().astype(np.float16)


class StereoLatentDataset(_EpisodeDataset):
    """Stereo samples as cached latents (see `build_latent_cache`).

    Items: cond_n / cond_m (8, h, w) [RGB | pointmap latents, m's pointmap in its own frame],
    target_n / target_m (h, 8, h, w) [m's pointmaps in n's frame], gripper_n / gripper_m (h, h_lat, w_lat)
    float masks at latent resolution. float32.
    """

    def __init__(self, episodes: Sequence[str | Path], horizon: int, cache_dir: str | Path, *, height: int,
                 width: int, cameras: str = "train", stride: int = 1):
        super().__init__(episodes, horizon, cameras, stride, height, width)
        self.cache_dir = Path(cache_dir)
        if not (self.cache_dir / "fingerprint.json").exists():
            raise DataError(f"{self.cache_dir}: no latent cache (run build_latent_cache first)")
        self._arrays: dict[Path, np.ndarray] = {}

    def _load(self, e: int, name: str) -> np.ndarray:
        path = _cache_file(self.cache_dir, self.episodes[e], name)
        arr = self._arrays.get(path)
        if arr is None:
            if not path.exists():
                raise DataError(f"latent cache file {path} missing: the cache is incomplete, rebuild it")
            arr = self._arrays[path] = np.load(path, mmap_mode="r")
        return arr

    def __getstate__(self):
        state = super().__getstate__()
        state["_arrays"] = {}
        return state

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = self.keys[i]
        a, b = k.t, k.t + self.horizon + 1
        t = lambda x: torch.from_numpy(np.asarray(x, dtype=np.float32))  # noqa: E731
        rgb_n, pm_n = t(self._load(k.episode, f"{k.cam_n}.rgb")[a:b]), t(self._load(k.episode, f"{k.cam_n}.pm")[a:b])
        rgb_m = t(self._load(k.episode, f"{k.cam_m}.rgb")[a:b])
        pm_m_own = t(self._load(k.episode, f"{k.cam_m}.pm")[a])
        pm_m = t(self._load(k.episode, f"{k.cam_m}_in_{k.cam_n}.pm")[a + 1:b])
        return {
            "cond_n": torch.cat([rgb_n[0], pm_n[0]]),
            "cond_m": torch.cat([rgb_m[0], pm_m_own]),
            "target_n": torch.cat([rgb_n[1:], pm_n[1:]], dim=1),
            "target_m": torch.cat([rgb_m[1:], pm_m], dim=1),
            "gripper_n": t(self._load(k.episode, f"{k.cam_n}.grip")[a + 1:b]),
            "gripper_m": t(self._load(k.episode, f"{k.cam_m}.grip")[a + 1:b]),
        }


# ---------------------------------------------------------------------------------------------- VAE frames
class FrameDataset(torch.utils.data.Dataset):
    """Single frames for VAE training: RGB in [-1, 1] or normalised pointmaps, (3, H, W).

    modality "pointmap": with probability `cross_view_prob` the pointmap of another camera of the same
    split moved into this camera's frame (what view m's targets look like), else the native pointmap.
    `item(i, rng)` is deterministic given the generator.
    """

    def __init__(self, episodes: Sequence[str | Path], modality: str, *, cameras: str = "train",
                 cross_view_prob: float = 0.0, codec: PointmapCodecConfig | None = None):
        if modality not in ("rgb", "pointmap"):
            raise ValueError(f"modality must be 'rgb' or 'pointmap', got {modality!r}")
        self.modality = modality
        self.cross_view_prob = cross_view_prob
        self.codec = codec or PointmapCodecConfig()
        self.episodes = [Path(p) for p in episodes]
        self.readers = [EpisodeReader(p) for p in self.episodes]
        self.cams = [_cameras(r, cameras) if cameras != "test" else list(r.test_cameras) for r in self.readers]
        self.frames = [(e, c, t) for e, r in enumerate(self.readers) for c in self.cams[e]
                       for t in range(r.num_frames)]
        if not self.frames:
            raise DataError(f"no frames with cameras {cameras!r} in {[p.name for p in self.episodes]}")

    def __len__(self) -> int:
        return len(self.frames)

    def points(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) metres in the frame's camera (maybe another camera's points, see class doc), valid."""
        e, c, t = self.frames[i]
        r = self.readers[e]
        src = c
        if rng is not None and self.cross_view_prob > 0 and rng.random() < self.cross_view_prob:
            others = [x for x in self.cams[e] if x != c]
            if others:
                src = others[int(rng.integers(len(others)))]
        pts, valid = depth_to_pointmap(r.depth(src, t), r.cameras[src].K)
        if src != c:
            pts = pointmap_m_to_n(pts, r.cameras[c].X_WC, r.cameras[src].X_WC, valid)
        return pts, valid

    def item(self, i: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        if self.modality == "rgb":
            e, c, t = self.frames[i]
            return _images(self.readers[e].color(c, t))
        pts, valid = self.points(i, rng)
        return _normalized(pts, valid, self.codec)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.item(i)
