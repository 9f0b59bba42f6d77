"""The extraction evaluation: depth corruption, and continuous vs planning-cycle (chunked) extraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import geo4d_core.action.evaluation as evaluation
from geo4d_core.action.evaluation import DepthCorruption, corrupt_depth, cycle_windows, evaluate_episode
from geo4d_core.action.extraction import ExtractionConfig, ExtractionResult
from geo4d_core.action.hand import X_GE
from geo4d_core.action.icp_tracker import IcpTrackerConfig
from geo4d_core.action.render import HAND_LABEL
from geo4d_core.geometry.poses import invert_pose, make_pose, translation_distance

from .test_icp_tracker import R_DOWN, cameras, trajectory  # noqa: F401 - fixture reuse


def test_noise_and_holes_have_the_requested_statistics():
    rng = np.random.default_rng(0)
    depth = np.full((4, 256, 320), 0.8, np.float32)
    depth[:, :10] = 0.0  # already invalid pixels stay invalid
    noisy = corrupt_depth(depth, DepthCorruption(noise_std=0.003), rng)
    valid = depth > 0
    assert abs(np.std(noisy[valid] - depth[valid]) - 0.003) < 2e-4
    assert np.all(noisy[~valid] == 0)
    holed = corrupt_depth(depth, DepthCorruption(hole_fraction=0.1, hole_size=8), rng)
    removed = np.mean(holed[valid] == 0)
    assert 0.08 < removed < 0.12
    # holes come in 8 x 8 blocks
    block = (holed[0, 16:24, 0:8] == 0)
    assert block.all() or not block.any()
    assert np.array_equal(corrupt_depth(depth, DepthCorruption(), rng), depth)


# ---------------------------------------------------------------------------------------------- planning cycles
@dataclass
class _Camera:
    K: np.ndarray
    X_WC: np.ndarray


@dataclass
class _Metadata:
    label_parts: dict


class FakeReader:
    """The part of EpisodeReader that evaluate_episode uses, from arrays (one arm)."""

    def __init__(self, depth: dict, labels: dict, K: np.ndarray, X_WC: dict, X_WE: np.ndarray, width: np.ndarray):
        self._depth, self._labels = depth, labels
        self.cameras = {c: _Camera(K, X_WC[c]) for c in depth}
        self.metadata = _Metadata({"hand": [HAND_LABEL]})
        self.X_WE, self.gripper_width = X_WE, width  # (T, 1, 4, 4), (T, 1)
        self.num_frames = len(X_WE)
        self.path = Path("fake_episode.zarr")

    def depth(self, cam, steps):
        return self._depth[cam][steps]

    def label(self, cam, t):
        return self._labels[cam][t]


def _moving_reader(T=23):
    """Hand moving 1 cm per step along x; depth of frame t is 1 + 0.01 t (so a frame can be recognised)."""
    H, W = 6, 8
    K = np.array([[10.0, 0, 3.5], [0, 10.0, 2.5], [0, 0, 1]])
    depth = (1.0 + 0.01 * np.arange(T, dtype=np.float32))[:, None, None] * np.ones((T, H, W), np.float32)
    labels = np.zeros((T, H, W), np.int32)
    labels[:, 2:4, 3:5] = HAND_LABEL
    X_WE = np.stack([make_pose(R_DOWN, [0.4 + 0.01 * t, 0.0, 0.3]) for t in range(T)])[:, None]
    width = np.where(np.arange(T) < T // 2, 0.08, 0.01)[:, None]
    X_WC = {"n": make_pose(np.eye(3), [0.0, 0.0, -1.0]), "m": make_pose(np.eye(3), [0.1, 0.0, -1.0])}
    return FakeReader({"n": depth, "m": depth.copy()}, {"n": labels, "m": labels.copy()}, K, X_WC, X_WE, width)


@pytest.fixture
def spy(monkeypatch):
    """Replaces extract_trajectory by a 'tracker' that never moves the hand from its registration guess and
    records what every call got."""
    calls = []

    def fake_extract(condition, views, config=None, *, hand_model=None, **kwargs):
        (arm,) = condition.hand_masks
        T = next(iter(views.values())).points_C.shape[0]
        prev = None if condition.X_CG_prev is None else condition.X_CG_prev[arm].copy()
        closed = None if condition.gripper_closed is None else condition.gripper_closed[arm]
        calls.append(dict(init=condition.X_CG_init[arm].copy(), prev=prev, closed=closed, cond_z=float(condition.points_C[..., 2].max()),
                          view_z={v: s.points_C[..., 2].max(axis=(1, 2)) for v, s in views.items()}, T=T,
                          mask=condition.hand_masks[arm].copy()))
        X_CG = np.tile(condition.X_CG_init[arm], (T, 1, 1, 1))
        return ExtractionResult(
            arms=(arm,), X_CE=X_CG @ X_GE, X_CG=X_CG, confidence=np.full((T, 1), 0.5),
            source_view=np.full((T, 1), "n", dtype="<U1"), gripper_closed=np.zeros((T, 1), bool),
            finger_distance=np.full((T, 1), np.nan), per_view_confidence={}, per_view_X_CG={},
            register_confidence=np.array([0.9]))

    monkeypatch.setattr(evaluation, "extract_trajectory", fake_extract)
    return calls


def test_cycle_windows_cover_every_step_once():
    assert cycle_windows(5, None) == [(0, 4)]
    assert cycle_windows(23, 10) == [(0, 10), (10, 20), (20, 22)]
    assert cycle_windows(21, 10) == [(0, 10), (10, 20)]
    assert cycle_windows(3, 1) == [(0, 1), (1, 2)]
    for T, h in [(111, 10), (136, 10), (7, 3), (2, 10)]:
        tracked = [k for s, e in cycle_windows(T, h) for k in range(s + 1, e + 1)]
        assert tracked == list(range(1, T))
    with pytest.raises(ValueError, match="chunk"):
        cycle_windows(10, 0)
    with pytest.raises(ValueError, match="at least 2 steps"):
        cycle_windows(1, 10)


def test_each_cycle_registers_on_its_start_frame_with_that_frames_pose(spy):
    reader = _moving_reader(T=23)
    cfg = ExtractionConfig(views=("n", "m"))
    summary, raw = evaluate_episode(reader, "n", "m", config=cfg, chunk=10, hand_model=object())
    # three cycles: register on frames 0, 10, 20 and track 10, 10 and 2 frames
    assert [c["T"] for c in spy] == [10, 10, 2]
    X_CnW = invert_pose(reader.cameras["n"].X_WC)
    for c, start in zip(spy, [0, 10, 20]):
        assert np.allclose(c["init"], X_CnW @ reader.X_WE[start, 0] @ invert_pose(X_GE))
        assert c["cond_z"] == pytest.approx(1.0 + 0.01 * start)  # condition = view n's frame `start`
        for v in ("n", "m"):  # tracked frames = start+1 .. start+T of both views
            assert np.allclose(c["view_z"][v], 1.0 + 0.01 * np.arange(start + 1, start + 1 + c["T"]))
        assert c["mask"].sum() == 4
        # the robot's previous pose (its current motion) goes with every cycle but the first (none before t0)
        if start == 0:
            assert c["prev"] is None
        else:
            assert np.allclose(c["prev"], X_CnW @ reader.X_WE[start - 1, 0] @ invert_pose(X_GE))
        # and the gripper's recorded state at the cycle's start (closed from frame 11 on)
        assert c["closed"] is (start >= 11)
    # the frozen 'tracker' is off by (k - start) cm at step k: 0 at no step, 1..10 cm within each cycle
    expect = np.concatenate([np.arange(1, 11), np.arange(1, 11), np.arange(1, 3)]) * 0.01
    assert raw["translation_error"] == pytest.approx(expect, abs=1e-9)
    assert list(raw["cycle_start"]) == [0] * 10 + [10] * 10 + [20] * 2
    assert list(raw["steps"]) == list(range(1, 23))
    assert raw["X_WE_est"].shape == raw["X_WE_true"].shape == (22, 1, 4, 4)
    assert raw["closed_est"].shape == raw["closed_true"].shape == (22, 1)
    assert raw["register_confidence"].shape == (3, 1)
    assert summary.steps == 22 and summary.chunk == 10 and summary.cycles == 3
    assert summary.median_translation_m == pytest.approx(np.median(expect))
    assert summary.p90_translation_m == pytest.approx(np.percentile(expect, 90))
    assert summary.median_rotation_deg == pytest.approx(0.0, abs=1e-6)
    # truth: open for frames < 11, closed after; the fake always says open
    assert summary.gripper_accuracy == pytest.approx(10 / 22)
    assert summary.mean_confidence == pytest.approx(0.5) and summary.register_confidence == pytest.approx(0.9)
    assert summary.as_dict()["chunk"] == 10


def test_continuous_mode_is_one_window_over_the_same_steps(spy):
    reader = _moving_reader(T=23)
    summary, raw = evaluate_episode(reader, "n", "m", config=ExtractionConfig(views=("n",)), hand_model=object())
    assert len(spy) == 1 and spy[0]["T"] == 22 and set(spy[0]["view_z"]) == {"n"}
    assert summary.chunk is None and summary.cycles == 1 and summary.steps == 22
    assert raw["translation_error"] == pytest.approx(0.01 * np.arange(1, 23), abs=1e-9)
    spy.clear()
    chunked, raw_c = evaluate_episode(reader, "n", "m", config=ExtractionConfig(views=("n",)), hand_model=object(),
                                      chunk=4, t0=3, stride=2)
    # stride 2 from frame 3: steps 3, 5, ..., 21 (10 steps); cycles register on steps 3, 11, 19
    assert [c["cond_z"] for c in spy] == pytest.approx([1.03, 1.11, 1.19])
    assert list(raw_c["steps"]) == list(range(5, 23, 2)) and chunked.steps == 9 and chunked.cycles == 3
    # the previous pose is one stride earlier, also before t0 when that frame exists
    X_CnW = invert_pose(reader.cameras["n"].X_WC)
    for c, start in zip(spy, [3, 11, 19]):
        assert np.allclose(c["prev"], X_CnW @ reader.X_WE[start - 2, 0] @ invert_pose(X_GE))
    spy.clear()
    evaluate_episode(reader, "n", "m", config=ExtractionConfig(views=("n",)), hand_model=object(), chunk=4,
                     robot_state=False)
    assert all(c["prev"] is None and c["closed"] is None for c in spy) and len(spy) == 6
    with pytest.raises(ValueError, match="chunk"):
        evaluate_episode(reader, "n", "m", hand_model=object(), chunk=0)


def _jump_reader(hand_scene, cameras, T=9, jump_at=4):  # noqa: F811
    """Ray-cast hand on the smooth test trajectory, displaced by 12 cm from frame `jump_at` on (faster than
    the tracker may follow in one step)."""
    X_WC = cameras["n"]
    X_CW = invert_pose(X_WC)
    shift = make_pose(np.eye(3), [0.0, 0.12, 0.0])
    X_WG = [X if t < jump_at else shift @ X for t, X in enumerate(trajectory(24)[:T])]
    depth, labels = [], []
    for X in X_WG:
        pts, valid, lab = hand_scene.render(X_CW @ X, 0.08)
        depth.append(np.where(valid, pts[..., 2], 0.0).astype(np.float32))
        labels.append(lab)
    depth, labels = np.stack(depth), np.stack(labels)
    X_WE = np.stack([X @ X_GE for X in X_WG])[:, None]
    return FakeReader({"n": depth, "m": depth}, {"n": labels, "m": labels}, hand_scene.K,
                      {"n": X_WC, "m": X_WC}, X_WE, np.full((T, 1), 0.08))


def test_cycles_recover_a_hand_that_continuous_tracking_loses(hand_scene, hand_model, cameras):  # noqa: F811
    reader = _jump_reader(hand_scene, cameras, T=9, jump_at=4)
    # one frame's step limits only (no re-acquisition after missed frames), see the end of the test
    cfg = ExtractionConfig(views=("n",), icp=IcpTrackerConfig(max_gap_frames=1))
    cont, raw_cont = evaluate_episode(reader, "n", "m", config=cfg, hand_model=hand_model)
    chunked, raw = evaluate_episode(reader, "n", "m", config=cfg, hand_model=hand_model, chunk=4)
    assert cont.steps == chunked.steps == 8 and chunked.cycles == 2 and cont.cycles == 1
    # continuous: lost from the jump (step 4) on; cycles: only step 4 (tracked from frame 0's cycle) is wrong
    lost = raw_cont["translation_error"] > 0.05
    assert list(lost) == [False] * 3 + [True] * 5
    err = raw["translation_error"]
    assert err[3] > 0.05
    assert np.all(np.delete(err, 3) < 0.005), err
    assert cont.median_translation_m > 0.05 and chunked.median_translation_m < 0.005
    assert chunked.gripper_accuracy == 1.0
    # the second cycle registered with frame 4's recorded pose: its registration fits the jumped hand
    assert raw["register_confidence"].shape == (2, 1) and raw["register_confidence"].min() > 0.6
    assert np.allclose(translation_distance(raw["X_WE_est"][4:, 0], raw["X_WE_true"][4:, 0]), err[4:])
    # with the default limits, growing after a missed frame, continuous tracking finds the hand again
    _, raw_default = evaluate_episode(reader, "n", "m", config=ExtractionConfig(views=("n",)), hand_model=hand_model)
    err_default = raw_default["translation_error"]
    assert err_default[3] > 0.05 and np.all(err_default[-3:] < 0.005), err_default
