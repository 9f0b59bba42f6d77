"""training.data: the m->n target pointmaps, the latent cache, the held-out split and VAE frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo4d_core.data.episode import EpisodeReader, list_episodes
from geo4d_core.geometry.normalization import denormalize_pointmap
from geo4d_core.model.configuration_world_model import WorldModelConfig
from geo4d_core.model.world_model import WorldModel
from training.data import (
    DataError,
    FrameDataset,
    StereoLatentDataset,
    StereoPixelDataset,
    build_latent_cache,
    split_episodes,
)
from training.stereo4d_training import pixels_to_latents

H = 10


def _lift_by_hand(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Independent pinhole back-projection (not geo4d_core.geometry): (H, W) metres -> (H, W, 3)."""
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * depth
    y = (v - K[1, 2]) / K[1, 1] * depth
    return np.stack([x, y, depth], -1)


def test_split_holds_out_the_last_episodes(tiny_dataset):
    split = split_episodes(tiny_dataset, 1)
    assert [p.name for p in split.train] == ["episode_000000.zarr", "episode_000001.zarr"]
    assert [p.name for p in split.heldout] == ["episode_000002.zarr"]
    with pytest.raises(DataError, match="heldout_episodes = 3"):
        split_episodes(tiny_dataset, 3)


def test_pixel_dataset_m_to_n_targets_agree_with_independent_transform(tiny_dataset):
    eps = list_episodes(tiny_dataset)[:1]
    cfg = WorldModelConfig.preset("tiny")
    ds = StereoPixelDataset(eps, H, height=64, width=80, codec=cfg.pointmap)
    reader = EpisodeReader(eps[0])
    assert len(ds) == (reader.num_frames - H) * 3 * 2  # t values x ordered pairs of 3 train cameras
    i = len(ds) // 2 + 1
    key = ds.keys[i]
    assert key.cam_n != key.cam_m and reader.cameras[key.cam_n].split == "train"
    item = ds[i]
    assert item["target_points"].shape == (2, H, 3, 64, 80) and item["cond_rgb"].shape == (2, 3, 64, 80)
    spec_n, spec_m = reader.cameras[key.cam_n], reader.cameras[key.cam_m]
    X_CnCm = np.linalg.inv(spec_n.X_WC) @ spec_m.X_WC
    for k in (0, H - 1):
        depth_m = reader.depth(key.cam_m, key.t + 1 + k).astype(np.float64)
        p_Cm = _lift_by_hand(depth_m, spec_m.K)
        expected = p_Cm @ X_CnCm[:3, :3].T + X_CnCm[:3, 3]
        got = denormalize_pointmap(item["target_points"][1, k].permute(1, 2, 0).double().numpy(),
                                      cfg.pointmap.normalization)
        valid = depth_m > 0
        assert valid.mean() > 0.5
        np.testing.assert_allclose(got[valid], expected[valid], atol=2e-5)
        # invalid pixels carry the codec's invalid value
        assert np.all(item["target_points"][1, k].permute(1, 2, 0).numpy()[~valid] == -1.0)
    # the condition of view m stays in camera m's own frame
    cond_m = denormalize_pointmap(item["cond_points"][1].permute(1, 2, 0).double().numpy(),
                                     cfg.pointmap.normalization)
    depth_m0 = reader.depth(key.cam_m, key.t).astype(np.float64)
    valid0 = depth_m0 > 0
    np.testing.assert_allclose(cond_m[valid0], _lift_by_hand(depth_m0, spec_m.K)[valid0], atol=2e-5)
    # gripper masks come from the labels of the target frames
    grip = reader.label_mask(key.cam_n, list(range(key.t + 1, key.t + 1 + H)), "gripper")
    np.testing.assert_array_equal(item["gripper"][0].numpy().astype(bool), grip)


def test_latent_cache_matches_encoding_in_the_step(tiny_dataset, tmp_path):
    eps = list_episodes(tiny_dataset)[:1]
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    build_latent_cache(eps, model.codec, tmp_path / "cache", progress=False)
    cached = StereoLatentDataset(eps, H, tmp_path / "cache", height=64, width=80)
    pixels = StereoPixelDataset(eps, H, height=64, width=80, codec=model.config.pointmap)
    assert cached.keys == pixels.keys
    for i in (0, len(cached) - 1):
        a = cached[i]
        b = pixels_to_latents({k: v[None] for k, v in pixels[i].items()}, model.codec)
        for k in ("cond_n", "cond_m", "target_n", "target_m"):
            assert a[k].shape == b[k][0].shape
            torch.testing.assert_close(a[k], b[k][0], atol=2e-2, rtol=2e-3)  # float16 on disk
        # latent-cell gripper mask = max-pool of the pixel mask
        pooled = torch.nn.functional.max_pool2d(b["gripper_n"][0][:, None], 8)[:, 0]
        assert torch.equal(a["gripper_n"], pooled)
    # a cache built with other VAE weights is refused
    other = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=1)
    with pytest.raises(DataError, match="other VAEs"):
        build_latent_cache(eps, other.codec, tmp_path / "cache", progress=False)


def test_size_mismatch_is_a_clear_error(tiny_dataset):
    with pytest.raises(DataError, match="64x80, the model runs at 128x160"):
        StereoPixelDataset(list_episodes(tiny_dataset)[:1], H, height=128, width=160)


def test_frame_dataset_cross_view_pointmaps(tiny_dataset):
    eps = list_episodes(tiny_dataset)[:1]
    native_ds = FrameDataset(eps, "pointmap", cross_view_prob=0.0)
    cross_ds = FrameDataset(eps, "pointmap", cross_view_prob=1.0)
    e, cam, t = native_ds.frames[0]
    depth = native_ds.readers[e].depth(cam, t)
    pts0, v0 = native_ds.points(0, np.random.default_rng(0))
    np.testing.assert_array_equal(v0, depth > 0)
    np.testing.assert_allclose(pts0[v0], _lift_by_hand(depth.astype(np.float64), native_ds.readers[e].cameras[cam].K)[v0],
                               atol=2e-5)
    pts1, v1 = cross_ds.points(0, np.random.default_rng(0))  # another camera's points, in `cam`'s frame
    assert v1.any() and (not np.array_equal(v1, v0) or not np.allclose(pts1[v1], pts0[v1], atol=1e-3))
    assert cross_ds.item(0, np.random.default_rng(0)).shape == (3, 64, 80)
    x = FrameDataset(eps, "rgb")[3]
    assert x.shape == (3, 64, 80) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
