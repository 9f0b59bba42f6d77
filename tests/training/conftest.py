"""Small synthetic datasets shared by the training tests (64x80, 16 frames, 3 train + 1 test cameras)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_dataset")
    for seed in range(3):
        cfg = SyntheticEpisodeConfig(height=64, width=80, num_frames=14, num_cameras=4, num_test_cameras=1, seed=seed)
        make_synthetic_episode(cfg).write(root / f"episode_{seed:06d}.zarr")
    return root


@pytest.fixture
def train_overrides(tiny_dataset):
    """fn(out, *extra) -> a tiny, fast TrainConfig as key=value overrides."""
    def make(out: Path, *extra: str) -> list[str]:
        return _overrides(tiny_dataset, out, *extra)
    return make


def _overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", "data.heldout_episodes=1", "model.height=64", "model.width=80",
            f"output_dir={out}", "optim.lr=1e-3", "optim.batch_size=2", "log_every=1", "threads=1",
            "checkpoint_every=2", "condition_dropout=0.2", *extra]
