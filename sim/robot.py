"""`SimRobot`: the simulated world of one closed-loop trial, observed and commanded plan by plan.

    robot = SimRobot(SimRobotConfig(task="PutSpatulaOnTable", seed=3))
    while not robot.timed_out:
        obs = robot.observe()                      # two RGB-D views + the robot's state
        plan = policy(obs)                         # a geo4d_core Plan, poses in the robot base frame B
        robot.execute(plan)                        # install it and simulate its steps (10 Hz)
    robot.outcome()                                # the task's success predicate

Frames. The robot base frame B of the plans is the world frame W (the table-centre frame, +z up,
metres): in simulation the plans are expressed in W, so camera n's extrinsic `X_BC_n` is its `X_WC`
and the measured TCP poses `X_BE` are `X_WE` (`sim.expert.measured_state`). Each Panda's own link-0
pose (`Station.arms[i].X_WB`) is a different frame that only the kinematics use.

Cameras. Like the dataset (`sim.generate`), a pool of `camera_pool` cameras is sampled with
`geo4d_core.data.cameras.sample_cameras`, of which the last `test_cameras` are held-out "test" views; the
trial's pair (n, m) is two distinct test cameras, renamed "n" and "m". The ordered pairs are put in a
random order (`camera_pair_candidates`; the first is `sample_camera_pair`'s), and with `camera_coverage`
on (the default) the station carries every test camera and the trial takes the first pair that sees the
most of the scripted expert's hand: the expert's joint trajectories are posed on the settled scene every
`survey_period` seconds (objects where they settled), each test camera renders its labels, and a camera
sees a hand when its body covers at least `min_hand_pixels` of the image and is not cut by the image
border (`cut_hand_unseen`), occlusion by the arm, the shelf or the objects included (`hand_pixels`, `pair_visibility`; the pair's fraction of seen samples is
recorded as `camera_coverage`). When no pair sees every hand at trial time 0 (where the first planning
cycle registers the tracker), or the best pair sees less than `min_camera_coverage` of the samples, the
camera pool is redrawn from the same stream, up to `camera_redraws` times, and the best pair of all pools
drawn is taken (`camera_pool_draw` says which pool). A pair that loses the hand for seconds while another pair of
the same trial sees it throughout tests the cameras, not the policy; the same rule holds for every
policy.

Seeding. `np.random.SeedSequence([config.seed, 7]).spawn(2)` gives two independent streams: the first's
32-bit states seed the object placement (`task.randomize(..., np.random.default_rng(placement_seed))`),
the second drives the camera pool and the pair. The salt 7 keeps trial seeds apart from the dataset's
episode seeds (`sim.generate.episode_seeds` uses three-entry sequences). A trial's scene is one the
scripted expert can solve: when the expert cannot plan a placement (an unreachable grasp, an IK branch
flip), the next 32-bit state of the placement stream is drawn, up to `placement_attempts` placements
(`placement_attempt` and `placement_failures` say what happened). Every policy sees the same scenes.

Time. Trial time 0 (`time`, `SimObservation.t`) is the end of the `SETTLE_S` seconds in which the
objects settle, with the arms at HOME and the hands open. Observations and plans run at `fps`.

Oracle. The scripted expert's plan (`task.plan`, exactly as `sim.expert`) is computed from the settled
state (a snapshot of the context at trial time 0, planned on first use because IK planning takes
seconds) as one `ArmTrajectory` per arm on the trial clock. `true_future` shows what the cameras would
see if the expert's trajectories ran from the current state for the next steps, simulated on the trial's
own simulator from a saved copy of its state that is restored afterwards: the trial is left as it was.
The trajectories run from `expert_time`, how far the expert would be if it were where the robot is (its
progress, matched on the TCP poses, `expert_clock = "progress"`): a robot that held or lagged sees the
expert go on from there at its own pace, as a world model conditioned on the current frame predicts,
instead of one fast catch-up motion towards where the expert is on the trial clock (`"trial"`, the
earlier behaviour). `run_expert_step` runs the same trajectories on the trial clock (the `scripted`
policy).
"""

from __future__ import annotations

import dataclasses
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from pydrake.systems.analysis import Simulator

