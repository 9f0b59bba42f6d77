"""`geo4d sim eval`: seeded closed-loop trials of a policy on tasks, with success rates, Table 2 and videos.

Layout of an evaluation folder OUT (one folder can hold several tasks and policies, and shards of them):

    OUT/TASK/POLICY/settings.json        the trial settings (a resumed run must use the same ones)
    OUT/TASK/POLICY/trial_0007.json      one finished trial (`sim.closed_loop.TrialResult`)
    OUT/TASK/POLICY/trial_0007.mp4       its video (the first `videos` trial indices of the run)
    OUT/TASK/POLICY/trial_0007_pointcloud.{ply,png}  a predicted point cloud of its first cycle
    OUT/results.json, OUT/results.md     summary of every trial found under OUT (rewritten after each run)

Trial `i` uses trial seed `seed + i` (object placement and camera pair, `sim.robot.trial_seeds`), so a
trial is reproducible on its own whatever the sharding. Resumable: trials with a result file are not run
again, except those that ended in "error" (a crash or a hung renderer, not a policy failure). Sharding:
`shard=(k, n)` runs the trial indices i with i % n == k; shards may write into one shared folder, and
`geo4d sim report OUT` summarises whatever is there. Each trial runs in its own process (a spawned
interpreter; Drake's renderer has been seen to hang, `sim.isolation`) killed after `trial_timeout`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from geo4d_core.atomic import write_text_atomic
from geo4d_core.policy import PolicyConfig
from sim.closed_loop import POLICIES, TrialConfig, make_policy, run_trial
from sim.isolation import SubprocessCrash, SubprocessTimeout, call_with_timeout

__all__ = ["EvalConfig", "replace_fields", "run_evaluation", "summarize", "results_markdown", "wilson_interval", "trial_path",
           "load_results", "write_report", "run_one_trial"]


@dataclass
class EvalConfig:
    """What `run_evaluation` runs."""

    tasks: list[str]  # task names
    policy: str  # "world_model", "oracle" or "scripted"
    trials: int  # trials per task (indices 0 .. trials-1, before sharding)
    out: Path  # evaluation folder
    checkpoint: str | None = None  # world-model checkpoint folder (world_model only)
    seed: int = 0  # trial i uses trial seed seed + i
    workers: int = 1  # trials run at the same time (each in its own process)
    shard: tuple[int, int] = (0, 1)  # (k, n): run the trial indices i with i % n == k
    videos: int = 0  # record a video (and a point-cloud snapshot) of trial indices < videos
    trial_timeout: float = 3600.0  # seconds before a trial's process is killed (<= 0: run in this process)
    chunk: int = 10  # control steps executed per plan before planning again
    max_seconds: float = 30.0  # trial time limit, simulated seconds
    sampler_steps: int = 10  # Euler steps of the world model per cycle
    gripper_rule: str | None = None  # open/closed rule of extraction ("centroid" or "opening"; None = default)
    # Changes to the policy's extraction settings, dotted ExtractionConfig field -> value (for experiments,
    # e.g. {"icp.crop_margin_z": 0.0, "interpolate_gaps": True}); recorded in settings.json
    extraction_overrides: dict[str, Any] = field(default_factory=dict)
    height: int = 128  # rendered image height, pixels
    width: int = 160  # rendered image width, pixels

    def __post_init__(self) -> None:
        from sim.tasks import task_names

        self.out = Path(self.out)
        unknown = [t for t in self.tasks if t not in task_names()]
        if unknown or not self.tasks:
            raise ValueError(f"unknown task(s) {unknown or self.tasks}; known tasks: {', '.join(task_names())}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; known policies: {', '.join(POLICIES)}")
        if self.policy == "world_model":
            if not self.checkpoint:
                raise ValueError("the world_model policy needs --checkpoint DIR")
            if not Path(self.checkpoint).is_dir():
                raise ValueError(f"checkpoint folder {self.checkpoint} does not exist")
        for name in ("trials", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        k, n = self.shard
        if not (n >= 1 and 0 <= k < n):
            raise ValueError(f"shard must be k/n with 0 <= k < n, got {k}/{n}")
        self.trial_config(self.tasks[0], 0)  # validates chunk, max_seconds, sampler steps, gripper rule

    def trial_config(self, task: str, index: int) -> TrialConfig:
        """The settings of trial `index` of `task`."""
        policy_config = PolicyConfig(steps=self.sampler_steps)
        overrides = dict(self.extraction_overrides)
        if self.gripper_rule is not None:  # only the rule: the policy's hysteresis and confirmations stay
            overrides.setdefault("gripper.rule", self.gripper_rule)
        if overrides:
            policy_config.extraction = replace_fields(policy_config.extraction, overrides)
        return TrialConfig(task=task, policy=self.policy, seed=self.seed + index,
                           checkpoint=str(self.checkpoint) if self.checkpoint else None, chunk=self.chunk,
                           max_seconds=self.max_seconds, height=self.height, width=self.width,
                           policy_config=policy_config, record_video=index < self.videos)

    def indices(self) -> list[int]:
        k, n = self.shard
        return [i for i in range(self.trials) if i % n == k]


def replace_fields(obj: Any, overrides: dict[str, Any]) -> Any:
    """A copy of dataclass `obj` with fields replaced by dotted path ("icp.crop_margin_z" -> obj.icp.crop_margin_z).

    A value must fit the field's current value: a number for a number (ints widen to float), true / false for
    a bool, a list for a tuple; a string for a string. Raises ValueError naming the key otherwise, and for a
    path that is not a field (with the valid names); the dataclass's own checks (`__post_init__`) run again.
    """
    grouped: dict[str, dict[str, Any]] = {}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = str(key).partition(".")
        if rest:
            grouped.setdefault(head, {})[rest] = value
        else:
            changes[head] = value
    names = [f.name for f in dataclasses.fields(obj)]
    for name in [*changes, *grouped]:
        if name not in names:
            raise ValueError(f"{type(obj).__name__} has no field {name!r}; fields: {', '.join(names)}")
    for name, sub in grouped.items():
        current = getattr(obj, name)
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"{type(obj).__name__}.{name} is not a section (value {current!r})")
        changes[name] = replace_fields(current, sub)
    for name, value in list(changes.items()):
        if name in grouped:
            continue
        current = getattr(obj, name)
        where = f"{type(obj).__name__}.{name}"
        if isinstance(current, bool) or isinstance(value, bool):
            ok = isinstance(current, bool) and isinstance(value, bool)
        elif isinstance(current, (int, float)):
            ok = isinstance(value, (int, float)) and (isinstance(current, float) or isinstance(value, int))
            value = float(value) if ok and isinstance(current, float) else value
        elif isinstance(current, tuple):
            ok = isinstance(value, (list, tuple))
            value = tuple(value) if ok else value
        elif current is None or isinstance(current, str):
            ok = value is None or isinstance(value, str) or current is None
        else:
            ok = False
        if not ok:
            raise ValueError(f"{where} = {value!r}: expected a value like the current {current!r}")
        changes[name] = value
    return dataclasses.replace(obj, **changes)


def trial_path(out: Path, task: str, policy: str, index: int) -> Path:
    """The result file of trial `index` (its video and snapshot share the stem)."""
    return Path(out) / task / policy / f"trial_{index:04d}.json"


def _settings(cfg: EvalConfig, task: str) -> dict[str, Any]:
    """What must not change between runs that add trials to the same folder."""
    d = cfg.trial_config(task, 0).to_dict()
    d.pop("seed")
    d["first_seed"] = cfg.seed
    return d


_MODELS: dict[str, Any] = {}  # checkpoint -> loaded world model, reused by trials run in this process


def run_one_trial(trial: TrialConfig, path: Path) -> dict[str, Any]:
    """Run one trial and write its result (and video / snapshot when `trial.record_video`) next to `path`;
    returns the result as a dict. Module-level so it can run in a spawned process."""
    from sim.video import TrialVideo, prediction_snapshot

    model = None
    if trial.policy == "world_model":
        if trial.checkpoint not in _MODELS:
            from geo4d_core.model.world_model import WorldModel

            _MODELS[trial.checkpoint] = WorldModel.from_pretrained(trial.checkpoint)
        model = _MODELS[trial.checkpoint]
    policy = make_policy(trial, model=model)
    video = TrialVideo(path.with_suffix(".mp4"), trial.policy, fps=1.0 / trial.policy_config.dt) \
        if trial.record_video else None
    snapshot: dict[str, str] = {}

    def on_cycle(record, output) -> None:
        if video is not None and not snapshot and output is not None and output.prediction is not None:
            step = min(trial.chunk, output.prediction.horizon) - 1
            files = prediction_snapshot(output, step, path.parent / f"{path.stem}_pointcloud")
            snapshot.update({k: str(v) for k, v in files.items()})

    try:
        result = run_trial(trial, policy=policy, on_frame=video, on_cycle=on_cycle)
    finally:
        if video is not None:
            video.close()
    d = result.to_dict()
    d["files"] = {"video": str(video.path) if video is not None and video.frames else None, **snapshot}
    write_text_atomic(path, json.dumps(d, indent=1))
    return d


def _run_isolated(trial: TrialConfig, path: Path, timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        return call_with_timeout(run_one_trial, (trial, path), timeout=timeout)
    except (SubprocessTimeout, SubprocessCrash) as exc:
        why = f"timed out after {timeout:g} s (killed)" if isinstance(exc, SubprocessTimeout) else f"crashed: {exc}"
        d = {"config": trial.to_dict(), "success": False, "stop": "error", "reason": why, "sim_seconds": 0.0,
             "wall_seconds": time.perf_counter() - start, "camera_sources": [], "placement_seed": -1,
             "cycles": [], "robot_timings": {}, "poses_finite": True, "files": {}}
        write_text_atomic(path, json.dumps(d, indent=1))
        return d


def run_evaluation(cfg: EvalConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run this shard's missing trials of every task, then rewrite OUT/results.{json,md}; returns the
    summary of everything under OUT."""
    todo: list[tuple[TrialConfig, Path]] = []
    for task in cfg.tasks:
        folder = cfg.out / task / cfg.policy
        settings_file = folder / "settings.json"
        settings = json.loads(json.dumps(_settings(cfg, task)))  # as read back from the file
        if settings_file.exists():
            old = json.loads(settings_file.read_text())
            if old != settings:
                changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise ValueError(f"{folder} holds trials run with other settings (differing: {', '.join(changed)}); "
                                 f"use another --out folder")
        else:
            write_text_atomic(settings_file, json.dumps(settings, indent=1))
        for i in cfg.indices():
            path = trial_path(cfg.out, task, cfg.policy, i)
            if path.exists() and json.loads(path.read_text()).get("stop") != "error":
                continue
            todo.append((cfg.trial_config(task, i), path))
    total = len(cfg.tasks) * len(cfg.indices())
    bar = tqdm(total=total, initial=total - len(todo), desc=f"{cfg.policy} trials", unit="trial",
               disable=not progress)
    ok = 0

    def done(d: dict[str, Any]) -> None:
        nonlocal ok
        ok += bool(d["success"])
        bar.update(1)
        bar.set_postfix_str(f"{d['config']['task']} seed {d['config']['seed']}: {d['stop']}")

    try:
        if cfg.workers <= 1:
            for trial, path in todo:
                done(_run_isolated(trial, path, cfg.trial_timeout))
        else:
            with ThreadPoolExecutor(cfg.workers) as pool:  # each thread waits on its own trial process
                timeout = cfg.trial_timeout if cfg.trial_timeout > 0 else 10 * 24 * 3600.0
                for f in as_completed([pool.submit(_run_isolated, t, p, timeout) for t, p in todo]):
                    done(f.result())
    finally:
        bar.close()
    return write_report(cfg.out)


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every trial result under OUT (sorted by task, policy, seed)."""
    results = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/*/trial_*.json"))]
    return sorted(results, key=lambda d: (d["config"]["task"], d["config"]["policy"], d["config"]["seed"]))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (95 % for z = 1.96); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class _Group:
    trials: int = 0
    successes: int = 0
    errors: int = 0
    stops: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    cycles: list[int] = field(default_factory=list)
    cycle_timings: dict[str, list[float]] = field(default_factory=dict)
    trial_wall: list[float] = field(default_factory=list)
    poses_finite: bool = True


def _failure_kind(d: dict[str, Any]) -> str:
    """A short failure class: the stop reason, or for plan violations their kind."""
    reason = d["reason"]
    if d["stop"] == "safety_stop":
        for kind in ("angular speed", "linear speed", "workspace", "non-finite", "planning"):
            if kind in reason:
                return f"safety stop ({kind})"
        return "safety stop"
    if d["stop"] in ("expert_done", "timeout"):
        return f"{d['stop']}: {reason.split(':')[-1].split('(')[0].strip()}"
    return d["stop"]


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (task, policy): trials, successes, rate, 95 % Wilson interval, stops, failure reasons, cycles per
    trial and mean wall seconds per planning cycle by stage."""
    groups: dict[tuple[str, str], _Group] = {}
    for d in results:
        g = groups.setdefault((d["config"]["task"], d["config"]["policy"]), _Group())
        g.trials += 1
        g.successes += bool(d["success"])
        g.errors += d["stop"] == "error"
        g.stops[d["stop"]] += 1
        if not d["success"]:
            g.failures[_failure_kind(d)] += 1
        g.cycles.append(len(d["cycles"]))
        g.trial_wall.append(d["wall_seconds"])
        g.poses_finite &= bool(d.get("poses_finite", True))
        for c in d["cycles"]:
            total = 0.0
            for stage, seconds in c["timings"].items():
                g.cycle_timings.setdefault(stage, []).append(seconds)
                total += seconds
            g.cycle_timings.setdefault("total", []).append(total)
    rows = []
    for (task, policy), g in sorted(groups.items()):
        lo, hi = wilson_interval(g.successes, g.trials)
        rows.append({
            "task": task, "policy": policy, "trials": g.trials, "successes": g.successes,
            "success_rate": g.successes / g.trials, "ci95": [lo, hi], "errors": g.errors,
            "stops": dict(g.stops), "failures": dict(g.failures.most_common()),
            "mean_cycles": float(np.mean(g.cycles)), "mean_trial_wall_s": float(np.mean(g.trial_wall)),
            "cycle_wall_s": {k: float(np.mean(v)) for k, v in g.cycle_timings.items()},
            "poses_finite": g.poses_finite,
        })
    return {"rows": rows}


