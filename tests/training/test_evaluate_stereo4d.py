"""Held-out-view evaluation (`training/evaluation.py`, `training/evaluate_stereo4d.py`).

Predictors stand in for the world model: an *oracle* looks the condition frame up in the episode and
returns the recorded future (its ground truth is computed here with plain numpy / cv2, independently
of the module under test), optionally corrupted (depth scaled, view m left in its own frame). A real
tiny `WorldModel` checkpoint runs through the command line once.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from geo4d_core.data.episode import EpisodeReader
from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode
from geo4d_core.model import WorldModel, WorldModelConfig
from training.evaluate_stereo4d import main
from training.evaluation import (
    METRICS,
    EvaluationResult,
    evaluate_world_model,
    format_table,
    plan_samples,
)

REPO = Path(__file__).resolve().parents[2]
EPISODE_HW = (96, 128)  # recorded image size of the synthetic episodes
NUM_FRAMES = 12  # frames per episode: enough for the tiny model's horizon of 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two synthetic episodes with three test cameras each (cam01..cam03) and a 'gripper' label part."""
    root = tmp_path_factory.mktemp("stereo4d_eval") / "data"
    for seed in (0, 1):
        cfg = SyntheticEpisodeConfig(height=EPISODE_HW[0], width=EPISODE_HW[1], num_frames=NUM_FRAMES,
                                     num_cameras=4, num_test_cameras=3, seed=seed)
        make_synthetic_episode(cfg).write(root / f"episode_{seed:06d}.zarr")
    return root


def episodes(root: Path) -> list[Path]:
    return sorted(root.glob("episode_*.zarr"))


def _key(rgb: np.ndarray, depth: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes() + np.ascontiguousarray(depth).tobytes()).digest()


