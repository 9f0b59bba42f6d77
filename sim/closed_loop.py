"""Closed-loop trials in Drake: observe two test views, plan, execute, observe again (the paper's Table 2).

One trial = one `SimRobot` (seeded object placement and camera pair, `sim.robot`) driven by a policy until
the task succeeds, the trial times out, or a safety stop:

    observe (camera n, camera m, robot state) -> policy -> Plan of h steps -> execute `chunk` of them -> ...

Policies (`POLICIES`):

- `world_model`: `geo4d_core.policy.WorldModelPolicy` on a checkpoint: the world model predicts the next h
  frames of both views, action extraction turns them into the plan.
- `oracle`: the same extraction, plan checks and execution on the *true* future frames, rendered from a
  look-ahead simulation of the scripted expert (`SimRobot.true_future`, from the expert's progress
  `SimRobot.expert_time`): the upper bound of everything after the world model. View m's true points are moved into camera n's frame with the true extrinsics,
  as the model's training targets are.
- `scripted`: the scripted expert itself (its joint trajectories), no extraction.

Stopping. After every cycle the task's success predicate is evaluated; success ends the trial. The oracle
and the scripted expert also end once the expert's demonstration is over (`SimRobot.expert_duration`:
nothing moves after that; for the oracle on the expert's clock, `SimRobot.expert_time`); every policy ends at `max_seconds` of trial time. A plan that fails the plan
checks runs only up to its first violating step (`execute_valid_prefix`; those steps pass every check on
their own) and the robot plans again after them; likewise a plan the arm can follow only up to some step
(`PlanningError` with its `step`: IK fails, or a joint would have to jump). A plan rejected at its first
step is not executed: the robot holds for one control period and plans again from a new observation;
`max_rejections` such cycles in a row are a safety stop. Steps faster than the arm's joint speed limit are
slowed down by the executor (`sim.execution.PlanExecutor.max_slowdown`), not refused.

Frames: plans are in the robot base frame B = W (`sim.robot`); poses in the records are metres.
Time: trial time in seconds since the end of settling; wall times in seconds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from geo4d_core.action.hand import HandModel, load_hand_model
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
from geo4d_core.model.world_model import Prediction
from geo4d_core.policy import PolicyConfig, WorldModelPolicy
from geo4d_core.policy.world_model_policy import ApproachMemory, PolicyOutput, plan_from_prediction
from sim.control import PlanningError
from sim.robot import SimObservation, SimRobot, SimRobotConfig, sample_camera_pair

__all__ = ["POLICIES", "TrialConfig", "CycleRecord", "TrialResult", "OraclePolicy", "ScriptedPolicy",
           "ModelPolicy", "make_policy", "run_trial", "true_prediction"]

POLICIES = ("world_model", "oracle", "scripted")


@dataclass
class TrialConfig:
    """One closed-loop trial."""

    task: str  # task name (sim.tasks.task_names())
    policy: str  # "world_model", "oracle" or "scripted"
    seed: int = 0  # trial seed: object placement and camera pair (sim.robot.trial_seeds)
    checkpoint: str | None = None  # world-model checkpoint folder (save_pretrained format); world_model only
    chunk: int = 10  # control steps of each plan executed before planning again (<= the plan's h steps)
    max_seconds: float = 30.0  # trial time limit, simulated seconds
    max_rejections: int = 3  # rejected or unplannable plans in a row before a safety stop
    # Execute a rejected plan's steps before its first violating step (they pass every check on their own)
    # and plan again sooner, instead of holding; off: a plan with any violation is not executed at all.
    execute_valid_prefix: bool = True
    height: int = 128  # rendered image height, pixels
    width: int = 160  # rendered image width, pixels
    policy_config: PolicyConfig = field(default_factory=PolicyConfig)  # sampler steps, extraction, plan limits
    record_video: bool = False  # render every control step and keep frames for a video (slower)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"TrialConfig.policy must be one of {POLICIES}, got {self.policy!r}")
        if self.policy == "world_model" and not self.checkpoint:
            raise ValueError("TrialConfig: the world_model policy needs a checkpoint folder")
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"TrialConfig.chunk must be an int >= 1 (control steps), got {self.chunk!r}")
        if not isinstance(self.max_rejections, int) or self.max_rejections < 1:
            raise ValueError(f"TrialConfig.max_rejections must be an int >= 1, got {self.max_rejections!r}")
        if not (np.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"TrialConfig.max_seconds must be > 0 seconds, got {self.max_seconds!r}")

    def robot_config(self) -> SimRobotConfig:
        return SimRobotConfig(task=self.task, seed=self.seed, height=self.height, width=self.width,
                              fps=1.0 / self.policy_config.dt, max_seconds=self.max_seconds)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("record_video")
        return d


@dataclass
class CycleRecord:
    """One planning cycle of a trial."""

    t: float  # trial time of the observation, seconds
    executed: bool  # the plan (or the expert's step), or its steps before the first violation, ran
    steps: int  # control periods simulated after this cycle's observation
    violations: list[str]  # the plan checks' findings or "planning: ..." (with `executed`: the prefix ran)
    p_B_start: list[float] | None  # (3,) TCP position of the first arm at the observation, metres in B
    p_B_plan: list[list[float]] | None  # (h, 3) planned TCP positions of the first arm, metres in B
    closed_plan: list[bool] | None  # (h,) planned gripper closed flags of the first arm
    confidence: float | None  # mean per-step tracking confidence of the plan, [0, 1]
    view_m_steps: int | None  # plan steps (all arms) whose pose came from view m
    poses_finite: bool  # the plan's poses are all finite (False is itself a violation)
    timings: dict[str, float]  # wall seconds: observe (render + measure), predict, extract, execute, record
    # Every arm by name: p_B_start (3,), p_B_plan (h, 3) metres in B, closed_plan (h,), confidence (h,) and
    # source_view (h,) of the plan steps (None for the scripted expert)
    arms: dict[str, dict[str, list]] | None = None


@dataclass
class TrialResult:
    """The outcome and record of one trial (JSON-serialisable through `to_dict`)."""

    config: dict[str, Any]  # TrialConfig.to_dict()
    success: bool  # the task's success predicate held when the trial ended
    stop: str  # "success", "expert_done", "timeout", "safety_stop" or "error"
    reason: str  # the success predicate's explanation, or why the trial stopped
    sim_seconds: float  # trial time at the end, seconds
    wall_seconds: float  # wall time of the whole trial, seconds (station build included)
    camera_sources: list[str]  # pool names of cameras (n, m)
    placement_seed: int  # the object-placement seed drawn from the trial seed (-1: none could be used)
    placement_attempt: int = 0  # how many placements of the trial seed the expert could not plan before it
    camera_coverage: float | None = None  # fraction of the expert's hand samples the pair (n, m) sees (SimRobot)
    camera_pool_draw: int = 0  # which camera pool of the trial's stream the pair is from (0: the first)
    cycles: list[CycleRecord] = field(default_factory=list)  # the planning cycles, in order
    robot_timings: dict[str, float] = field(default_factory=dict)  # SimRobot.timings at the end

    @property
    def poses_finite(self) -> bool:
        return all(c.poses_finite for c in self.cycles)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["poses_finite"] = self.poses_finite
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrialResult":
        d = dict(d)
        d.pop("poses_finite", None)
        d.pop("files", None)  # added by sim.evaluation
        d["cycles"] = [CycleRecord(**c) for c in d.get("cycles", [])]
        return cls(**d)


class ClosedLoopPolicy(Protocol):
    """What `run_trial` drives: `reset` per trial, then `predict` per cycle."""

    name: str

    def reset(self, robot: SimRobot) -> None:
        """Start a trial on `robot` (a new camera pair, so a new camera n extrinsic)."""

    def predict(self, robot: SimRobot, obs: SimObservation) -> PolicyOutput | None:
        """The cycle's plan from `obs` (None: run the scripted expert instead of a plan)."""


