"""`geo4d predict` on a stored (synthetic) episode with a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geo4d_core.cli import main
from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode
from geo4d_core.model import WorldModel, WorldModelConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=64, width=80, num_frames=14, seed=0))
    episode = ep.write(root / "ep.zarr", task="Synthetic")
    checkpoint = WorldModel.from_config(WorldModelConfig.preset("tiny")).save_pretrained(root / "model")
    return root, episode, checkpoint


def read_ply(path):
    data = path.read_bytes()
    header, _, body = data.partition(b"end_header\n")
    count = int([line for line in header.split(b"\n") if line.startswith(b"element vertex")][0].split()[-1])
    rec = np.frombuffer(body, dtype=[("p", "<f4", 3), ("c", "u1", 3)])
    assert len(rec) == count
    return rec


def test_predict_writes_videos_depth_point_cloud_and_scores(setup, capsys):
    root, episode, checkpoint = setup
    out = root / "out"
    rc = main(["predict", "--checkpoint", str(checkpoint), "--episode", str(episode), "--view-n", "2",
               "--view-m", "cam03", "--t", "2", "--out", str(out), "--steps", "3"])
    assert rc == 0
    for name in ("rgb_n.mp4", "rgb_m.mp4", "rgb.png", "depth_n.png", "points_t+10.ply", "prediction.npz"):
        assert (out / name).stat().st_size > 0, name
    arrays = np.load(out / "prediction.npz")
    assert arrays["points_m_in_n"].shape == (10, 64, 80, 3)
    ply = read_ply(out / "points_t+10.ply")
    assert len(ply) == arrays["valid_n"][-1].sum() + arrays["valid_m"][-1].sum()
    assert np.allclose(ply["p"][: arrays["valid_n"][-1].sum()], arrays["points_n"][-1][arrays["valid_n"][-1]])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["view_n"] == "cam02" and summary["view_m"] == "cam03" and summary["steps"] == 3
    assert set(summary["metrics"]) == {"AbsRel-n", "AbsRel-m", "delta1-n", "delta1-m", "PSNR-n", "PSNR-m"}
    assert all(np.isfinite(v) for v in summary["metrics"].values())
    assert "AbsRel-m" in capsys.readouterr().out


def test_predict_without_future_frames_skips_scoring(setup):
    root, episode, checkpoint = setup
    out = root / "late"
    assert main(["predict", "--checkpoint", str(checkpoint), "--episode", str(episode), "--view-n", "0",
                 "--view-m", "1", "--t", "12", "--out", str(out), "--steps", "1"]) == 0
    assert "metrics" not in json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--view-n", "0", "--view-m", "7"], "index out of range"),
        (["--view-n", "0", "--view-m", "top"], "not a camera of this episode"),
        (["--view-n", "1", "--view-m", "cam01"], "must be different"),
        (["--view-n", "0", "--view-m", "1", "--t", "99"], "frames 0..13"),
    ],
)
def test_bad_arguments_give_one_clear_line(setup, capsys, args, message):
    root, episode, checkpoint = setup
    rc = main(["predict", "--checkpoint", str(checkpoint), "--episode", str(episode), "--out", str(root / "x"), *args])
    assert rc == 2 and message in capsys.readouterr().err


def test_missing_checkpoint_is_reported(setup, capsys, tmp_path):
    _, episode, _ = setup
    rc = main(["predict", "--checkpoint", str(tmp_path), "--episode", str(episode), "--view-n", "0",
               "--view-m", "1", "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a geo4d world-model checkpoint" in capsys.readouterr().err


def test_init_model_from_a_local_svd_layout_checkpoint(tmp_path, capsys):
    """`geo4d init-model --pretrained DIR` on a tiny U-Net + VAE saved in the SVD checkpoint layout."""
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    from geo4d_core.model.stereo_unet import unet_preset
    from geo4d_core.model.vae import build_vae

    torch.manual_seed(0)
    base = UNetSpatioTemporalConditionModel(in_channels=8, out_channels=4, num_frames=10, **unet_preset("tiny"))
    base.save_pretrained(tmp_path / "svd" / "unet")
    vae = build_vae("tiny")
    vae.save_pretrained(tmp_path / "svd" / "vae")
    rc = main(["init-model", "--config", "tiny", "--context", "learned", "--pretrained", str(tmp_path / "svd"),
               "--out", str(tmp_path / "ckpt")])
    assert rc == 0 and "from " in capsys.readouterr().out
    model = WorldModel.from_pretrained(tmp_path / "ckpt")
    state = model.unet.unet.state_dict()
    assert torch.equal(state["down_blocks.0.resnets.0.spatial_res_block.conv1.weight"],
                       base.state_dict()["down_blocks.0.resnets.0.spatial_res_block.conv1.weight"])
    assert torch.equal(model.unet.unet.conv_in.weight[:, 0:4], base.conv_in.weight[:, 0:4])
    assert torch.equal(model.rgb_vae.state_dict()["encoder.conv_in.weight"], vae.state_dict()["encoder.conv_in.weight"])
    assert torch.equal(model.pointmap_vae.state_dict()["encoder.conv_in.weight"], vae.state_dict()["encoder.conv_in.weight"])


def test_init_model_fresh_and_error_paths(tmp_path, capsys):
    assert main(["init-model", "--config", "tiny", "--no-mv-attention", "--out", str(tmp_path / "a")]) == 0
    assert WorldModel.from_pretrained(tmp_path / "a").unet.cross_view is None
    assert main(["init-model", "--pretrained", str(tmp_path / "nothing"), "--context", "learned",
                 "--out", str(tmp_path / "b")]) == 2
    assert "nothing" in capsys.readouterr().err
    assert main(["init-model", "--height", "60", "--out", str(tmp_path / "c")]) == 2
    assert "multiple of 8" in capsys.readouterr().err
