"""Tests for geo4d_core.action.foundationpose against small fakes of FoundationPose, nvdiffrast and trimesh.

FoundationPose cannot be installed here (CUDA build, weights from the internet, DESIGN.md §6), so the
fakes below mirror the documented signatures of `estimater.FoundationPose` (constructor, `register`,
`track_one`), `ScorePredictor`, `PoseRefinePredictor`, `nvdiffrast.torch.RasterizeCudaContext` and
`trimesh.load`, record what they receive and return poses chosen by the test.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geo4d_core.action.foundationpose import FoundationPoseConfig, FoundationPoseTracker
from geo4d_core.action.tracking import PoseTracker, TrackerUnavailableError, TrackingLostError
from geo4d_core.geometry import make_pose, splat_to_depth, transform_points

H, W = 48, 64
K = np.array([[120.0, 0.0, 31.5], [0.0, 120.0, 23.5], [0.0, 0.0, 1.0]])
X_TRUE = make_pose(Rotation.from_rotvec([0.4, -0.3, 0.2]).as_matrix(), np.array([0.01, -0.02, 0.5]))
X_WRONG = make_pose(Rotation.from_rotvec([0.4, -0.3, 0.2]).as_matrix(), np.array([0.07, -0.02, 0.56]))


def _box_surface_points(size=(0.08, 0.03, 0.06), step=0.003) -> np.ndarray:
    """(N, 3) points on the faces of a box centred at the origin of G, metres (the fake gripper mesh)."""
    half = np.asarray(size) / 2
    faces = []
    for axis in range(3):
        a, b = [k for k in range(3) if k != axis]
        ua = np.arange(-half[a], half[a] + 1e-9, step)
        ub = np.arange(-half[b], half[b] + 1e-9, step)
        ga, gb = np.meshgrid(ua, ub)
        for sign in (-1.0, 1.0):
            p = np.zeros(ga.shape + (3,))
            p[..., a], p[..., b], p[..., axis] = ga, gb, sign * half[axis]
            faces.append(p.reshape(-1, 3))
    return np.concatenate(faces)


MESH_VERTICES = _box_surface_points()


# ---------------------------------------------------------------------------------------------- fakes

class FakeMesh:
    def __init__(self, vertices: np.ndarray):
        self.vertices = vertices
        self.vertex_normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)


class FakeScorePredictor:
    def __init__(self):
        pass


class FakePoseRefinePredictor:
    def __init__(self):
        pass


class FakeRasterizeCudaContext:
    def __init__(self, device=None):
        self.device = device


class FakeFoundationPose:
    """Same call signatures as estimater.FoundationPose; returns the poses queued in `register_pose` / `track_poses`."""

    instances: list["FakeFoundationPose"] = []
    register_pose: object = X_TRUE
    track_poses: list = []

    def __init__(self, model_pts, model_normals, symmetry_tfs=None, mesh=None, scorer=None, refiner=None,
                 glctx=None, debug=0, debug_dir="/tmp/debug"):
        self.init_kwargs = dict(model_pts=model_pts, model_normals=model_normals, symmetry_tfs=symmetry_tfs,
                                mesh=mesh, scorer=scorer, refiner=refiner, glctx=glctx, debug=debug,
                                debug_dir=debug_dir)
        self.debug_dir_existed = debug_dir is not None and Path(debug_dir).is_dir()
        self.register_calls: list[dict] = []
        self.track_calls: list[dict] = []
        self.pose_last = None
        FakeFoundationPose.instances.append(self)

    def register(self, K, rgb, depth, ob_mask, ob_id=None, glctx=None, iteration=5):
        self.register_calls.append(dict(K=K, rgb=rgb, depth=depth, ob_mask=ob_mask, iteration=iteration))
        self.pose_last = self.register_pose
        return self.register_pose

    def track_one(self, rgb, depth, K, iteration, extra={}):  # noqa: B006 - mirrors the real signature
        if self.pose_last is None:
            raise RuntimeError("Please init pose by register first")
        self.track_calls.append(dict(K=K, rgb=rgb, depth=depth, iteration=iteration))
        self.pose_last = self.track_poses.pop(0)
        return self.pose_last


@pytest.fixture
def fakes(monkeypatch):
    """Install fake estimater / nvdiffrast / trimesh modules and pretend CUDA is present."""
    loaded: list[str] = []

    def load(path):
        loaded.append(path)
        return FakeMesh(MESH_VERTICES)

    estimater = types.ModuleType("estimater")
    estimater.FoundationPose = FakeFoundationPose
    estimater.ScorePredictor = FakeScorePredictor
    estimater.PoseRefinePredictor = FakePoseRefinePredictor
    nvdiffrast = types.ModuleType("nvdiffrast")
    nvdiffrast_torch = types.ModuleType("nvdiffrast.torch")
    nvdiffrast_torch.RasterizeCudaContext = FakeRasterizeCudaContext
    nvdiffrast.torch = nvdiffrast_torch
    trimesh = types.ModuleType("trimesh")
    trimesh.load = load
    for name, module in (("estimater", estimater), ("nvdiffrast", nvdiffrast),
                         ("nvdiffrast.torch", nvdiffrast_torch), ("trimesh", trimesh)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(FakeFoundationPose, "instances", [])
    monkeypatch.setattr(FakeFoundationPose, "register_pose", X_TRUE)
    monkeypatch.setattr(FakeFoundationPose, "track_poses", [])
    return types.SimpleNamespace(loaded=loaded)


@pytest.fixture
def mesh_file(tmp_path) -> str:
    path = tmp_path / "panda_hand.obj"
    path.write_text("# fake mesh; the fake trimesh.load does not read it\n")
    return str(path)


def _frame(X_CG: np.ndarray, seed: int = 0):
    """Synthetic RGB-D frame: the fake mesh at X_CG in front of a wall at 0.9 m, with 1 mm depth noise."""
    rng = np.random.default_rng(seed)
    obj = splat_to_depth(transform_points(X_CG, MESH_VERTICES), K, H, W)
    depth = np.where(obj > 0, obj, 0.9) + rng.normal(0.0, 0.001, (H, W))
    depth = depth.astype(np.float32)
    rgb = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    mask = (obj > 0).astype(np.uint8)
    return rgb, depth, mask


# ---------------------------------------------------------------------------------------------- tests

def test_adapter_passes_arguments_and_returns_the_fake_poses_with_depth_scores(fakes, mesh_file):
    cfg = FoundationPoseConfig(mesh_path=mesh_file, est_refine_iter=7, track_refine_iter=3)
    tracker = FoundationPoseTracker(cfg)
    assert isinstance(tracker, PoseTracker)
    assert fakes.loaded == [mesh_file]
    (est,) = FakeFoundationPose.instances
    kw = est.init_kwargs
    np.testing.assert_array_equal(kw["model_pts"], MESH_VERTICES)
    np.testing.assert_array_equal(kw["model_normals"], kw["mesh"].vertex_normals)
    assert isinstance(kw["mesh"], FakeMesh)
    assert isinstance(kw["scorer"], FakeScorePredictor) and isinstance(kw["refiner"], FakePoseRefinePredictor)
    assert isinstance(kw["glctx"], FakeRasterizeCudaContext)
    assert kw["debug"] == 0 and est.debug_dir_existed  # a private temporary folder

    rgb, depth, mask = _frame(X_TRUE)
    result = tracker.register(rgb, depth, K, mask)
    (call,) = est.register_calls
    assert call["iteration"] == 7
    np.testing.assert_array_equal(call["K"], K)
    np.testing.assert_array_equal(call["rgb"], rgb)
    np.testing.assert_array_equal(call["depth"], depth)
    assert call["ob_mask"].dtype == bool
    np.testing.assert_array_equal(call["ob_mask"], mask.astype(bool))
    np.testing.assert_allclose(result.X_CG, X_TRUE, atol=1e-12)
    assert result.score > 0.95

    # track_one: the fake returns a pose 6 cm off; the depth still shows the gripper at X_TRUE.
    FakeFoundationPose.track_poses = [torch.tensor(X_WRONG, dtype=torch.float32), X_TRUE]
    rgb2, depth2, _ = _frame(X_TRUE, seed=1)
    off = tracker.track(rgb2, depth2, K)
    (tcall,) = est.track_calls
    assert tcall["iteration"] == 3
    np.testing.assert_array_equal(tcall["K"], K)
    np.testing.assert_array_equal(tcall["rgb"], rgb2)
    np.testing.assert_array_equal(tcall["depth"], depth2)
    np.testing.assert_allclose(off.X_CG, X_WRONG, atol=1e-6)  # torch float32 converted to numpy
    assert off.score < 0.1
    on = tracker.track(rgb2, depth2, K)
    np.testing.assert_allclose(on.X_CG, X_TRUE, atol=1e-12)
    assert on.score > 0.95
    # The score follows the configured tolerance: 0.5 mm is tighter than the 1 mm depth noise.
    strict = FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file, score_tolerance=0.0005))
    assert strict.register(rgb, depth, K, mask).score < 0.6


def test_debug_dir_is_passed_through(fakes, mesh_file, tmp_path):
    FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file, debug_dir=str(tmp_path / "dbg")))
    kw = FakeFoundationPose.instances[-1].init_kwargs
    assert kw["debug_dir"] == str(tmp_path / "dbg") and kw["debug"] == 1


def test_track_before_register_and_after_reset_raises(fakes, mesh_file):
    tracker = FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file))
    rgb, depth, mask = _frame(X_TRUE)
    with pytest.raises(TrackingLostError, match="before a successful register"):
        tracker.track(rgb, depth, K)
    assert FakeFoundationPose.instances[-1].track_calls == []
    tracker.register(rgb, depth, K, mask)
    FakeFoundationPose.track_poses = [X_TRUE]
    tracker.track(rgb, depth, K)
    tracker.reset()
    with pytest.raises(TrackingLostError):
        tracker.track(rgb, depth, K)


def test_bad_pose_from_foundationpose_loses_the_track(fakes, mesh_file):
    tracker = FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file))
    rgb, depth, mask = _frame(X_TRUE)
    tracker.register(rgb, depth, K, mask)
    bad = X_TRUE.copy()
    bad[0, 3] = np.nan
    FakeFoundationPose.track_poses = [bad]
    with pytest.raises(TrackingLostError, match="non-finite or non-rigid"):
        tracker.track(rgb, depth, K)
    with pytest.raises(TrackingLostError, match="before a successful register"):
        tracker.track(rgb, depth, K)
    FakeFoundationPose.register_pose = 2.0 * X_TRUE
    with pytest.raises(TrackingLostError, match="register returned a non-finite or non-rigid"):
        tracker.register(rgb, depth, K, mask)


@pytest.mark.parametrize("missing", ["estimater", "nvdiffrast.torch", "trimesh"])
def test_missing_module_raises_tracker_unavailable(fakes, mesh_file, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(TrackerUnavailableError) as info:
        FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file))
    text = str(info.value)
    assert f"cannot import `{missing}`" in text
    for needed in ("NVlabs/FoundationPose", "PYTHONPATH", "weights", "nvdiffrast", "trimesh", "CUDA GPU",
                   "tracker: icp"):
        assert needed in text
    assert FakeFoundationPose.instances == []


def test_no_cuda_raises_when_required_and_is_allowed_otherwise(fakes, mesh_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrackerUnavailableError, match=r"torch.cuda.is_available\(\) is False.*tracker: icp"):
        FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file))
    tracker = FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file, require_cuda=False))
    rgb, depth, mask = _frame(X_TRUE)
    np.testing.assert_allclose(tracker.register(rgb, depth, K, mask).X_CG, X_TRUE)


def test_bad_inputs_and_config(fakes, mesh_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="mesh not found"):
        FoundationPoseTracker(FoundationPoseConfig(mesh_path=str(tmp_path / "nope.obj")))
    tracker = FoundationPoseTracker(FoundationPoseConfig(mesh_path=mesh_file))
    rgb, depth, mask = _frame(X_TRUE)
    with pytest.raises(ValueError, match="mask must have the depth image's shape"):
        tracker.register(rgb, depth, K, mask[:-1])
    with pytest.raises(ValueError, match="mask is empty"):
        tracker.register(rgb, depth, K, np.zeros_like(mask))
    with pytest.raises(ValueError, match="rgb must be a uint8"):
        tracker.register(rgb.astype(np.float32), depth, K, mask)
    with pytest.raises(ValueError, match="depth must be a float"):
        tracker.register(rgb, (depth * 1000).astype(np.uint16), K, mask)
    with pytest.raises(ValueError, match=r"K must be a finite \(3, 3\)"):
        tracker.register(rgb, depth, K[:2], mask)
    assert FakeFoundationPose.instances[-1].register_calls == []
    with pytest.raises(ValueError, match="est_refine_iter must be an integer >= 1"):
        FoundationPoseConfig(mesh_path=mesh_file, est_refine_iter=0)
    with pytest.raises(ValueError, match="score_tolerance"):
        FoundationPoseConfig(mesh_path=mesh_file, score_tolerance=-1.0)
    cfg = FoundationPoseConfig.from_dict({"mesh_path": mesh_file, "track_refine_iter": 4})
    assert cfg.track_refine_iter == 4 and FoundationPoseConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        FoundationPoseConfig.from_dict({"mesh_path": mesh_file, "iterations": 3})
    with pytest.raises(ValueError, match="mesh_path is required"):
        FoundationPoseConfig.from_dict({})


def test_check_available_names_what_is_missing_without_building_the_networks(fakes, mesh_file, monkeypatch):
    FoundationPoseTracker.check_available(FoundationPoseConfig(mesh_path=mesh_file))
    assert FakeFoundationPose.instances == []  # nothing built
    with pytest.raises(FileNotFoundError, match="mesh not found"):
        FoundationPoseTracker.check_available(FoundationPoseConfig(mesh_path=mesh_file + ".missing"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrackerUnavailableError, match="no CUDA GPU"):
        FoundationPoseTracker.check_available(FoundationPoseConfig(mesh_path=mesh_file))