def true_prediction(frames: list[SimObservation], robot: SimRobot) -> Prediction:
    """The true future frames as a `Prediction` in the world model's layout: view n's points in camera n,
    view m's points moved into camera n's frame with the true extrinsics (X_WC of both cameras)."""
    cam_n, cam_m = robot.cameras
    depth_n = np.stack([f.obs_n.depth for f in frames]).astype(np.float32)
    depth_m = np.stack([f.obs_m.depth for f in frames]).astype(np.float32)
    points_n, valid_n = depth_to_pointmap(depth_n, cam_n.K)
    points_m, valid_m = depth_to_pointmap(depth_m, cam_m.K)
    points_m_in_n = pointmap_m_to_n(points_m, cam_n.X_WC, cam_m.X_WC, valid_m).astype(np.float32)
    return Prediction(
        rgb_n=np.stack([f.obs_n.rgb for f in frames]), rgb_m=np.stack([f.obs_m.rgb for f in frames]),
        points_n=points_n.astype(np.float32), points_m_in_n=points_m_in_n,
        depth_n=np.where(valid_n, depth_n, 0.0).astype(np.float32), valid_n=valid_n, valid_m=valid_m,
        K_n=np.asarray(cam_n.K, dtype=np.float64), K_m=np.asarray(cam_m.K, dtype=np.float64), steps=0, seed=0)


