"""`geo4d extract eval` plumbing on a small synthetic episode (boxes for a gripper: accuracy is not the point)."""

from __future__ import annotations

import json

import pytest

from geo4d_core.cli import main
from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode


def test_extract_eval_writes_one_row_per_setting(tmp_path, capsys):
    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=64, width=80, num_frames=5, seed=1))
    path = ep.write(tmp_path / "ep.zarr", task="Synthetic")
    out = tmp_path / "eval.json"
    rc = main(["extract", "eval", str(path), "--views", "nm", "n", "--noise", "0", "0.003", "--out", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert [(r["setting"], r["noise_std"]) for r in rows] == [("nm", 0.0), ("nm", 0.003), ("n", 0.0), ("n", 0.003)]
    assert all(r["steps"] == 4 and 0 <= r["gripper_accuracy"] <= 1 for r in rows)
    assert "med t (mm)" in capsys.readouterr().out


def test_extract_eval_reports_missing_episodes(tmp_path, capsys):
    assert main(["extract", "eval", str(tmp_path / "nothing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_extract_eval_chunk_option(tmp_path, capsys):
    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=64, width=80, num_frames=5, seed=1))
    path = ep.write(tmp_path / "ep.zarr", task="Synthetic")
    out = tmp_path / "eval.json"
    assert main(["extract", "eval", str(path), "--views", "n", "--chunk", "2", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["chunk"] == 2 and row["cycles"] == 2 and row["steps"] == 4
    assert main(["extract", "eval", str(path), "--views", "n", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["chunk"] is None and row["cycles"] == 1 and row["steps"] == 4
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # argparse rejects it
        main(["extract", "eval", str(path), "--chunk", "0"])
    assert exc.value.code == 2
    assert "--chunk" in capsys.readouterr().err


def test_extract_eval_settings_select_the_policy_or_library_tracking(tmp_path):
    from geo4d_core.action.cli import extraction_config
    from geo4d_core.action.extraction import ExtractionConfig
    from geo4d_core.policy import PolicyConfig

    policy = extraction_config("policy", "n", "centroid")
    assert policy.icp == PolicyConfig().extraction.icp and policy.min_confidence == PolicyConfig().extraction.min_confidence
    assert policy.min_confidence > 0 and policy.icp != ExtractionConfig().icp  # not the library defaults
    assert policy.views == ("n",) and policy.gripper.rule == "centroid"
    library = extraction_config("library", "nm", "opening")
    assert library.icp == ExtractionConfig().icp and library.min_confidence == 0.0
    assert library.views == ("n", "m") and library.gripper.rule == "opening"
    with pytest.raises(ValueError, match="settings"):
        extraction_config("fast", "n", "opening")

    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=64, width=80, num_frames=5, seed=1))
    path = ep.write(tmp_path / "ep.zarr", task="Synthetic")
    out = tmp_path / "eval.json"
    assert main(["extract", "eval", str(path), "--views", "n", "--settings", "library", "--out", str(out)]) == 0
    assert json.loads(out.read_text())[0]["settings"] == "library"
    assert main(["extract", "eval", str(path), "--views", "n", "--out", str(out)]) == 0
    assert json.loads(out.read_text())[0]["settings"] == "policy"
