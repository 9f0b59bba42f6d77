"""`geo4d synthetic-demo` end to end at a small image size."""

import math

import numpy as np
import pytest

from geo4d_core.cli import main
from geo4d_core.data import EpisodeReader
from geo4d_core.demo import DemoConfig, run_demo


def test_demo_pipeline_writes_report_and_sensible_metrics(tmp_path):
    report = run_demo(DemoConfig(out_dir=tmp_path, height=64, width=80))
    truth, persistence = report.rows["ground truth"], report.rows["persistence"]
    assert truth["AbsRel-n"] == 0.0 and truth["AbsRel-m"] == pytest.approx(0.0, abs=1e-6)
    assert truth["δ1-n"] == 1.0 and truth["δ1-m"] == 1.0
    assert math.isinf(truth["PSNR-n"]) and math.isinf(truth["PSNR-m"])
    assert truth["mIoU"] > 0.8  # boxes of the true gripper agree across views (occlusion aside)
    # The gripper moves, so repeating the condition frame must score worse than the truth.
    assert persistence["AbsRel-n"] > 0.0 and persistence["δ1-n"] < 1.0
    assert persistence["mIoU"] < truth["mIoU"]
    assert np.isfinite(persistence["PSNR-n"])
    assert report.raymap_rotation_error_rad < 1e-5 and report.raymap_translation_error_m < 1e-5
    assert report.report_path.read_text().count("| persistence |") == 1
    assert report.montage_path.stat().st_size > 1000
    assert EpisodeReader(report.episode_path).num_frames == 24


def test_demo_subcommand_prints_what_it_did(tmp_path, capsys):
    assert main(["synthetic-demo", "--out", str(tmp_path), "--height", "32", "--width", "40"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out and "persistence" in out
    assert (tmp_path / "report.md").is_file()