class OraclePolicy:
    """Action extraction and plan checks on the true future frames of the scripted expert."""

    name = "oracle"

    def __init__(self, config: PolicyConfig | None = None, *, hand_model: HandModel | None = None,
                 horizon: int = 10):
        self.config = config or PolicyConfig()
        self.hand_model = hand_model if hand_model is not None else load_hand_model()
        self.horizon = int(horizon)
        self._trackers: dict = {}
        self._approach = ApproachMemory()

    def reset(self, robot: SimRobot) -> None:
        self._trackers = {}
        self._approach.reset()

    def predict(self, robot: SimRobot, obs: SimObservation) -> PolicyOutput:
        t0 = time.perf_counter()
        pred = true_prediction(robot.true_future(self.horizon), robot)
        t1 = time.perf_counter()
        plan, violations, result = plan_from_prediction(
            obs.obs_n, pred, obs.state, robot.X_BC_n, self.config, hand_model=self.hand_model,
            trackers=self._trackers, X_BE_approach_from=self._approach.approach_from(obs.state),
            X_BE_carry_from=self._approach.carry_from(obs.state))
        self._approach.update(obs.state)
        t2 = time.perf_counter()
        return PolicyOutput(plan, violations, result, pred,
                            {"predict_s": t1 - t0, "extract_s": t2 - t1, "total_s": t2 - t0})


class ScriptedPolicy:
    """The scripted expert: no plan, `run_trial` runs the expert's trajectories."""

    name = "scripted"

    def reset(self, robot: SimRobot) -> None:
        robot.expert_trajectories  # noqa: B018 - plan now (IK takes seconds), so planning errors surface first

    def predict(self, robot: SimRobot, obs: SimObservation) -> None:
        return None


