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


@pytest.mark.parametrize("name", ["spatula_tiny", "spatula_tiny_no_mv"])
def test_model_card_table1_row_is_the_evaluation_output(name):
    """The Table 1 row of the model card (models/README.md, also in README.md) is what evaluate_stereo4d.py wrote
    for this checkpoint (table1.json in its folder), to the printed digits."""
    result = json.loads((MODELS / name / "table1.json").read_text())
    assert result["checkpoint"] == f"models/{name}" and result["num_samples"] == 24
    row = next(line for line in (MODELS / "README.md").read_text().splitlines() if f"(`models/{name}`)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    keys = list(result["columns"].values())
    assert len(cells) == len(keys) + 1 and int(cells[-1]) == result["num_samples"]
    for key, cell in zip(keys, cells):
        digits = len(cell.split(".")[1])
        assert f"{result['metrics'][key]['mean']:.{digits}f}" == cell, key
