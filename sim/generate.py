"""Multi-view RGB-D dataset generation: scripted demonstrations rendered from the paper's cameras and
written in the geo4d episode format (`geo4d_core/data/README.md`).

Episode `i` of a dataset lives in `OUT/episode_{i:06d}.zarr`. Generation is
- resumable: complete episodes are never redone (a crashed one leaves only a `.partial` folder, which
  the next run starts over);
- shardable: `shard=(k, n)` takes the episodes with i % n == k, so n machines split a dataset by
  running the same command with k = 0..n-1 into the same (shared) folder or into folders merged later;
- robust to failed demonstrations: a demonstration whose success predicate fails is discarded (never
  stored) and retried with the next attempt seed, up to `max_attempts`; every failure is appended to
  `OUT/failures.jsonl`;
- robust to hangs: each attempt runs in its own process and is killed after `attempt_timeout` seconds
  (counted as a failed attempt, reason "timed out"). Drake's VTK renderer on Mesa EGL has been seen to
  hang forever on one particular frame (PutSpatulaOnTable dataset seed 0, episode 1, attempt 0: one
  camera's colour image 2.6 s into the plan), so a stuck attempt must not stall the dataset.

Seeds: attempt a of episode i of a dataset with seed S uses the seed sequence (S, i, a); object
placement and the 16 cameras are drawn from independent streams of it, so episodes are reproducible
one by one, whatever the sharding or worker count.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geo4d_core.data import EpisodeError, EpisodeReader, EpisodeWriter
from geo4d_core.data.episode import PARTIAL_SUFFIX
from geo4d_core.data.cameras import sample_cameras
from sim.isolation import SubprocessCrash, SubprocessTimeout, call_with_timeout

DEFAULT_CAMERAS = 16  # cameras per episode (paper appendix)
DEFAULT_TEST_CAMERAS = 4  # of which marked "test"


@dataclass
class GenerateConfig:
    """What `generate_dataset` produces."""

    task: str  # task name (see `sim.tasks.task_names()`)
    out: Path  # dataset folder
    episodes: int | None = None  # number of successful episodes; None = the task's paper default
    seed: int = 0  # dataset seed
    cameras: int = DEFAULT_CAMERAS  # cameras per episode
    test_cameras: int = DEFAULT_TEST_CAMERAS  # cameras marked "test" (the last ones)
    height: int = 256  # image height, pixels
    width: int = 320  # image width, pixels
    fps: float = 10.0  # recording rate, Hz
    workers: int = 1  # parallel worker processes
    shard: tuple[int, int] = (0, 1)  # (k, n): this run generates the episodes with index % n == k
    max_attempts: int = 5  # demonstrations tried per episode before giving up on it
    attempt_timeout: float = 1800.0  # seconds one attempt may take before it is killed and retried (<= 0: none)


@dataclass
class EpisodeReport:
    """What happened to one episode index."""

    index: int  # episode index in the dataset
    status: str  # "done" (generated now), "skipped" (already complete) or "failed" (all attempts failed)
    attempts: int  # demonstrations run for it now
    path: str  # episode folder
    seconds: float  # wall time spent now
    reason: str = ""  # the last failure reason, if any


def episode_path(out: Path, index: int) -> Path:
    """The folder of episode `index` in dataset `out`."""
    return Path(out) / f"episode_{index:06d}.zarr"


def episode_seeds(dataset_seed: int, index: int, attempt: int) -> tuple[int, np.random.Generator]:
    """(object-placement seed, camera rng) of an attempt; independent streams of (seed, index, attempt)."""
    placement, cameras = np.random.SeedSequence([dataset_seed, index, attempt]).spawn(2)
    return int(placement.generate_state(1)[0]), np.random.default_rng(cameras)


def is_complete(path: Path) -> bool:
    """True when `path` holds a complete, readable episode."""
    if not path.exists():
        return False
    try:
        EpisodeReader(path)
        return True
    except EpisodeError:
        return False


def generate_episode(cfg: GenerateConfig, index: int) -> EpisodeReport:
    """Generate episode `index` (retrying failed or stuck demonstrations), unless it is already complete."""
    path = episode_path(cfg.out, index)
    if is_complete(path):
        return EpisodeReport(index, "skipped", 0, str(path), 0.0)
    start = time.perf_counter()
    reason = ""
    for attempt in range(cfg.max_attempts):
        seed, _ = episode_seeds(cfg.seed, index, attempt)
        success, reason = _run_attempt_with_timeout(cfg, index, attempt)
        if success:
            return EpisodeReport(index, "done", attempt + 1, str(path), time.perf_counter() - start)
        _log_failure(cfg.out, {"task": cfg.task, "index": index, "attempt": attempt, "seed": seed, "reason": reason})
    return EpisodeReport(index, "failed", cfg.max_attempts, str(path), time.perf_counter() - start, reason)


def run_attempt(cfg: GenerateConfig, index: int, attempt: int) -> tuple[bool, str]:
    """One demonstration of episode `index`, recorded to its folder when it succeeds: (success, reason).

    A failed demonstration leaves nothing behind (its `.partial` folder is removed)."""
    from sim.expert import run_demonstration
    from sim.tasks import make_task

    path = episode_path(cfg.out, index)
    seed, camera_rng = episode_seeds(cfg.seed, index, attempt)
    cameras = sample_cameras(camera_rng, cfg.cameras, height=cfg.height, width=cfg.width, num_test=cfg.test_cameras)
    state: dict[str, EpisodeWriter] = {}

    def on_start(station):
        state["writer"] = EpisodeWriter(
            path, task=cfg.task, seed=seed, cameras=cameras, num_arms=len(station.arms), fps=cfg.fps,
            label_parts=station.label_parts, overwrite=True,
            extra={"dataset_seed": cfg.seed, "index": index, "attempt": attempt,
                   "arms": [arm.name for arm in station.arms]})

    def on_step(step):
        state["writer"].append(step.t, step.X_WE, step.gripper_width, step.frames)

    try:
        result = run_demonstration(make_task(cfg.task), seed, cameras=cameras, fps=cfg.fps, on_start=on_start,
                                   on_step=on_step)
    except BaseException:
        if "writer" in state:
            state["writer"].abort()
        raise
    if result.outcome.success:
        state["writer"].close(success=True)
        return True, result.outcome.reason
    if "writer" in state:
        state["writer"].abort()
    return False, result.outcome.reason


def _run_attempt_with_timeout(cfg: GenerateConfig, index: int, attempt: int) -> tuple[bool, str]:
    """`run_attempt` in a fresh process, killed after `cfg.attempt_timeout` seconds (then its partial
    episode folder is removed); a crash is a failed attempt."""
    try:
        return call_with_timeout(run_attempt, (cfg, index, attempt), timeout=cfg.attempt_timeout)
    except SubprocessTimeout:
        partial = episode_path(cfg.out, index).with_name(episode_path(cfg.out, index).name + PARTIAL_SUFFIX)
        shutil.rmtree(partial, ignore_errors=True)
        return False, f"timed out after {cfg.attempt_timeout:g} s (killed)"
    except SubprocessCrash as exc:
        return False, f"crashed: {exc}"


def _log_failure(out: Path, record: dict) -> None:
    with open(Path(out) / "failures.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _worker(args: tuple[GenerateConfig, int]) -> EpisodeReport:
    cfg, index = args
    return generate_episode(cfg, index)


def shard_indices(episodes: int, shard: tuple[int, int]) -> list[int]:
    """Episode indices of shard (k, n): those with index % n == k."""
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard must be k/n with 0 <= k < n, got {k}/{n}")
    return [i for i in range(episodes) if i % n == k]


def generate_dataset(cfg: GenerateConfig, *, progress: bool = True) -> list[EpisodeReport]:
    """Generate this shard's episodes of the dataset; returns one report per episode index."""
    from sim.tasks import make_task

    task = make_task(cfg.task)  # fails early, with the known names, on a typo
    episodes = cfg.episodes if cfg.episodes is not None else task.default_episodes
    cfg = GenerateConfig(**{**asdict(cfg), "episodes": episodes, "out": Path(cfg.out)})
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "dataset.json").write_text(json.dumps(
        {"task": cfg.task, "episodes": episodes, "seed": cfg.seed, "cameras": cfg.cameras,
         "test_cameras": cfg.test_cameras, "height": cfg.height, "width": cfg.width, "fps": cfg.fps}, indent=2))
    indices = shard_indices(episodes, cfg.shard)
    todo = [i for i in indices if not is_complete(episode_path(cfg.out, i))]
    reports = [EpisodeReport(i, "skipped", 0, str(episode_path(cfg.out, i)), 0.0) for i in indices if i not in todo]
    bar = tqdm(total=len(indices), initial=len(reports), desc=f"{cfg.task} shard {cfg.shard[0]}/{cfg.shard[1]}",
               unit="episode", disable=not progress)
    if cfg.workers <= 1 or len(todo) <= 1:
        results = (generate_episode(cfg, i) for i in todo)
        pool = None
    else:  # fresh interpreters (Drake and VTK do not survive fork); non-daemonic, so attempts can be children
        pool = ProcessPoolExecutor(min(cfg.workers, len(todo)), mp_context=mp.get_context("spawn"))
        results = (f.result() for f in as_completed([pool.submit(_worker, (cfg, i)) for i in todo]))
    try:
        for report in results:
            reports.append(report)
            bar.update(1)
            if report.status == "failed":
                bar.write(f"episode {report.index}: all {report.attempts} attempts failed ({report.reason})")
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return sorted(reports, key=lambda r: r.index)