class ModelPolicy:
    """`WorldModelPolicy` on a loaded world model, re-made per trial for the trial's camera n extrinsic."""

    name = "world_model"

    def __init__(self, model, config: PolicyConfig | None = None, *, hand_model: HandModel | None = None):
        self.model = model
        self.config = config or PolicyConfig()
        self.hand_model = hand_model if hand_model is not None else load_hand_model()
        self._policy: WorldModelPolicy | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, config: PolicyConfig | None = None) -> "ModelPolicy":
        from geo4d_core.model.world_model import WorldModel

        path = Path(checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"world-model checkpoint folder {path} does not exist")
        return cls(WorldModel.from_pretrained(path), config)

    def reset(self, robot: SimRobot) -> None:
        self._policy = WorldModelPolicy(self.model, robot.X_BC_n, self.config, hand_model=self.hand_model)
        self._policy.reset()

    def predict(self, robot: SimRobot, obs: SimObservation) -> PolicyOutput:
        if self._policy is None:
            raise RuntimeError("ModelPolicy.predict before reset(robot)")
        return self._policy.predict_action(obs.obs_n, obs.obs_m, obs.state)


def make_policy(config: TrialConfig, *, model=None, hand_model: HandModel | None = None) -> ClosedLoopPolicy:
    """The policy of `config` (`model`: an already loaded world model to reuse across trials)."""
    if config.policy == "scripted":
        return ScriptedPolicy()
    if config.policy == "oracle":
        return OraclePolicy(config.policy_config, hand_model=hand_model)
    if model is not None:
        return ModelPolicy(model, config.policy_config, hand_model=hand_model)
    return ModelPolicy.from_checkpoint(config.checkpoint, config.policy_config)


# A video frame callback: (the robot, its observation after a control period, the cycle's policy output or
# None, index of the period within the cycle) -> None.
FrameCallback = Callable[[SimRobot, SimObservation, PolicyOutput | None, int], None]


def run_trial(config: TrialConfig, *, policy: ClosedLoopPolicy | None = None,
              on_frame: FrameCallback | None = None,
              on_cycle: Callable[[CycleRecord, PolicyOutput | None], None] | None = None) -> TrialResult:
    """Run one closed-loop trial (see the module docstring).

    Args:
        config: the trial.
        policy: the policy to drive (default: `make_policy(config)`, which loads the checkpoint).
        on_frame: with `config.record_video`, called after every control period with the new observation.
        on_cycle: called after every cycle with its record and the policy's output.
    """
    start = time.perf_counter()
    policy = policy if policy is not None else make_policy(config)
    try:
        robot = SimRobot(config.robot_config())
    except PlanningError as exc:  # the scripted expert cannot plan any placement of this trial seed
        return TrialResult(config.to_dict(), False, "error", str(exc), 0.0, time.perf_counter() - start,
                           [c.name for c in sample_camera_pair(config.robot_config())], -1)
    result = TrialResult(config.to_dict(), False, "timeout", "", 0.0, 0.0, list(robot.camera_sources),
                         int(robot.placement_seed), int(robot.placement_attempt), robot.camera_coverage,
                         int(robot.camera_pool_draw))
    expert_bound = config.policy in ("oracle", "scripted")
    try:
        policy.reset(robot)
        rejections = 0
        while True:
            t_obs = time.perf_counter()
            obs = robot.observe()
            observe_s = time.perf_counter() - t_obs
            outcome = robot.outcome()
            if outcome.success:
                result.success, result.stop, result.reason = True, "success", outcome.reason
                break
            expert_t = robot.expert_time() if config.policy == "oracle" else robot.time
            if expert_bound and expert_t >= robot.expert_duration - 1e-9:
                result.stop, result.reason = "expert_done", outcome.reason
                break
            if robot.timed_out:
                result.stop, result.reason = "timeout", f"timed out after {robot.time:.1f} s: {outcome.reason}"
                break
            output = policy.predict(robot, obs)
            record = _execute_cycle(robot, config, obs, output, on_frame)
            record.timings["observe"] = observe_s
            result.cycles.append(record)
            if on_cycle is not None:
                on_cycle(record, output)
            rejections = 0 if record.executed else rejections + 1
            if rejections >= config.max_rejections:
                result.stop = "safety_stop"
                result.reason = (f"safety stop: {rejections} plans in a row not executed; last: "
                                 f"{'; '.join(record.violations)}")
                break
    except PlanningError as exc:  # the scripted expert cannot plan this placement (placement_attempts = 1)
        result.stop, result.reason = "error", str(exc)
    result.sim_seconds = float(robot.time)
    result.wall_seconds = time.perf_counter() - start
    result.robot_timings = dict(robot.timings)
    return result