def _lift(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(h, H, W) metres -> (h, H, W, 3) camera-frame points, written out with numpy only."""
    H, W = depth.shape[-2:]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([depth * x, depth * y, depth], axis=-1).astype(np.float32)


class Oracle:
    """Returns the recorded frames t+1..t+h of both views, resized to (height, width).

    depth_scale multiplies both predicted pointmaps (so their z); m_frame="m" returns view m's points
    in camera m's own frame instead of camera n's (the mistake the m metrics must catch).
    """

    def __init__(self, paths, *, horizon=4, height=EPISODE_HW[0], width=EPISODE_HW[1], depth_scale=1.0,
                 m_frame="n", use_pointmaps=True):
        self.config = SimpleNamespace(horizon=horizon, height=height, width=width, use_pointmaps=use_pointmaps)
        self.depth_scale, self.m_frame = depth_scale, m_frame
        self.index = {}
        self.calls = []
        for path in paths:
            reader = EpisodeReader(path)
            for cam in reader.camera_names:
                frames = slice(0, reader.num_frames)
                rgb, depth = reader.color(cam, frames), reader.depth(cam, frames)
                for t in range(reader.num_frames):
                    self.index[_key(rgb[t], depth[t])] = (reader, cam, t)

    def _future(self, reader, cam, t):
        H, W = self.config.height, self.config.width
        h0, w0 = reader.cameras[cam].height, reader.cameras[cam].width
        frames = range(t + 1, t + 1 + self.config.horizon)
        rgb = np.stack([cv2.resize(reader.color(cam, k), (W, H), interpolation=cv2.INTER_AREA) for k in frames])
        depth = np.stack([cv2.resize(reader.depth(cam, k), (W, H), interpolation=cv2.INTER_NEAREST) for k in frames])
        K = reader.cameras[cam].K.copy()
        sx, sy = W / w0, H / h0
        K[0] *= sx
        K[1] *= sy
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
        return rgb, depth, K

    def predict(self, obs_n, obs_m, steps=None, seed=0):
        reader, cam_n, t = self.index[_key(obs_n.rgb, obs_n.depth)]
        reader_m, cam_m, t_m = self.index[_key(obs_m.rgb, obs_m.depth)]
        assert reader_m is reader and t_m == t and cam_m != cam_n
        self.calls.append((reader.path.name, cam_n, cam_m, t, seed))
        rgb_n, depth_n, K_n = self._future(reader, cam_n, t)
        rgb_m, depth_m, K_m = self._future(reader, cam_m, t)
        points_n = _lift(depth_n, K_n)
        points_m = _lift(depth_m, K_m)  # camera m's frame
        if self.m_frame == "n":
            X_CnCm = np.linalg.inv(reader.cameras[cam_n].X_WC) @ reader.cameras[cam_m].X_WC
            points_m = (points_m @ X_CnCm[:3, :3].T + X_CnCm[:3, 3]).astype(np.float32)
        valid_n, valid_m = depth_n > 0, depth_m > 0
        s = np.float32(self.depth_scale)
        return SimpleNamespace(rgb_n=rgb_n, rgb_m=rgb_m, points_n=points_n * s, points_m_in_n=points_m * s,
                               valid_n=valid_n, valid_m=valid_m, K_n=K_n, K_m=K_m)



def run(oracle, paths, **kw) -> EvaluationResult:
    kw = {"pairs_per_episode": 2, "times_per_pair": 2, "steps": 1, "seed": 0, "progress": False, **kw}
    return evaluate_world_model(oracle, paths, **kw)


@pytest.mark.parametrize("hw,min_miou", [(EPISODE_HW, 0.88), ((48, 64), 0.8)], ids=["native", "half"])
def test_oracle_scores_perfect_depth_and_rgb(dataset, hw, min_miou):
    """The recorded future scores AbsRel 0, δ1 1, PSNR +inf, also after resizing to another resolution.

    Its mIoU is high but not 1: the synthetic gripper is only ~10-20 px wide, and a bounding box built
    from view n's *pixel samples* of the gripper surface, projected and rounded into view m, differs by
    about a pixel per side from view m's own silhouette box (plus parts visible in one view only), which
    costs ~5-10 % IoU at 96x128 and more at 48x64.
    """
    oracle = Oracle(episodes(dataset), height=hw[0], width=hw[1])
    result = run(oracle, episodes(dataset))
    assert result.num_samples == 8  # 2 episodes x 2 pairs x 2 times
    s = result.summary()
    assert all(s[k].count == 8 for k in METRICS)
    assert s["abs_rel_n"].mean == pytest.approx(0.0, abs=1e-6)
    assert s["abs_rel_m"].mean == pytest.approx(0.0, abs=1e-6)  # float32 rounding of the transform only
    assert s["delta1_n"].mean == 1.0 and s["delta1_m"].mean == 1.0
    assert s["psnr_n"].mean == math.inf and s["psnr_m"].mean == math.inf
    assert min_miou < s["miou"].mean <= 1.0
    # The evaluation called predict on the planned samples, with their seeds, on test cameras only.
    assert oracle.calls == [(r.sample.episode, r.sample.view_n, r.sample.view_m, r.sample.t, r.sample.seed)
                            for r in result.records]
    assert {c for _, n, m, _, _ in oracle.calls for c in (n, m)} <= {"cam01", "cam02", "cam03"}
    # JSON form: +inf PSNR and the std of +inf values are not JSON numbers -> None.
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert d["metrics"]["psnr_n"] == {"mean": None, "std": None, "count": 8}
    assert d["metrics"]["delta1_m"]["mean"] == 1.0 and len(d["samples"]) == 8
    assert "| inf | inf | 8 |" in format_table({"oracle": result})


def test_mious_of_opposite_directions_agree_for_the_truth(dataset):
    """miou of pair (n, m) projects n's points into m; miou_m_to_n of pair (m, n) does the same with the
    exact truth, so over all 6 ordered pairs the two lists are the same numbers."""
    paths = episodes(dataset)[:1]
    result = run(Oracle(paths), paths, pairs_per_episode=6, times_per_pair=1)
    by_pair = {(r.sample.view_n, r.sample.view_m): r.metrics for r in result.records}
    assert len(by_pair) == 6
    for (n, m), metrics in by_pair.items():
        assert metrics["miou"] == pytest.approx(by_pair[(m, n)]["miou_m_to_n"], abs=1e-9)


@pytest.mark.parametrize("scale,abs_rel,delta1", [(1.1, 0.1, 1.0), (1.5, 0.5, 0.0)])
def test_scaled_depth_gives_the_expected_abs_rel_and_delta1(dataset, scale, abs_rel, delta1):
    paths = episodes(dataset)[:1]
    result = run(Oracle(paths, depth_scale=scale), paths, pairs_per_episode=1)
    for key in ("n", "m"):
        assert result.mean(f"abs_rel_{key}") == pytest.approx(abs_rel, abs=1e-5)
        assert result.mean(f"delta1_{key}") == delta1  # 1.1 < 1.25 < 1.5
    assert result.mean("psnr_n") == math.inf  # RGB untouched
    exact = run(Oracle(paths), paths, pairs_per_episode=1)
    assert result.mean("miou") < exact.mean("miou")  # the gripper lands elsewhere in view m


def test_view_m_metrics_are_measured_in_camera_n(dataset):
    """View m's true points left in camera m's own frame score badly on the m metrics, not on n's."""
    paths = episodes(dataset)[:1]
    result = run(Oracle(paths, m_frame="m"), paths)
    assert result.mean("abs_rel_n") == pytest.approx(0.0, abs=1e-6) and result.mean("delta1_n") == 1.0
    # Both cameras sit on the same shell around the table, so z in camera m is of the same magnitude as
    # z in camera n: AbsRel-m is clearly > 0 (0.14 here) while δ1-m barely notices; the points land far
    # from view n's gripper, which the m -> n mIoU does notice.
    assert result.mean("abs_rel_m") > 0.05
    assert result.mean("miou_m_to_n") < 0.5 < result.mean("miou")


def test_rgb_only_models_report_no_geometry(dataset):
    paths = episodes(dataset)[:1]
    result = run(Oracle(paths, use_pointmaps=False), paths, pairs_per_episode=1, times_per_pair=1)
    s = result.summary()
    for key in ("abs_rel_n", "abs_rel_m", "delta1_n", "delta1_m", "miou", "miou_m_to_n"):
        assert s[key].mean is None and s[key].count == 0
        assert result.records[0].metrics[key] is None
    assert s["psnr_m"].mean == math.inf
    row = format_table({"rgb only": result}).splitlines()[2]
    assert row == "| rgb only | n/a | n/a | n/a | n/a | n/a | inf | inf | 1 |"


def test_format_table_has_the_paper_columns_one_row_per_model(dataset):
    paths = episodes(dataset)[:1]
    a = run(Oracle(paths, depth_scale=1.1), paths, pairs_per_episode=1, times_per_pair=1)
    b = run(Oracle(paths, depth_scale=1.5), paths, pairs_per_episode=1, times_per_pair=1)
    lines = format_table({"a": a, "b": b}).splitlines()
    assert lines[0] == ("| model | AbsRel-n ↓ | AbsRel-m ↓ | δ1-n ↑ | δ1-m ↑ | mIoU ↑ | PSNR-n ↑ | PSNR-m ↑ "
                        "| samples |")
    assert len(lines) == 4 and lines[2].startswith("| a | 0.100 | 0.100 | 1.000 | 1.000 |")
    assert lines[3].startswith("| b | 0.500 | 0.500 | 0.000 | 0.000 |")


def test_samples_are_deterministic_spread_and_reported_when_fewer(dataset):
    reader = EpisodeReader(episodes(dataset)[0])
    samples, notes = plan_samples(reader, horizon=4, pairs_per_episode=4, times_per_pair=3, seed=7)
    again, _ = plan_samples(reader, horizon=4, pairs_per_episode=4, times_per_pair=3, seed=7)
    assert samples == again and notes == []
    assert len(samples) == 12 and len({(s.view_n, s.view_m) for s in samples}) == 4
    assert all(s.view_n != s.view_m and {s.view_n, s.view_m} <= set(reader.test_cameras) for s in samples)
    assert sorted({s.t for s in samples}) == [0, 4, 7]  # evenly over [0, T-1-h] = [0, 7]
    other, _ = plan_samples(reader, horizon=4, pairs_per_episode=4, times_per_pair=3, seed=8)
    assert [s.seed for s in other] != [s.seed for s in samples]
    many, notes = plan_samples(reader, horizon=10, pairs_per_episode=9, times_per_pair=5, seed=0)
    assert len(many) == 6 * 2 and len(notes) == 2  # 6 ordered pairs of 3 cameras, times {0, 1}
    assert "fewer than the 9 asked" in notes[0] and "fewer than the 5 asked" in notes[1]
    with pytest.raises(ValueError, match="12 frames, but a horizon of 12 needs at least 13"):
        plan_samples(reader, horizon=12, pairs_per_episode=1, times_per_pair=1, seed=0)


@pytest.fixture(scope="module")
def odd_episodes(tmp_path_factory) -> dict[str, Path]:
    """Small episodes that cannot be evaluated as is: no test cameras, no gripper part, per-arm parts."""
    root = tmp_path_factory.mktemp("odd")
    cfg = dict(height=24, width=32, num_frames=6, num_cameras=3, seed=3)
    out = {"no_test": make_synthetic_episode(SyntheticEpisodeConfig(num_test_cameras=0, **cfg))
           .write(root / "no_test.zarr")}
    ep = make_synthetic_episode(SyntheticEpisodeConfig(num_test_cameras=2, **cfg))
    parts = dict(ep.label_parts)
    gripper = parts.pop("gripper")
    ep.label_parts = parts
    out["no_gripper"] = ep.write(root / "no_gripper.zarr")
    ep.label_parts = {**parts, "left/gripper": gripper[:1], "right/gripper": gripper[1:]}
    out["per_arm"] = ep.write(root / "per_arm.zarr")
    return out


def test_unusable_episodes_fail_clearly(odd_episodes):
    oracle = SimpleNamespace(config=SimpleNamespace(horizon=2, height=24, width=32), predict=None)
    with pytest.raises(ValueError, match=r"no_test\.zarr: needs at least 2 test cameras.*'cam00': 'train'"):
        evaluate_world_model(oracle, [odd_episodes["no_test"]], pairs_per_episode=1, times_per_pair=1, steps=1,
                             seed=0, progress=False)
    with pytest.raises(ValueError, match=r"no_gripper\.zarr: no 'gripper'.*label parts are"):
        evaluate_world_model(oracle, [odd_episodes["no_gripper"]], pairs_per_episode=1, times_per_pair=1,
                             steps=1, seed=0, progress=False)


def test_per_arm_gripper_parts_are_combined(odd_episodes):
    paths = [odd_episodes["per_arm"]]
    result = run(Oracle(paths, horizon=2, height=24, width=32), paths, pairs_per_episode=1, times_per_pair=1)
    assert result.mean("abs_rel_n") == pytest.approx(0.0, abs=1e-6)
    assert result.summary()["miou"].count in (0, 1)  # the gripper may be out of both 24x32 views


# ------------------------------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory) -> Path:
    path = WorldModel.from_config(WorldModelConfig.preset("tiny")).save_pretrained(
        tmp_path_factory.mktemp("ckpt") / "tiny")
    (path / "data_recipe.json").write_text(json.dumps({"heldout_episodes": ["episode_000001.zarr"]}))
    return path


def test_command_line_scores_a_tiny_world_model(dataset, checkpoint, tmp_path, capsys):
    out, md = tmp_path / "results.json", tmp_path / "table.md"
    rc = main(["--checkpoint", str(checkpoint), "--checkpoint", str(checkpoint), "--name", "tiny",
               "--name", "tiny again", "--data", str(dataset), "--pairs", "1", "--times", "1", "--steps", "2",
               "--out", str(out), "--markdown", str(md), "--no-progress"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert list(report["models"]) == ["tiny", "tiny again"]
    model = report["models"]["tiny"]
    assert model["episodes"] == ["episode_000001.zarr"]  # from data_recipe.json
    assert model["episodes_from"] == "data_recipe.json heldout_episodes"
    assert model["num_samples"] == 1 and model["settings"]["steps"] == 2 and model["settings"]["horizon"] == 10
    assert set(model["metrics"]) == set(METRICS)
    for key, summary in model["metrics"].items():
        assert summary["count"] == 1 and math.isfinite(summary["mean"]), key
    sample = model["samples"][0]
    assert {"episode", "view_n", "view_m", "t", "seed", "seconds", *METRICS} <= set(sample)
    assert sample["t"] == 0 and {sample["view_n"], sample["view_m"]} <= {"cam01", "cam02", "cam03"}
    assert report["models"]["tiny again"]["metrics"] == model["metrics"]  # same samples, same seeds
    table = md.read_text()
    assert table.splitlines()[0].startswith("| model | AbsRel-n ↓") and "| tiny again |" in table
    assert table in capsys.readouterr().out


def test_command_line_episodes_option_and_bad_input(dataset, checkpoint, tmp_path, capsys):
    base = ["--data", str(dataset), "--out", str(tmp_path / "r.json")]
    assert main(["--checkpoint", str(checkpoint), *base, "--episodes", "episode_000009"]) == 2
    assert "--episodes: episode 'episode_000009' not found under" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path), *base]) == 2  # a folder, but no world_model.yaml
    assert "not a geo4d world-model checkpoint" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--name", "a", "--name", "b", *base]) == 2
    assert "one name per checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_script_reports_a_missing_checkpoint(tmp_path):
    """Run as a script from the repository root, as documented."""
    missing = tmp_path / "no_such_checkpoint"
    proc = subprocess.run([sys.executable, "training/evaluate_stereo4d.py", "--checkpoint", str(missing),
                           "--data", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"evaluate_stereo4d: error: --checkpoint {missing}: does not exist" in proc.stderr
