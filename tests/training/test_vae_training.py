"""train_pointmap_vae: the RGB VAE trains from scratch, the pointmap VAE fine-tunes a copy and gets better."""

from __future__ import annotations

import json

import pytest
import torch

from geo4d_core.model.vae import build_vae, load_vae
from training.config import ConfigError, VaeTrainConfig, load_config
from training.train_pointmap_vae import main
from training.vae_training import train_vae


def _cfg(root, out, *extra):
    return load_config(VaeTrainConfig, None, [f"data.root={root}", "data.heldout_episodes=1", f"output_dir={out}",
                                              "batch_size=4", "eval_frames=8", "threads=1", *extra])


def test_rgb_then_pointmap_vae(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    init = tmp_path / "init_rgb"
    build_vae("tiny").save_pretrained(init)
    m_rgb = train_vae(_cfg(tiny_dataset, tmp_path, "modality=rgb", "max_steps=3", "crop=32"), progress=False)
    assert m_rgb["steps"] == 3 and m_rgb["heldout"]["after"]["psnr_db"] > 0
    assert m_rgb["heldout"]["episodes"] == ["episode_000002.zarr"]
    rgb = load_vae(tmp_path / "rgb_vae")
    assert rgb.config.scaling_factor == pytest.approx(m_rgb["scaling_factor"]) and rgb.config.scaling_factor != 0.18215

    m_pm = train_vae(_cfg(tiny_dataset, tmp_path, "modality=pointmap", f"init={init}", "max_steps=40", "lr=2e-3"),
                     progress=False)
    before, after = m_pm["heldout"]["before"], m_pm["heldout"]["after"]
    assert {"median_error_mm", "mean_error_mm", "p90_error_mm", "validity_accuracy"} <= set(after)
    assert after["mean_error_mm"] < 0.7 * before["mean_error_mm"]  # fine-tuning on pointmaps helps
    saved = json.loads((tmp_path / "pointmap_vae_metrics.json").read_text())
    assert saved["heldout"]["after"] == after
    pm = load_vae(tmp_path / "pointmap_vae")
    init_vae = load_vae(init)
    assert any(not torch.equal(a, b) for a, b in zip(pm.state_dict().values(), init_vae.state_dict().values()))


def test_pointmap_modality_needs_an_rgb_vae_to_copy(tmp_path, capsys):
    with pytest.raises(ConfigError, match="init"):
        load_config(VaeTrainConfig, None, ["modality=pointmap"])
    assert main([f"output_dir={tmp_path}", "modality=depth"]) == 2
    assert "modality" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="crop"):
        load_config(VaeTrainConfig, None, ["modality=rgb", "crop=30"])