def results_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables: success per policy and task (like the paper's Table 2), failures, cycle times."""
    rows = summary["rows"]
    tasks = sorted({r["task"] for r in rows})
    policies = [p for p in POLICIES if any(r["policy"] == p for r in rows)]
    by = {(r["task"], r["policy"]): r for r in rows}
    lines = ["| policy | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for p in policies:
        cells = []
        for t in tasks:
            r = by.get((t, p))
            cells.append("–" if r is None else
                         f"{r['successes']}/{r['trials']} ({r['success_rate']:.0%}, CI {r['ci95'][0]:.0%}–{r['ci95'][1]:.0%})")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", "Success: the task's predicate held when the trial ended; CI: 95 % Wilson interval.", "",
              "| task | policy | failures | mean cycles | s per cycle: observe / predict / extract / execute / "
              "record / total |", "|---|---|---|---:|---|"]
    for r in rows:
        fails = "; ".join(f"{k} ×{v}" for k, v in r["failures"].items()) or "none"
        w = r["cycle_wall_s"]
        times = " / ".join(f"{w.get(k, 0.0):.2f}" for k in ("observe", "predict", "extract", "execute", "record",
                                                             "total"))
        lines.append(f"| {r['task']} | {r['policy']} | {fails} | {r['mean_cycles']:.1f} | {times} |")
    return "\n".join(lines) + "\n"


def write_report(out: Path) -> dict[str, Any]:
    """Summarise every trial under OUT into OUT/results.json and OUT/results.md; returns the summary."""
    results = load_results(out)
    summary = summarize(results)
    write_text_atomic(Path(out) / "results.json", json.dumps(summary, indent=1))
    write_text_atomic(Path(out) / "results.md", results_markdown(summary))
    return summary

