"""RGB / pointmap VAEs: initialisation, shapes and units of the array <-> latent helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder

from geo4d_core.geometry.normalization import PointmapNormalizationConfig
from geo4d_core.model.vae import LatentCodec, PointmapCodecConfig, build_vae, pointmap_vae_from_rgb


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    rgb = build_vae("tiny").eval()
    return LatentCodec(rgb, pointmap_vae_from_rgb(rgb).eval())


def test_pointmap_vae_is_a_copy_of_the_rgb_vae():
    rgb = build_vae("tiny")
    pm = pointmap_vae_from_rgb(rgb)
    assert type(pm) is type(rgb) and pm.config == rgb.config
    a, b = rgb.state_dict(), pm.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(pa.data_ptr() != pb.data_ptr() for pa, pb in zip(rgb.parameters(), pm.parameters()))


def test_presets_build_the_expected_classes():
    assert isinstance(build_vae("small"), AutoencoderKL)
    with torch.device("meta"):
        svd = build_vae("svd")
    assert isinstance(svd, AutoencoderKLTemporalDecoder) and svd.config.latent_channels == 4
    with pytest.raises(ValueError, match="unknown VAE configuration"):
        build_vae("medium")


def test_rgb_round_trip_shapes_and_dtypes(codec):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    z = codec.encode_rgb(rgb)
    assert z.shape == (3, 4, 4, 5) and z.dtype == torch.float32
    back = codec.decode_rgb(z)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    with pytest.raises(ValueError, match="uint8"):
        codec.encode_rgb(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="multiple of 8"):
        codec.encode_rgb(rgb[:, :30])


def test_pointmap_encoding_normalises_with_the_metric_box_and_marks_invalid_pixels(codec):
    rng = np.random.default_rng(1)
    pts = rng.uniform([-0.5, -0.5, 0.5], [0.5, 0.5, 2.0], (2, 16, 16, 3)).astype(np.float32)
    valid = np.ones((2, 16, 16), bool)
    valid[:, :4] = False
    normalized = codec.normalize_points(pts, valid)
    box = codec.config.normalization
    expected = 2 * (pts - np.array(box.lo)) / (np.array(box.hi) - np.array(box.lo)) - 1
    got = normalized.permute(0, 2, 3, 1).numpy()
    assert np.allclose(got[:, 4:], expected[:, 4:], atol=1e-6)
    assert np.all(got[:, :4] == -1.0)  # invalid -> the box's lower corner
    # encode_pointmap is exactly the pointmap VAE applied to that normalised map
    z = codec.encode_pointmap(pts, valid)
    direct = codec.pointmap_vae.encode(normalized).latent_dist.mode() * codec.pointmap_vae.config.scaling_factor
    assert torch.allclose(z, direct)


def test_decoded_points_are_metric_and_validity_follows_the_threshold(codec):
    cfg = codec.config
    pts = np.array([[0.1, -0.2, 1.0], [0.0, 0.0, 0.05], [0.3, 0.2, 2.5]], np.float32).reshape(1, 1, 3, 3)
    lo, hi = np.array(cfg.normalization.lo), np.array(cfg.normalization.hi)
    nrm = torch.from_numpy(2 * (pts - lo) / (hi - lo) - 1).float().permute(0, 3, 1, 2)
    back, valid = codec.points_from_normalized(nrm)
    assert valid.tolist() == [[[True, False, True]]]  # z = 0.05 m is below the 0.15 m threshold
    assert np.allclose(back[0, 0, [0, 2]], pts[0, 0, [0, 2]], atol=1e-6)
    assert np.all(back[0, 0, 1] == 0.0)


def test_decode_pointmap_shapes(codec):
    z = torch.randn(2, 4, 4, 5)
    pts, valid = codec.decode_pointmap(z)
    assert pts.shape == (2, 32, 40, 3) and pts.dtype == np.float32 and valid.shape == (2, 32, 40)
    assert np.all(pts[~valid] == 0)


def test_codec_config_round_trip():
    cfg = PointmapCodecConfig(PointmapNormalizationConfig(lo=(-1, -1, 0.2), hi=(1, 1, 2), invalid_value=-1), -0.8)
    again = PointmapCodecConfig.from_dict(cfg.to_dict())
    assert again == cfg
