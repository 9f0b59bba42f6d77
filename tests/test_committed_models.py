"""The trained checkpoints in models/ load, match their model card and predict deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from geo4d_core.model import Observation, WorldModel

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("name, mv_attention", [("spatula_tiny", True), ("spatula_tiny_no_mv", False)])
def test_committed_model_loads_and_predicts(name, mv_attention):
    folder = MODELS / name
    model = WorldModel.from_pretrained(folder)
    cfg = model.config
    assert (cfg.architecture, cfg.height, cfg.width, cfg.horizon, cfg.mv_attention) == ("tiny", 128, 160, 10,
                                                                                        mv_attention)
    summary = json.loads((folder / "train_summary.json").read_text())
    assert summary["train_seconds"] >= 3600 and summary["steps"] > 0  # "trained for at least an hour"
    recipe = json.loads((folder / "data_recipe.json").read_text())
    assert not set(recipe["train_episodes"]) & set(recipe["heldout_episodes"])
    # trained VAEs: their latent scale was measured on data (not diffusers' SD default)
    assert model.rgb_vae.config.scaling_factor != pytest.approx(0.18215)
    rng = np.random.default_rng(0)
    K = np.array([[130.0, 0, 79.5], [0, 130.0, 63.5], [0, 0, 1]])
    obs = Observation(rng.integers(0, 256, (128, 160, 3), dtype=np.uint8),
                      rng.uniform(0.6, 1.4, (128, 160)).astype(np.float32), K)
    a = model.predict(obs, obs, steps=2, seed=3)
    b = model.predict(obs, obs, steps=2, seed=3)
    assert a.rgb_n.shape == (10, 128, 160, 3) and a.points_m_in_n.shape == (10, 128, 160, 3)
    np.testing.assert_array_equal(a.latents_n, b.latents_n)
    assert np.isfinite(a.latents_n).all() and np.isfinite(a.latents_m).all()