from geo4d_core.action.plan import Plan
from geo4d_core.data import CameraSpec
from geo4d_core.data.cameras import sample_cameras
from geo4d_core.geometry import invert_pose
from geo4d_core.model.world_model import Observation
from geo4d_core.policy import RobotState
from sim.control import ArmTrajectory, PlanningError, plan_arm_trajectory
from sim.execution import PlanExecutor, install
from sim.expert import SETTLE_S, measured_state
from sim.scene import HOME_Q, MAX_FINGER_WIDTH, SceneConfig, Station, build_station
from sim.tasks import make_task
from sim.tasks.base import DemoPlan, Outcome, Task

__all__ = ["GRIPPER_CLOSED_BELOW", "SimObservation", "SimRobot", "SimRobotConfig", "camera_pair_candidates",
           "pair_visibility", "placement_seeds", "sample_camera_pair", "trial_seeds"]

# A measured finger opening below this counts as closed, metres. A fully open hand measures 0.080; closing
# on the task objects stops the fingers at the object (spatula handle 0.012, apple 0.064, cereal box 0.066),
# and an empty closed hand at 0. Matches `GripperStateConfig.closed_below_opening` of action extraction.
GRIPPER_CLOSED_BELOW = 0.07


@dataclass
class SimRobotConfig:
    """One closed-loop trial's simulated world."""

    task: str  # task name (sim.tasks.task_names())
    seed: int = 0  # trial seed: object placement and camera pair
    height: int = 128  # rendered image height, pixels
    width: int = 160  # rendered image width, pixels
    fps: float = 10.0  # observation/control rate, Hz
    max_seconds: float = 30.0  # trial time limit, simulated seconds
    camera_pool: int = 16  # cameras sampled like the dataset (geo4d_core.data.cameras.sample_cameras) ...
    test_cameras: int = 4  # ... of which the last ones are "test"; the pair (n, m) is drawn from the test ones
    placement_attempts: int = 5  # object placements drawn until the scripted expert can plan one (1 = no check)
    camera_coverage: bool = True  # take the test pair that sees the most of the expert's hand (off: the first drawn)
    min_hand_pixels: float = 0.004  # a camera sees a hand whose body covers at least this fraction of its image
    # ... and is not cut by the image border (no hand pixel in the outermost row or column): a tracker can
    # slide along the border, and a hand lifted out of the top of both views was lost for good.
    cut_hand_unseen: bool = True
    survey_period: float = 0.5  # seconds between the expert's poses rendered to choose the pair
    camera_redraws: int = 3  # camera pools redrawn while no test pair sees every hand at trial time 0 ...
    min_camera_coverage: float = 1.0  # ... or the best pair sees less than this fraction of the survey's hands
    # The clock `true_future` plays the expert's trajectories on: "progress" = from the expert time whose TCP
    # poses match the robot's now (`expert_time`), "trial" = the trial clock (a late robot is pulled towards
    # where the expert is now, in one fast catch-up motion).
    expert_clock: str = "progress"
    # Progress matching: expert poses within this distance of the best match count as a match, metres
    # (rotation counts `progress_rotation_weight` metres per radian); the latest match is taken.
    progress_tolerance: float = 0.002
    progress_rotation_weight: float = 0.1
    # Added to the match distance (metres) at expert times whose gripper command is closed while the robot's
    # fingers are open: a robot that arrived with open fingers is matched before the expert's closing, not
    # at the end of its still closing phase (which would skip the closing and lift with open fingers).
    # Releases are not held back: an opening replayed late leaves a hidden hand waiting closed (cereal).
    progress_gripper_penalty: float = 0.05
    scene: SceneConfig = field(default_factory=SceneConfig)  # physics and control settings of the station

    def __post_init__(self) -> None:
        if isinstance(self.scene, Mapping):
            self.scene = SceneConfig(**dict(self.scene))
        if (not isinstance(self.camera_redraws, (int, np.integer)) or isinstance(self.camera_redraws, bool)
                or self.camera_redraws < 0):
            raise ValueError(f"SimRobotConfig.camera_redraws must be an int >= 0, got {self.camera_redraws!r}")
        if not 0.0 <= float(self.min_camera_coverage) <= 1.0:
            raise ValueError(f"SimRobotConfig.min_camera_coverage must be a fraction in [0, 1], "
                             f"got {self.min_camera_coverage!r}")
        if not 0.0 <= float(self.min_hand_pixels) < 1.0:
            raise ValueError(f"SimRobotConfig.min_hand_pixels must be a fraction of the image in [0, 1), "
                             f"got {self.min_hand_pixels!r}")
        for name in ("height", "width", "camera_pool", "test_cameras", "placement_attempts"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SimRobotConfig.{name} must be a positive int, got {value!r}")
        if not 2 <= self.test_cameras <= self.camera_pool:
            raise ValueError(f"SimRobotConfig: need 2 <= test_cameras <= camera_pool to draw the pair (n, m), "
                             f"got test_cameras={self.test_cameras}, camera_pool={self.camera_pool}")
        if self.expert_clock not in ("progress", "trial"):
            raise ValueError(f"SimRobotConfig.expert_clock must be 'progress' or 'trial', got {self.expert_clock!r}")
        for name in ("fps", "max_seconds", "survey_period"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"SimRobotConfig.{name} must be finite and > 0, got {value!r}")
        for name in ("progress_tolerance", "progress_rotation_weight", "progress_gripper_penalty"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"SimRobotConfig.{name} must be finite and >= 0, got {value!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SimRobotConfig":
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SimRobotConfig: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(d))


@dataclass
class SimObservation:
    """What the robot sees and knows at one control step."""

    obs_n: Observation  # camera n: rgb (H, W, 3) uint8, depth (H, W) float32 metres (0 = invalid), K (3, 3)
    obs_m: Observation  # camera m, same fields
    labels_n: np.ndarray  # (H, W) int32 render labels of camera n (Station.label_parts names them)
    labels_m: np.ndarray  # (H, W) int32 render labels of camera m
    state: RobotState  # measured TCP poses X_BE (B = W), gripper state and openings of the arms
    t: float  # trial time, seconds since the end of settling


def trial_seeds(seed: int) -> tuple[int, np.random.Generator]:
    """(object-placement seed, camera rng) of trial `seed`: independent streams of SeedSequence([seed, 7])."""
    return placement_seeds(seed, 1)[0], np.random.default_rng(np.random.SeedSequence([int(seed), 7]).spawn(2)[1])


def placement_seeds(seed: int, attempts: int) -> list[int]:
    """The first `attempts` object-placement seeds of trial `seed` (its placement stream; the first one
    is `trial_seeds(seed)[0]`, the others are the redraws)."""
    placement = np.random.SeedSequence([int(seed), 7]).spawn(2)[0]
    return [int(x) for x in placement.generate_state(int(attempts))]


def camera_pair_candidates(config: SimRobotConfig, draw: int = 0) -> list[tuple[CameraSpec, CameraSpec]]:
    """Every ordered pair (camera n, camera m) of distinct test cameras of the trial, in the trial's random
    order: `config.camera_pool` cameras sampled like the dataset from the trial's camera stream
    (`trial_seeds`), the pair drawn from the last `config.test_cameras` ("test" split) first, then the
    other pairs shuffled by the same stream. `draw` k > 0 gives the k-th redrawn pool (the stream goes
    on). The specs keep their pool names (cam12, ...)."""
    rng = trial_seeds(config.seed)[1]
    for _ in range(int(draw) + 1):
        pool = sample_cameras(rng, config.camera_pool, height=config.height, width=config.width,
                              num_test=config.test_cameras)
        test = [c for c in pool if c.split == "test"]
        i, j = (int(x) for x in rng.choice(len(test), size=2, replace=False))
        rest = [(a, b) for a in range(len(test)) for b in range(len(test)) if a != b and (a, b) != (i, j)]
        order = [(i, j)] + [rest[k] for k in rng.permutation(len(rest))]
    return [(test[a], test[b]) for a, b in order]


def sample_camera_pair(config: SimRobotConfig) -> tuple[CameraSpec, CameraSpec]:
    """The trial's first drawn (camera n, camera m): two distinct test cameras in random order (the first
    of `camera_pair_candidates`)."""
    return camera_pair_candidates(config)[0]


def pair_visibility(pixels: np.ndarray, pair: tuple[int, int], min_pixels: float) -> tuple[float, bool]:
    """How well cameras `pair` = (i, j) see the hands: `pixels` (S, C, A) is the number of pixels of arm
    a's hand in camera c at survey sample s (`SimRobot.hand_pixels`); a sample's hand is seen when either
    camera shows at least `min_pixels` of it. Returns (fraction of the (sample, arm) hands seen, whether
    every arm's hand is seen at the first sample)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[0] == 0:
        raise ValueError(f"pixels must be (samples >= 1, cameras, arms), got shape {pixels.shape}")
    seen = np.maximum(pixels[:, pair[0]], pixels[:, pair[1]]) >= min_pixels  # (S, A)
    return float(seen.mean()), bool(seen[0].all())


class SimRobot:
    """The simulated world of one closed-loop trial (see the module docstring for frames and clocks)."""

    def __init__(self, config: SimRobotConfig, *, cameras: tuple[CameraSpec, CameraSpec] | None = None):
        """Build the station, place the objects and let them settle.

        Args:
            config: the trial.
            cameras: (camera n, camera m) to use instead of the sampled pair (renamed "n" and "m").
        """
        self.config = config
        self.timings: dict[str, float] = {"build": 0.0, "simulate": 0.0, "render": 0.0, "plan": 0.0}
        self._task = make_task(config.task)
        choose_pair = cameras is None and config.camera_coverage  # the pair that sees the expert, see above
        if cameras is None:
            candidates = camera_pair_candidates(config)
            initial = self._build(_distinct(candidates) if choose_pair else list(candidates[0]), candidates[0])
        else:
            cameras = tuple(cameras)
            if len(cameras) != 2 or not all(isinstance(c, CameraSpec) for c in cameras):
                raise ValueError(f"cameras must be a pair (camera n, camera m) of CameraSpecs, got {cameras!r}")
            initial = self._build([dataclasses.replace(c, name=r) for c, r in zip(cameras, "nm")], cameras, "nm")
        self.X_WB = np.eye(4)  # the plans' base frame B in the world: B = W in simulation
        self.placement_failures: list[str] = []  # why each earlier placement was redrawn
        for attempt, seed in enumerate(placement_seeds(config.seed, config.placement_attempts)):
            self.placement_attempt, self.placement_seed = attempt, seed
            self._place(initial, seed)
            try:
                if config.placement_attempts > 1 or choose_pair:
                    self._expert_cache()  # 1 attempt, no pair to choose: the expert plans on first use
                break
            except PlanningError as exc:
                self.placement_failures.append(str(exc))
        else:
            raise PlanningError(f"trial seed {config.seed}: the scripted expert of {config.task} cannot plan any of "
                                f"{config.placement_attempts} object placements; last: {self.placement_failures[-1]}")
        self.camera_coverage = None  # fraction of the expert's hand samples the pair sees (None: not computed)
        self.camera_pool_draw = 0  # which camera pool of the trial's stream the pair is from (see above)
        if choose_pair:
            self._choose_pair(candidates)

    def _choose_pair(self, candidates: list[tuple[CameraSpec, CameraSpec]]) -> None:
        """Take the pair of `candidates` that sees the most of the expert's hands among those that see them
        at trial time 0; while no pair does, or the best one sees less than `min_camera_coverage` of them,
        redraw the camera pool, and keep the best pair of all pools drawn (module docstring)."""
        config = self.config
        min_pixels = config.min_hand_pixels * config.height * config.width
        best = None  # ((seen at time 0, coverage, -draw, -index), draw, candidates, index)
        built = 0
        for draw in range(config.camera_redraws + 1):
            if draw > 0:
                candidates = camera_pair_candidates(config, draw)
                self._rebuild(candidates)
                built = draw
            names = list(self._station.sensors)
            pixels = self.hand_pixels(names)
            for k, (n, m) in enumerate(candidates):
                coverage, start = pair_visibility(pixels, (names.index(n.name), names.index(m.name)), min_pixels)
                key = (start, coverage, -draw, -k)  # the first of the best
                if best is None or key > best[0]:
                    best = (key, draw, candidates, k)
            if best[0][0] and best[0][1] >= config.min_camera_coverage - 1e-12:
                break
        (_, coverage, _, _), draw, candidates, k = best
        if draw != built:
            self._rebuild(candidates)
        self.camera_coverage, self.camera_pool_draw = coverage, draw
        self._set_pair(candidates[k])

    def _rebuild(self, candidates: list[tuple[CameraSpec, CameraSpec]]) -> None:
        """Rebuild the station with the cameras of `candidates` around the same placement and expert plan
        (the settling replays identically)."""
        expert = self._expert
        self._place(self._build(_distinct(candidates), candidates[0]), self.placement_seed)
        self._expert = expert

    def hand_pixels(self, cameras: list[str] | tuple[str, ...]) -> np.ndarray:
        """(S, C, A) pixels of each arm's hand body (`panda_hand`) in the labels of each of `cameras`
        (station camera names) with the arms posed on the scripted expert's joint trajectories at trial
        times 0, `survey_period`, ... to the end of the longest trajectory; the objects stay where they
        settled. With `cut_hand_unseen` a hand cut by the image border (a hand pixel in the outermost row or
        column) counts 0 pixels. Rendered on the trial's context at trial time 0, which is restored
        afterwards."""
        trajectories = self.expert_trajectories
        plant, station = self._station.plant, self._station
        t_end = max((traj.times[-1] for traj in trajectories.values()), default=0.0)
        times = np.arange(0.0, t_end + 1e-9, self.config.survey_period)
        hands = [np.asarray(station.label_parts[f"{arm.name}/hand"]) for arm in station.arms]
        pixels = np.zeros((len(times), len(cameras), len(hands)), dtype=np.int64)
        start = _time.perf_counter()
        try:
            for s, t in enumerate(times):
                for arm in station.arms:
                    if arm.name in trajectories:
                        q, _, width = trajectories[arm.name](t)
                        plant.SetPositions(self._plant_context, arm.instance, np.concatenate([q, [width / 2] * 2]))
                for c, name in enumerate(cameras):
                    labels = station.render_label(self._context, name)
                    for a, hand in enumerate(hands):
                        on = np.isin(labels, hand)
                        cut = on[[0, -1]].any() or on[:, [0, -1]].any()
                        pixels[s, c, a] = 0 if cut and self.config.cut_hand_unseen else on.sum()
        finally:
            self._context.SetTimeStateAndParametersFrom(self._settled)
            self.timings["render"] += _time.perf_counter() - start
        return pixels

    def _build(self, station_cameras: list[CameraSpec], pair: tuple[CameraSpec, CameraSpec],
               sensors: tuple[str, str] | str | None = None):
        """Build the station with `station_cameras` (rendered under their names), arms at HOME and hands
        open, and make `pair` (n, m) the trial's cameras (`sensors`: their station names, default their
        own); returns that context (before placement)."""
        start = _time.perf_counter()
        self._station = build_station(self._task, list(station_cameras), self.config.scene)
        self._set_pair(pair, sensors)
        self._simulator = Simulator(self._station.diagram)
        self._context = self._simulator.get_mutable_context()
        plant = self._station.plant
        self._plant_context = plant.GetMyMutableContextFromRoot(self._context)
        for arm in self._station.arms:
            plant.SetPositions(self._plant_context, arm.instance, np.concatenate([HOME_Q, [MAX_FINGER_WIDTH / 2] * 2]))
        self.executor = PlanExecutor(self._station)
        self._commands: dict[str, Callable | None] = {arm.name: None for arm in self._station.arms}
        self.timings["build"] += _time.perf_counter() - start
        return self._context.Clone()

    def _set_pair(self, pair: tuple[CameraSpec, CameraSpec], sensors: tuple[str, str] | str | None = None) -> None:
        """Observe through `pair` (n, m): station cameras `sensors` (default the specs' own names)."""
        self.camera_sources = (pair[0].name, pair[1].name)  # names the pair had in the sampled pool
        self._sensors = tuple(sensors) if sensors is not None else self.camera_sources
        self._cameras = (dataclasses.replace(pair[0], name="n"), dataclasses.replace(pair[1], name="m"))

    def _place(self, initial, placement_seed: int) -> None:
        """Restore the `initial` context (arms at HOME, before placement), place the objects with
        `placement_seed` and let them settle; trial time 0 is the end of settling."""
        self._context.SetTimeStateAndParametersFrom(initial)
        self._task.randomize(self._station, self._plant_context, np.random.default_rng(placement_seed))
        self._simulator.Initialize()
        self._X_BE_period_before: tuple[float, np.ndarray | None] = (-1.0, None)  # (at time, X_BE) see _advance_to
        self._advance_to(SETTLE_S)
        self._t0 = self._context.get_time()
        self._settled = self._context.Clone()  # the expert plans from here, on first use
        self._expert: tuple[DemoPlan, dict[str, ArmTrajectory]] | None = None
        self._progress = (0.0, 0.0)  # (trial time, expert_time then), see expert_time

    # ------------------------------------------------------------------------------------ properties

    @property
    def task(self) -> Task:
        """The task."""
        return self._task

    @property
    def station(self) -> Station:
        """The Drake station (diagram, plant, arms, sensors)."""
        return self._station

    @property
    def context(self):
        """The root diagram context of the trial (read it; advance only through this class)."""
        return self._context

    @property
    def plant_context(self):
        """The plant's context of the trial."""
        return self._plant_context

    @property
    def arms(self) -> tuple[str, ...]:
        """The arm names, in the order of every per-arm array."""
        return tuple(arm.name for arm in self._station.arms)

    @property
    def cameras(self) -> tuple[CameraSpec, CameraSpec]:
        """(camera n, camera m) specs, named "n" and "m"; X_WC in the world."""
        return self._cameras

    @property
    def X_BC_n(self) -> np.ndarray:
        """(4, 4) camera n in the robot base frame B (= W here), metres."""
        return invert_pose(self.X_WB) @ self._cameras[0].X_WC

    @property
    def time(self) -> float:
        """Trial time, seconds since the end of settling."""
        return self._context.get_time() - self._t0

    @property
    def timed_out(self) -> bool:
        """The trial time reached `config.max_seconds`."""
        return self.time >= self.config.max_seconds - 1e-9

    # -------------------------------------------------------------------------------- observe / act

    def observe(self) -> SimObservation:
        """Render both cameras and measure the robot now (`state.X_BE_prev`: the poses one control period
        earlier, None when the last advance was shorter than a period)."""
        t_end, X_prev = self._X_BE_period_before
        now = self._context.get_time()
        return self._observe(self._context, X_prev if abs(t_end - now) < 1e-9 else None)

    def execute(self, plan: Plan, steps: int | None = None) -> None:
        """Install `plan` from now (its timestamps count from the current time) and simulate `steps`
        control periods (default: one per plan step). Raises PlanningError (a safety stop: nothing is
        installed, no time passes) when an arm cannot follow the plan."""
        steps = len(plan.timestamps) if steps is None else self._check_steps(steps)
        start = _time.perf_counter()
        try:
            trajectories = self.executor.trajectories(plan, context=self._context, X_WB=self.X_WB)
        finally:
            self.timings["plan"] += _time.perf_counter() - start
        self._commands.update(install(self._station, trajectories, self._context, t0=self._context.get_time()))
        self._advance_to(self._context.get_time() + steps / self.config.fps)

    def hold(self, seconds: float) -> None:
        """Simulate `seconds` without a new plan (every arm keeps its last command)."""
        if not seconds >= 0:
            raise ValueError(f"hold: seconds must be >= 0, got {seconds}")
        self._advance_to(self._context.get_time() + float(seconds))

    def outcome(self) -> Outcome:
        """The task's success predicate on the current state."""
        return self._task.success(self._station, self._plant_context)

    # ------------------------------------------------------------------------------------- expert

    @property
    def expert_plan(self) -> DemoPlan:
        """The scripted expert's plan from the settled state (waypoint times on the trial clock)."""
        return self._expert_cache()[0]

    @property
    def expert_trajectories(self) -> dict[str, ArmTrajectory]:
        """Arm name -> the expert's joint trajectory, trajectory time = trial time (raises PlanningError
        when the expert cannot plan this placement)."""
        return self._expert_cache()[1]

    @property
    def expert_duration(self) -> float:
        """Seconds the expert's demonstration takes (its last waypoint plus settling)."""
        return float(self.expert_plan.duration)

    def expert_tcp_path(self, period: float | None = None) -> np.ndarray:
        """(N, 3) the expert's planned TCP positions in the world, metres, every `period` seconds (default
        one control period) of every arm's trajectory (forward kinematics of its joint trajectory)."""
        period = 1.0 / self.config.fps if period is None else float(period)
        points = []
        for name, traj in self.expert_trajectories.items():
            kin = self.executor.kinematics[name]
            for t in np.arange(traj.times[0], traj.times[-1] + 1e-9, period):
                points.append(kin.fk(traj(t)[0])[:3, 3])
        return np.asarray(points, dtype=np.float64).reshape(-1, 3)

    def run_expert_step(self, steps: int = 1) -> None:
        """Run the scripted expert on the trial for `steps` control periods. Its trajectories are on the
        trial clock: started late (or after other plans) the arms are pulled towards where the expert
        would be now."""
        steps = self._check_steps(steps)
        self._commands.update(install(self._station, self.expert_trajectories, self._context, t0=self._t0))
        self._advance_to(self._context.get_time() + steps / self.config.fps)

    def expert_time(self) -> float:
        """How far into its demonstration the scripted expert is, seconds on the expert's clock.

        With `expert_clock = "trial"` that is the trial time. With "progress" it is the time at which the
        expert's TCP poses (forward kinematics of its joint trajectories, every arm) best match the robot's
        measured ones, searched from the last value up to the trial time that passed since it, on a 10 ms
        grid; the latest time within `progress_tolerance` of the best match is taken (a still phase is then
        not replayed). Expert times whose gripper command is closed (below GRIPPER_CLOSED_BELOW) while the
        robot's measured fingers are open count `progress_gripper_penalty` further away, so the still phase
        in which the expert closes its gripper is matched at its start until the robot's fingers closed, and
        the future shows the closing before the lift. (Releases are matched at the end of their still
        phase, as every still phase: the future opens the fingers at once.) A robot that followed the
        expert's future exactly stays on the trial clock; one that held or lagged is that much behind, and
        never ahead.
        Updated on each call at a new trial time.
        """
        now = self.time
        if self.config.expert_clock == "trial":
            return now
        t_last, tau = self._progress
        if now <= t_last + 1e-9:
            return tau
        trajectories = self.expert_trajectories
        grid = np.arange(tau, tau + (now - t_last) + 1e-9, 0.01)
        X_BE, widths = self._observe_state(self._context)
        d = np.zeros(len(grid))
        for a, name in enumerate(self.arms):
            if name not in trajectories:
                continue
            kin, traj = self.executor.kinematics[name], trajectories[name]
            samples = [traj(t) for t in grid]
            X_WE = np.stack([kin.fk(q) for q, _, _ in samples])
            closed_expert = np.array([w < GRIPPER_CLOSED_BELOW for _, _, w in samples])
            if widths[a] >= GRIPPER_CLOSED_BELOW:  # the robot's fingers are open
                d += self.config.progress_gripper_penalty * closed_expert
            X_BE_expert = invert_pose(self.X_WB) @ X_WE
            d += np.linalg.norm(X_BE_expert[:, :3, 3] - X_BE[a, :3, 3], axis=1)
            cos = (np.einsum("kij,ij->k", X_BE_expert[:, :3, :3], X_BE[a, :3, :3]) - 1.0) / 2.0
            d += self.config.progress_rotation_weight * np.arccos(np.clip(cos, -1.0, 1.0))
        tau = float(grid[np.nonzero(d <= d.min() + self.config.progress_tolerance)[0][-1]])
        self._progress = (now, tau)
        return tau

    def true_future(self, steps: int) -> list[SimObservation]:
        """What the cameras would see at the next `steps` control periods (t + 1/fps, ..., t + steps/fps)
        if the expert's trajectories ran from the current state, from `expert_time` on its clock; the trial
        is not disturbed.

        The look-ahead runs on the trial's own context and simulator, from a saved copy of its state (time,
        discrete and abstract state) that is restored afterwards, with the expert's trajectories installed
        on the joint target sources for the look-ahead and the trial's commands restored after it. (A
        second context would have its own copy of the VTK render engine, and switching the renderer between
        two contexts costs 1-3 s per switch.)
        """
        steps = self._check_steps(steps)
        trajectories = self.expert_trajectories
        context = self._context
        t_now = context.get_time()
        saved_discrete = context.get_discrete_state().Clone()
        saved_abstract = context.get_abstract_state().Clone()
        saved_prev = self._X_BE_period_before
        out: list[SimObservation] = []
        t0 = self._t0 + (t_now - self._t0 - self.expert_time())  # trajectory time expert_time() now
        try:
            install(self._station, trajectories, context, t0=t0)
            X_prev = self._observe_state(context)[0]
            for k in range(1, steps + 1):
                self._advance(self._simulator, context, t_now + k / self.config.fps)
                out.append(self._observe(context, X_prev))
                X_prev = out[-1].state.X_BE
        finally:
            context.SetTime(t_now)
            context.get_mutable_discrete_state().SetFrom(saved_discrete)
            context.get_mutable_abstract_state().SetFrom(saved_abstract)
            for name, fn in self._commands.items():
                self._station.arm(name).targets.set_plan(fn)
            context.SetTime(t_now)  # drop target outputs cached with the expert's plans
            self._simulator.Initialize()
            self._X_BE_period_before = saved_prev
        return out

    # ------------------------------------------------------------------------------------- helpers

    def _expert_cache(self) -> tuple[DemoPlan, dict[str, ArmTrajectory]]:
        if self._expert is None:
            start = _time.perf_counter()
            try:
                plant, settled = self._station.plant, self._station.plant.GetMyContextFromRoot(self._settled)
                demo = self._task.plan(self._station, settled)
                trajectories = {}
                for arm in self._station.arms:
                    waypoints = demo.waypoints.get(arm.name, [])
                    if waypoints:
                        q0 = plant.GetPositions(settled, arm.instance)[:7]
                        trajectories[arm.name] = plan_arm_trajectory(
                            self.executor.kinematics[arm.name], q0, MAX_FINGER_WIDTH, waypoints)
            except PlanningError as exc:
                raise PlanningError(f"the scripted expert of {self._task.name} (trial seed {self.config.seed}) "
                                    f"cannot plan: {exc}") from exc
            finally:
                self.timings["plan"] += _time.perf_counter() - start
            self._expert = (demo, trajectories)
        return self._expert

    def _observe_state(self, context) -> tuple[np.ndarray, np.ndarray]:
        """(X_BE (A, 4, 4) measured TCP poses in B, finger openings (A,) metres) in `context`."""
        X_WE, widths = measured_state(self._station, self._station.plant.GetMyContextFromRoot(context))
        return invert_pose(self.X_WB) @ X_WE, widths

    def _observe(self, context, X_BE_prev: np.ndarray | None) -> SimObservation:
        start = _time.perf_counter()
        frames = [self._station.render(context, name) for name in self._sensors]
        self.timings["render"] += _time.perf_counter() - start
        X_BE, widths = self._observe_state(context)
        state = RobotState(X_BE=X_BE, gripper_closed=widths < GRIPPER_CLOSED_BELOW, arms=self.arms,
                           X_BE_prev=X_BE_prev, gripper_width=widths.astype(np.float64))
        obs = [Observation(f.color, f.depth, np.array(cam.K)) for f, cam in zip(frames, self._cameras)]
        return SimObservation(obs[0], obs[1], frames[0].label, frames[1].label, state, context.get_time() - self._t0)

    def _advance_to(self, t: float) -> None:
        """Advance the trial to time `t`, measuring the TCP poses one control period before it (the
        `X_BE_prev` of an observation at `t`: the robot's current motion)."""
        period = 1.0 / self.config.fps
        if t - period > self._context.get_time() + 1e-9:
            self._advance(self._simulator, self._context, t - period)
        if t - period >= self._context.get_time() - 1e-9:
            self._X_BE_period_before = (t, self._observe_state(self._context)[0])
        self._advance(self._simulator, self._context, t)

    def _advance(self, simulator: Simulator, context, t: float) -> None:
        start = _time.perf_counter()
        if t > context.get_time():
            simulator.AdvanceTo(t)
        self.timings["simulate"] += _time.perf_counter() - start

    @staticmethod
    def _check_steps(steps: int) -> int:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps must be an int >= 0 (control periods), got {steps!r}")
        return int(steps)


def _distinct(pairs: list[tuple[CameraSpec, CameraSpec]]) -> list[CameraSpec]:
    """The cameras of `pairs`, each once, in order of first appearance."""
    return list({c.name: c for pair in pairs for c in pair}.values())
