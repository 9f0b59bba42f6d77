"""Dataset generation: sharding, seeds, resume, and one real rendered episode end to end."""

import json

import numpy as np
import pytest

from geo4d_core.cli import main
from geo4d_core.data import EpisodeReader
from geo4d_core.geometry import depth_to_pointmap, transform_points
from sim.generate import GenerateConfig, episode_path, episode_seeds, generate_dataset, shard_indices


def test_shards_partition_the_dataset():
    shards = [shard_indices(22, (k, 4)) for k in range(4)]
    assert sorted(i for s in shards for i in s) == list(range(22))
    assert shards[1] == [1, 5, 9, 13, 17, 21]
    with pytest.raises(ValueError, match="shard"):
        shard_indices(10, (4, 4))


def test_episode_seeds_are_reproducible_and_distinct():
    a_seed, a_rng = episode_seeds(0, 3, 0)
    b_seed, b_rng = episode_seeds(0, 3, 0)
    assert a_seed == b_seed and a_rng.random() == b_rng.random()
    seeds = {episode_seeds(0, i, a)[0] for i in range(20) for a in range(3)}
    assert len(seeds) == 60


def test_cli_rejects_unknown_task_and_bad_shard(tmp_path, capsys):
    assert main(["sim", "generate", "--task", "NoSuchTask", "--out", str(tmp_path)]) == 2
    assert "unknown task 'NoSuchTask'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sim", "generate", "--task", "PutSpatulaOnTable", "--out", str(tmp_path), "--shard", "3/2"])


@pytest.mark.slow
def test_generate_one_spatula_episode_and_resume(tmp_path):
    cfg = GenerateConfig(task="PutSpatulaOnTable", out=tmp_path, episodes=1, cameras=3, test_cameras=1,
                         height=48, width=64)
    reports = generate_dataset(cfg, progress=False)
    assert [r.status for r in reports] == ["done"]
    reader = EpisodeReader(episode_path(tmp_path, 0))
    meta = reader.metadata
    assert meta.task == "PutSpatulaOnTable" and meta.success is True
    assert reader.num_frames > 50
    np.testing.assert_allclose(np.diff(reader.timestamps), 0.1, atol=1e-9)
    assert reader.train_cameras == ["cam00", "cam01"] and reader.test_cameras == ["cam02"]
    assert reader.X_WE.shape == (reader.num_frames, 1, 4, 4) and np.isfinite(reader.X_WE).all()
    # The gripper closes on the spatula and opens again.
    width = reader.gripper_width[:, 0]
    assert width.max() > 0.075 and width.min() < 0.02
    # Both finger labels appear in some frame of some camera.
    seen = set()
    for cam in reader.camera_names:
        seen |= set(np.unique(reader.label(cam, slice(None))).tolist())
    for part in ("left_finger", "right_finger", "spatula", "table"):
        assert seen & set(meta.label_parts[part]), part
    # Stored depth (mm) lifts table-top pixels to the table plane.
    cam = reader.cameras["cam00"]
    depth, label = reader.depth("cam00", 0), reader.label("cam00", 0)
    p_W = transform_points(cam.X_WC, depth_to_pointmap(depth, cam.K)[0])
    top = np.isin(label, meta.label_parts["table"]) & (depth > 0) & (p_W[..., 2] > -0.01)
    np.testing.assert_allclose(p_W[top][:, 2], 0.0, atol=0.002)
    assert json.loads((tmp_path / "dataset.json").read_text())["episodes"] == 1

    # Resume: nothing is redone.
    mtime = (episode_path(tmp_path, 0) / "zarr.json").stat().st_mtime_ns
    again = generate_dataset(cfg, progress=False)
    assert [r.status for r in again] == ["skipped"]
    assert (episode_path(tmp_path, 0) / "zarr.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_generate_with_worker_processes_and_shards(tmp_path):
    cfg = GenerateConfig(task="PutSpatulaOnTable", out=tmp_path, episodes=4, cameras=1, test_cameras=1,
                         height=32, width=40, workers=2, shard=(1, 2))
    reports = generate_dataset(cfg, progress=False)
    assert [(r.index, r.status) for r in reports] == [(1, "done"), (3, "done")]
    assert not episode_path(tmp_path, 0).exists() and not episode_path(tmp_path, 2).exists()
    for i in (1, 3):  # each episode carries the seed of the attempt that succeeded
        meta = EpisodeReader(episode_path(tmp_path, i)).metadata
        assert meta.success and meta.seed == episode_seeds(0, i, meta.extra["attempt"])[0]


def test_a_stuck_attempt_is_killed_retried_and_leaves_nothing_behind(tmp_path):
    # A timeout far shorter than one demonstration stands in for a renderer that hangs: every attempt is
    # killed, logged and retried, and no partial episode folder survives.
    cfg = GenerateConfig(task="PutSpatulaOnTable", out=tmp_path, episodes=1, cameras=2, test_cameras=1,
                         height=32, width=40, max_attempts=2, attempt_timeout=1.0)
    reports = generate_dataset(cfg, progress=False)
    assert [r.status for r in reports] == ["failed"] and reports[0].attempts == 2
    assert "timed out after 1 s" in reports[0].reason
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [f["attempt"] for f in failures] == [0, 1]
    assert all("timed out" in f["reason"] for f in failures)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.json", "failures.jsonl"]
