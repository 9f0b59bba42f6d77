"""Fixtures of the policy tests: the ray-cast hand scene and the hand model (as in the action tests)."""

from __future__ import annotations

import pytest

from geo4d_core.action.hand import default_hand_mesh, load_hand_model
from geo4d_core.action.render import HAND_LABEL, LEFT_LABEL, RIGHT_LABEL, HandScene, camera_looking_at


@pytest.fixture(scope="session")
def hand_scene():
    try:
        default_hand_mesh()
    except FileNotFoundError as err:  # the mesh lives in ../shared/drake_models beside the checkout
        pytest.fail(str(err))
    return HandScene()


@pytest.fixture(scope="session")
def hand_model():
    return load_hand_model()


__all__ = ["HandScene", "camera_looking_at", "HAND_LABEL", "LEFT_LABEL", "RIGHT_LABEL"]