def _execute_cycle(robot: SimRobot, config: TrialConfig, obs: SimObservation, output: PolicyOutput | None,
                   on_frame: FrameCallback | None) -> CycleRecord:
    """Execute one cycle's plan (or the expert's step) for `config.chunk` control periods."""
    timings = {"predict": 0.0, "extract": 0.0, "execute": 0.0, "record": 0.0}
    record_frames = config.record_video and on_frame is not None
    period = config.policy_config.dt
    p_start = obs.state.X_BE[0, :3, 3].tolist()
    if output is None:  # the scripted expert
        for k in range(config.chunk if record_frames else 1):
            t = time.perf_counter()
            robot.run_expert_step(1 if record_frames else config.chunk)
            timings["execute"] += time.perf_counter() - t
            if record_frames:
                _record(robot, on_frame, None, k, timings)
        return CycleRecord(obs.t, True, config.chunk, [], p_start, None, None, None, None, True, timings)

    plan = output.plan
    timings["predict"], timings["extract"] = output.timings["predict_s"], output.timings["extract_s"]
    finite = bool(np.isfinite(plan.X_BE).all())
    violations = [str(v) for v in output.violations]
    steps = min(config.chunk, plan.num_steps)
    executed = not violations
    to_run = plan
    first_bad = min((v.step for v in output.violations), default=plan.num_steps)
    if violations and config.execute_valid_prefix and first_bad >= 1:
        to_run, steps, executed = plan.prefix(first_bad), min(steps, first_bad), True
    t = time.perf_counter()
    while executed:
        try:
            robot.execute(to_run, steps=0 if record_frames else steps)
            break
        except PlanningError as exc:
            violations.append(f"planning: {exc}")
            k = exc.step  # the first step the arm cannot follow
            if config.execute_valid_prefix and k is not None and 1 <= k < to_run.num_steps:
                to_run, steps = to_run.prefix(k), min(steps, k)  # the steps before it can be followed
            else:
                executed = False
    if not executed:
        steps = 1
        if not record_frames:
            robot.hold(period)
    timings["execute"] += time.perf_counter() - t
    if record_frames:
        for k in range(steps):
            t = time.perf_counter()
            robot.hold(period)
            timings["execute"] += time.perf_counter() - t
            _record(robot, on_frame, output, k, timings)
    arms = {name: {"p_B_start": obs.state.X_BE[a, :3, 3].tolist(),
                   "p_B_plan": np.where(np.isfinite(plan.X_BE[:, a, :3, 3]), plan.X_BE[:, a, :3, 3], None).tolist(),
                   "closed_plan": plan.gripper_closed[:, a].astype(bool).tolist(),
                   "confidence": np.round(plan.confidence[:, a], 4).tolist(),
                   "source_view": [str(v) for v in plan.source_view[:, a]]}
            for a, name in enumerate(plan.arms)}
    first = arms[plan.arms[0]]
    return CycleRecord(
        t=obs.t, executed=executed, steps=steps, violations=violations, p_B_start=p_start,
        p_B_plan=first["p_B_plan"], closed_plan=first["closed_plan"],
        confidence=float(np.mean(plan.confidence)), view_m_steps=int(np.sum(plan.source_view == "m")),
        poses_finite=finite, timings=timings, arms=arms)


def _record(robot: SimRobot, on_frame: FrameCallback, output: PolicyOutput | None, k: int,
            timings: dict[str, float]) -> None:
    t = time.perf_counter()
    on_frame(robot, robot.observe(), output, k)
    timings["record"] += time.perf_counter() - t
