"""Depth corruption used by the extraction evaluation."""

from __future__ import annotations

import numpy as np

from geo4d_core.action.evaluation import DepthCorruption, corrupt_depth


def test_noise_and_holes_have_the_requested_statistics():
    rng = np.random.default_rng(0)
    depth = np.full((4, 256, 320), 0.8, np.float32)
    depth[:, :10] = 0.0  # already invalid pixels stay invalid
    noisy = corrupt_depth(depth, DepthCorruption(noise_std=0.003), rng)
    valid = depth > 0
    assert abs(np.std(noisy[valid] - depth[valid]) - 0.003) < 2e-4
    assert np.all(noisy[~valid] == 0)
    holed = corrupt_depth(depth, DepthCorruption(hole_fraction=0.1, hole_size=8), rng)
    removed = np.mean(holed[valid] == 0)
    assert 0.08 < removed < 0.12
    # holes come in 8 x 8 blocks
    block = (holed[0, 16:24, 0:8] == 0)
    assert block.all() or not block.any()
    assert np.array_equal(corrupt_depth(depth, DepthCorruption(), rng), depth)
