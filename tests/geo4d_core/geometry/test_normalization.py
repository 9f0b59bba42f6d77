"""Tests for geo4d_core.geometry.normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geo4d_core.geometry import (
    PointmapNormalizationConfig,
    denormalize_pointmap,
    depth_to_pointmap,
    normalize_pointmap,
)

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def configs(draw) -> PointmapNormalizationConfig:
    lo = [draw(st.floats(-3.0, 1.0)) for _ in range(3)]
    hi = [a + draw(st.floats(0.1, 5.0)) for a in lo]
    return PointmapNormalizationConfig(lo=tuple(lo), hi=tuple(hi), invalid_value=draw(st.floats(-2.0, 2.0)))


@SETTINGS
@given(data=st.data(), config=configs(), dtype=st.sampled_from([np.float32, np.float64]))
def test_normalize_denormalize_round_trip(geo, data, config, dtype):
    cam = data.draw(geo.camera())
    depth = data.draw(geo.depth(cam.height, cam.width, dtype=dtype))
    points, valid = depth_to_pointmap(depth, cam.K)
    normalized, in_range = normalize_pointmap(points, config, valid)
    assert normalized.shape == points.shape and normalized.dtype == dtype
    assert in_range.shape == valid.shape and in_range.dtype == bool
    # Invalid pixels hold the fill value, valid ones the affine map (whether in range or not).
    assert np.all(normalized[~valid] == np.asarray(config.invalid_value, dtype=dtype))
    lo, hi = np.array(config.lo), np.array(config.hi)
    expected = 2.0 * (points.astype(np.float64) - lo) / (hi - lo) - 1.0
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(normalized[valid], expected[valid], rtol=tol, atol=tol)
    expected_in = valid & np.all(np.abs(expected) <= 1.0, axis=-1)
    # float32 rounding may flip points within ~1e-6 of the box surface; compare the others.
    clear = np.all(np.abs(np.abs(expected) - 1.0) > 1e-5, axis=-1) | ~valid
    np.testing.assert_array_equal(in_range[clear], expected_in[clear])
    back = denormalize_pointmap(normalized, config, valid)
    np.testing.assert_allclose(back, points, rtol=tol, atol=tol * 10)
    assert np.all(back[~valid] == 0.0)


def test_box_corners_map_to_cube_corners():
    config = PointmapNormalizationConfig()
    points = np.array([[config.lo, config.hi, [0.0, 0.0, 1.5]]])  # (1, 3, 3): an H=1, W=3 pointmap
    normalized, in_range = normalize_pointmap(points, config)
    np.testing.assert_allclose(normalized[0], [[-1, -1, -1], [1, 1, 1], [0, 0, 0]], atol=1e-15)
    assert in_range.all()
    np.testing.assert_allclose(denormalize_pointmap(normalized, config), points, atol=1e-15)


def test_out_of_range_points_are_flagged_not_clipped():
    config = PointmapNormalizationConfig()  # x in [-1.5, 1.5] -> [-1, 1]
    points = np.array([[[3.0, 0.0, 1.5], [0.0, -3.0, 1.5], [0.0, 0.0, 4.5], [1.5, 1.5, 3.0]]])
    normalized, in_range = normalize_pointmap(points, config)
    np.testing.assert_allclose(normalized[0, 0], [2.0, 0.0, 0.0])  # not clipped to 1
    np.testing.assert_allclose(normalized[0, 1], [0.0, -2.0, 0.0])
    np.testing.assert_allclose(normalized[0, 2], [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(in_range, [[False, False, False, True]])  # the box boundary is in range
    np.testing.assert_allclose(denormalize_pointmap(normalized, config), points, atol=1e-15)


def test_invalid_and_non_finite_pixels_get_the_fill_value():
    config = PointmapNormalizationConfig(invalid_value=-3.0)
    points = np.array([[[0.1, 0.2, 1.0], [np.nan, 0.0, 1.0], [0.0, 0.0, np.inf], [0.3, 0.3, 0.5]]])
    valid = np.array([[True, True, True, False]])
    normalized, in_range = normalize_pointmap(points, config, valid)
    assert np.all(normalized[0, 1:] == -3.0)
    np.testing.assert_array_equal(in_range, [[True, False, False, False]])
    # Without a mask, non-finite points are still invalid.
    normalized2, in_range2 = normalize_pointmap(points, config)
    assert np.all(np.isfinite(normalized2))
    np.testing.assert_array_equal(in_range2, [[True, False, False, True]])
    with pytest.raises(ValueError, match="valid must have shape"):
        normalize_pointmap(points, config, valid[0])


@SETTINGS
@given(config=configs(), seed=st.integers(0, 2**32 - 1))
def test_torch_matches_numpy(config, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-4, 4, (2, 5, 6, 3))
    valid = rng.random((2, 5, 6)) < 0.8
    normalized, in_range = normalize_pointmap(points, config, valid)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        n_t, r_t = normalize_pointmap(torch.from_numpy(points).to(dtype), config, torch.from_numpy(valid))
        assert isinstance(n_t, torch.Tensor) and n_t.dtype == dtype and r_t.dtype == torch.bool
        np.testing.assert_allclose(n_t.numpy(), normalized, rtol=tol, atol=tol)
        if dtype == torch.float64:
            np.testing.assert_array_equal(r_t.numpy(), in_range)
        back_t = denormalize_pointmap(n_t, config, torch.from_numpy(valid))
        assert back_t.dtype == dtype
        np.testing.assert_allclose(back_t.numpy()[valid], points[valid], rtol=tol, atol=10 * tol)


def test_config_validation_and_dict_round_trip():
    config = PointmapNormalizationConfig(lo=[-1, -2, 0.5], hi=(1, 2, 2.5), invalid_value=-1)
    assert config.lo == (-1.0, -2.0, 0.5) and isinstance(config.lo, tuple)
    d = config.to_dict()
    assert d == {"lo": [-1.0, -2.0, 0.5], "hi": [1.0, 2.0, 2.5], "invalid_value": -1.0}
    assert PointmapNormalizationConfig.from_dict(d) == config
    assert PointmapNormalizationConfig.from_dict({}) == PointmapNormalizationConfig()
    assert PointmapNormalizationConfig().lo == (-1.5, -1.5, 0.0) and PointmapNormalizationConfig().hi == (1.5, 1.5, 3.0)
    with pytest.raises(ValueError, match="hi must be > lo.*violated on y"):
        PointmapNormalizationConfig(lo=(0.0, 1.0, 0.0), hi=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="violated on x, z"):
        PointmapNormalizationConfig(lo=(2.0, 0.0, 5.0), hi=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="3 entries"):
        PointmapNormalizationConfig(lo=(0.0, 0.0), hi=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        PointmapNormalizationConfig(hi=(1.0, float("inf"), 1.0))
    with pytest.raises(ValueError, match="unknown keys.*'scale'"):
        PointmapNormalizationConfig.from_dict({"scale": 2.0})
    with pytest.raises(ValueError, match="invalid_value must be finite"):
        PointmapNormalizationConfig(invalid_value=float("nan"))
