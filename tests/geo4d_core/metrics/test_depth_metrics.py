"""AbsRel and δ1 against hand-computed cases."""

import numpy as np
import pytest
import torch

from geo4d_core.metrics import abs_rel, delta1


def _gt():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 2.0, size=(3, 8, 10)).astype(np.float32)
    gt[:, 0, :] = 0.0  # invalid row
    return gt


def test_perfect_prediction():
    gt = _gt()
    assert abs_rel(gt, gt) == 0.0
    assert delta1(gt, gt) == 1.0


def test_known_scale_gives_known_values():
    gt = _gt()
    assert abs_rel(gt * 1.1, gt) == pytest.approx(0.1, rel=1e-6)
    assert abs_rel(gt * 0.8, gt) == pytest.approx(0.2, rel=1e-6)
    assert delta1(gt * 1.2, gt) == 1.0  # ratio 1.2 < 1.25
    assert delta1(gt * 1.3, gt) == 0.0  # ratio 1.3 > 1.25
    assert delta1(gt / 1.3, gt) == 0.0  # inverse ratio counts too


def test_mixed_pixels_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # last pixel invalid
    pred = np.array([[1.5, 2.0], [2.0, 123.0]])
    # |1.5-1|/1 = 0.5, 0, |2-4|/4 = 0.5 -> mean 1/3
    assert abs_rel(pred, gt) == pytest.approx(1 / 3)
    # ratios 1.5 (miss), 1.0 (hit), 2.0 (miss) -> 1/3
    assert delta1(pred, gt) == pytest.approx(1 / 3)


def test_invalid_gt_pixels_and_mask_are_ignored():
    gt = _gt()
    pred = gt.copy()
    pred[:, 0, :] = 100.0  # garbage where gt is invalid: ignored
    assert abs_rel(pred, gt) == 0.0
    pred[:, 1, :] = 100.0
    valid = np.ones_like(gt, dtype=bool)
    valid[:, 1, :] = False
    assert abs_rel(pred, gt, valid) == 0.0
    assert abs_rel(pred, gt) > 1.0


def test_invalid_prediction_counts_as_a_miss():
    gt = np.full((1, 2, 2), 2.0)
    pred = gt.copy()
    pred[0, 0, 0] = np.nan
    pred[0, 0, 1] = 0.0
    assert abs_rel(pred, gt) == pytest.approx(0.5)  # two of four pixels score 1
    assert delta1(pred, gt) == pytest.approx(0.5)


def test_reductions():
    gt = np.ones((2, 2, 2))
    gt[1] = 0.0
    gt[1, 0, 0] = 1.0  # frame 1 has one valid pixel
    pred = gt * 1.5  # both frames: per-pixel error 0.5
    pred[1, 0, 0] = 1.0  # frame 1 perfect
    per_frame = abs_rel(pred, gt, reduction="none")
    np.testing.assert_allclose(per_frame, [0.5, 0.0])
    assert abs_rel(pred, gt, reduction="frames") == pytest.approx(0.25)
    assert abs_rel(pred, gt, reduction="pixels") == pytest.approx(2.0 / 5)
    with pytest.raises(ValueError, match="reduction"):
        abs_rel(pred, gt, reduction="bogus")


def test_no_valid_pixel_is_nan_and_shape_mismatch_is_an_error():
    assert np.isnan(abs_rel(np.ones((2, 2)), np.zeros((2, 2))))
    with pytest.raises(ValueError, match="shape"):
        abs_rel(np.ones((2, 2)), np.ones((2, 3)))


def test_torch_inputs_accepted():
    gt = torch.rand(2, 4, 4) + 0.5
    assert abs_rel(gt * 1.1, gt) == pytest.approx(0.1, rel=1e-5)
