"""Fixtures shared by the action-extraction and policy tests: the ray-cast hand scene and the hand model."""

from __future__ import annotations

import pytest

from geo4d_core.action.hand import default_hand_mesh, load_hand_model
from geo4d_core.action.render import HandScene


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


