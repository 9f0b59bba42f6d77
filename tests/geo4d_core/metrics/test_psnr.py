"""PSNR against hand-computed cases."""

import numpy as np
import pytest

from geo4d_core.metrics import psnr


def test_identical_images_are_infinite():
    img = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    assert psnr(img, img) == float("inf")


def test_known_uniform_error_uint8():
    gt = np.full((4, 6, 3), 100, np.uint8)
    pred = gt + np.uint8(10)  # MSE 100
    assert psnr(pred, gt) == pytest.approx(10 * np.log10(255**2 / 100))


def test_float_range_required_and_used():
    gt = np.zeros((1, 2, 2, 3))
    pred = np.full_like(gt, 0.2)  # MSE 0.04 in [-1, 1] units
    with pytest.raises(ValueError, match="data_range"):
        psnr(pred, gt)
    assert psnr(pred, gt, data_range=2.0) == pytest.approx(10 * np.log10(4 / 0.04))


def test_per_frame_and_mean():
    gt = np.zeros((2, 3, 3, 3), np.uint8)
    pred = gt.copy()
    pred[0] = 1  # MSE 1
    pred[1] = 10  # MSE 100
    per = psnr(pred, gt, reduction="none")
    np.testing.assert_allclose(per, [10 * np.log10(255**2), 10 * np.log10(255**2 / 100)])
    assert psnr(pred, gt) == pytest.approx(per.mean())
