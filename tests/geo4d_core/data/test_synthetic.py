"""Synthetic ray-cast episodes: the images agree with the geometry they were cast from."""

import numpy as np
import pytest

from geo4d_core.data.synthetic import (
    BACKGROUND_LABEL,
    HAND_LABEL,
    SyntheticEpisodeConfig,
    make_synthetic_episode,
)
from geo4d_core.geometry import depth_to_pointmap, project_world_points, transform_points


@pytest.fixture(scope="module")
def episode():
    return make_synthetic_episode(SyntheticEpisodeConfig(height=48, width=64, num_frames=8, seed=3))


def test_cameras_follow_the_paper_shell(episode):
    assert [c.split for c in episode.cameras] == ["train", "train", "test", "test"]
    for cam in episode.cameras:
        p = cam.X_WC[:3, 3]
        assert 0.7 <= np.linalg.norm(p) <= 1.2
        assert 0.2 <= p[0] <= 0.6 and -0.5 <= p[1] <= 0.5 and 0.7 <= p[2] <= 1.2
        # Looking down at the table: optical axis points towards -z in the world.
        assert cam.X_WC[2, 2] < -0.3


def test_table_pixels_lie_on_the_table_plane(episode):
    for cam in episode.cameras:
        frame = episode.frames[0][cam.name]
        points_C, valid = depth_to_pointmap(frame.depth, cam.K)
        p_W = transform_points(cam.X_WC, points_C)
        table = (frame.label == 1) & valid
        assert table.sum() > 100
        z = p_W[table][:, 2]
        # Top face at z = 0; a few pixels see the 4 cm thick table's side faces.
        assert np.all((z > -0.04 - 1e-5) & (z < 1e-5))
        assert np.mean(np.abs(z) < 1e-5) > 0.98
        assert (frame.depth[frame.label == BACKGROUND_LABEL] == 0).all()


def test_gripper_is_visible_where_it_projects(episode):
    cam = episode.cameras[0]
    for t in (0, len(episode.frames) - 1):
        frame = episode.frames[t][cam.name]
        uv, z, inside = project_world_points(episode.X_WE[t, 0, :3, 3], cam.K, cam.X_WC, cam.height, cam.width)
        assert inside
        hand = np.argwhere(frame.label == HAND_LABEL)
        assert len(hand) > 0
        # The hand sits just above the end-effector origin in the image: within a few tens of pixels.
        assert np.min(np.hypot(hand[:, 1] - uv[0], hand[:, 0] - uv[1])) < 20


def test_deterministic_for_a_seed():
    cfg = SyntheticEpisodeConfig(height=24, width=32, num_frames=3, seed=11)
    a, b = make_synthetic_episode(cfg), make_synthetic_episode(cfg)
    np.testing.assert_array_equal(a.frames[2]["cam03"].color, b.frames[2]["cam03"].color)
    np.testing.assert_array_equal(a.X_WE, b.X_WE)


def test_write_round_trips_through_the_episode_reader(tmp_path):
    from geo4d_core.data import EpisodeReader
    from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode

    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=32, width=40, num_frames=3, seed=2))
    path = ep.write(tmp_path / "ep.zarr", task="T")
    reader = EpisodeReader(path)
    assert reader.num_frames == 3 and reader.metadata.task == "T" and reader.metadata.seed == 2
    cam = ep.cameras[0].name
    assert (reader.color(cam, 2) == ep.frames[2][cam].color).all()
    assert abs(reader.X_WE[1] - ep.X_WE[1]).max() < 1e-6
