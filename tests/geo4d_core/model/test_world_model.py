"""WorldModel: predict() outputs, determinism, persistence, input handling and the CLIP context path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo4d_core.model import Observation, WorldModel, WorldModelConfig
from geo4d_core.model.world_model import Prediction


def observation(h=64, w=80, seed=0, f=70.0) -> Observation:
    rng = np.random.default_rng(seed)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    depth = rng.uniform(0.6, 1.4, (h, w)).astype(np.float32)
    depth[:4, :4] = 0.0
    return Observation(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth, K)


@pytest.fixture(scope="module")
def model() -> WorldModel:
    return WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)


def test_prediction_contents(model):
    pred = model.predict(observation(seed=0), observation(seed=1), steps=2, seed=0)
    h, H, W = 10, 64, 80
    assert isinstance(pred, Prediction) and pred.horizon == h
    assert pred.rgb_n.shape == pred.rgb_m.shape == (h, H, W, 3) and pred.rgb_n.dtype == np.uint8
    assert pred.points_n.shape == pred.points_m_in_n.shape == (h, H, W, 3)
    assert pred.points_n.dtype == np.float32 and pred.depth_n.shape == (h, H, W)
    assert pred.valid_n.dtype == bool and pred.valid_m.shape == (h, H, W)
    # depth of view n is the z of its pointmap, 0 where invalid; invalid points are zero
    assert np.array_equal(pred.depth_n, np.where(pred.valid_n, pred.points_n[..., 2], 0))
    assert np.all(pred.points_n[~pred.valid_n] == 0) and np.all(pred.points_m_in_n[~pred.valid_m] == 0)
    assert set(pred.timings) == {"prepare_s", "encode_s", "denoise_s", "denoise_step_s", "decode_s", "total_s"}
    assert all(v >= 0 for v in pred.timings.values())
    assert pred.timings["total_s"] >= pred.timings["denoise_s"]
    assert pred.latents_n.shape == (h, 8, 8, 10) and pred.steps == 2


def test_small_configuration_predicts_at_128x160():
    model = WorldModel.from_config(WorldModelConfig.preset("small"), seed=0)
    pred = model.predict(observation(128, 160, f=140.0), observation(128, 160, seed=1, f=140.0), steps=1)
    assert pred.points_m_in_n.shape == (10, 128, 160, 3) and pred.latents_m.shape == (10, 8, 16, 20)
    assert np.isfinite(pred.points_n).all()


def test_same_seed_same_prediction_other_seed_differs(model):
    o_n, o_m = observation(seed=0), observation(seed=1)
    a = model.predict(o_n, o_m, steps=2, seed=3)
    b = model.predict(o_n, o_m, steps=2, seed=3)
    c = model.predict(o_n, o_m, steps=2, seed=4)
    assert np.array_equal(a.latents_n, b.latents_n) and np.array_equal(a.points_m_in_n, b.points_m_in_n)
    assert np.array_equal(a.rgb_m, b.rgb_m)
    assert not np.allclose(a.latents_n, c.latents_n)


def test_save_and_load_round_trip_reproduces_predictions(model, tmp_path):
    model.config.guidance_scale = 1.0
    path = model.save_pretrained(tmp_path / "wm")
    assert {p.name for p in path.iterdir()} == {"world_model.yaml", "unet", "rgb_vae", "pointmap_vae"}
    loaded = WorldModel.from_pretrained(path)
    assert loaded.config == model.config
    o_n, o_m = observation(seed=0), observation(seed=1)
    a = model.predict(o_n, o_m, steps=2, seed=0)
    b = loaded.predict(o_n, o_m, steps=2, seed=0)
    assert np.array_equal(a.latents_n, b.latents_n) and np.array_equal(a.latents_m, b.latents_m)
    # saving again replaces the folder atomically
    model.save_pretrained(path)
    assert WorldModel.from_pretrained(path).config == model.config


def test_loading_an_incomplete_checkpoint_fails_clearly(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a geo4d world-model checkpoint"):
        WorldModel.from_pretrained(tmp_path)
    model.config.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="incomplete world-model checkpoint"):
        WorldModel.from_pretrained(tmp_path)


def test_inputs_of_another_resolution_are_resized_with_their_intrinsics(model):
    big = observation(h=128, w=160, f=140.0)
    prepared = model.prepare(big, "obs_n")
    assert prepared.rgb.shape == (64, 80, 3) and prepared.depth.shape == (64, 80)
    # pixel-centre convention: (c + 0.5) * s - 0.5
    assert np.allclose(prepared.K, [[70.0, 0, (159 / 2 + 0.5) / 2 - 0.5], [0, 70.0, (127 / 2 + 0.5) / 2 - 0.5], [0, 0, 1]])
    pred = model.predict(big, observation(h=128, w=160, seed=1, f=140.0), steps=1)
    assert pred.rgb_n.shape == (10, 64, 80, 3) and np.allclose(pred.K_n, prepared.K)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("rgb", np.zeros((64, 80, 3), np.float32), "uint8"),
        ("depth", np.zeros((64, 80), np.uint16), "float metres"),
        ("depth", np.zeros((60, 80), np.float32), "depth must be"),
        ("K", np.eye(2), "3x3"),
    ],
)
def test_bad_observations_are_rejected_with_the_field_named(model, field, value, match):
    obs = observation()
    setattr(obs, field, value)
    with pytest.raises(ValueError, match=match) as err:
        model.predict(obs, observation(), steps=1)
    assert "obs_n" in str(err.value)


def test_non_finite_depth_is_treated_as_missing(model):
    obs = observation()
    obs.depth[10:20, 10:20] = np.nan
    prepared = model.prepare(obs, "obs_n")
    assert np.all(prepared.depth[10:20, 10:20] == 0) and np.isfinite(prepared.depth).all()


def test_clip_context_uses_the_image_encoder():
    cfg = WorldModelConfig.preset("tiny", context="clip")
    with pytest.raises(ValueError, match="clip_path"):
        WorldModel.from_config(cfg)
    calls = []
    scale = {"v": 1.0}

    def fake_clip(rgb: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(rgb.shape))
        assert rgb.min() >= -1 and rgb.max() <= 1
        return torch.full((rgb.shape[0], 1, 64), scale["v"]) * rgb.mean(dim=(1, 2, 3))[:, None, None]

    model = WorldModel.from_config(cfg, image_encoder=fake_clip)
    assert model.unet.context_encoder is None
    a = model.predict(observation(), observation(seed=1), steps=1)
    assert calls == [(2, 3, 64, 80)]
    scale["v"] = 5.0
    b = model.predict(observation(), observation(seed=1), steps=1)
    assert not np.allclose(a.latents_n, b.latents_n)


def test_config_presets_and_validation(tmp_path):
    svd = WorldModelConfig.preset("svd")
    assert svd.edm.prediction_type == "v_prediction" and svd.edm.sigma_data == 1.0 and svd.context == "clip"
    small = WorldModelConfig.preset("small", mv_attention=False)
    assert (small.height, small.width, small.mv_attention) == (128, 160, False)
    small.save(tmp_path)
    assert WorldModelConfig.load(tmp_path) == small
    with pytest.raises(ValueError, match="multiple of 8"):
        WorldModelConfig.preset("tiny", height=60)
    with pytest.raises(ValueError, match="architecture"):
        WorldModelConfig(architecture="huge")
    with pytest.raises(ValueError, match="unknown keys"):
        WorldModelConfig.from_dict({"horizn": 10})


def test_rgb_only_configuration_predicts_rgb_and_no_geometry():
    cfg = WorldModelConfig.preset("tiny", use_pointmaps=False)
    assert cfg.edm.pointmap_weight == 0.0
    model = WorldModel.from_config(cfg, seed=0)
    rng = np.random.default_rng(0)
    K = np.array([[60.0, 0, 40], [0, 60.0, 32], [0, 0, 1]])
    obs = Observation(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
                      rng.uniform(0.5, 1.5, (64, 80)).astype(np.float32), K)
    cond_n, _ = model.encode_condition(model.prepare(obs, "n"), model.prepare(obs, "m"))
    assert torch.count_nonzero(cond_n[:, 4:]) == 0 and torch.count_nonzero(cond_n[:, :4]) > 0
    pred = model.predict(obs, obs, steps=1)
    assert pred.rgb_n.shape == (10, 64, 80, 3)
    assert not pred.valid_n.any() and not pred.valid_m.any() and not pred.depth_n.any()
