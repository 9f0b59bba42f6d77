"""World-model node parameters: the shipped YAML matches the dataclass, overrides, and clear errors."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from geo4d_ros.params import (
    NODE_NAME,
    ParamsError,
    WorldModelNodeParams,
    default_params_file,
    load_params_file,
)


def test_shipped_yaml_lists_every_parameter_with_its_default():
    path = default_params_file()
    block = yaml.safe_load(path.read_text())[NODE_NAME]["ros__parameters"]
    assert set(block) == {f.name for f in fields(WorldModelNodeParams)}
    assert load_params_file(path) == WorldModelNodeParams()
    text = path.read_text()
    for f in fields(WorldModelNodeParams):  # each parameter is preceded by its one-line comment
        line = next(i for i, row in enumerate(text.splitlines()) if row.strip().startswith(f"{f.name}:"))
        assert text.splitlines()[line - 1].strip().startswith("#"), f.name


def test_overrides_and_extrinsic_round_trip(tmp_path):
    X = np.eye(4)
    X[:3, :3] = Rotation.from_euler("xyz", [0.3, -1.2, 2.0]).as_matrix()
    X[:3, 3] = [0.4, -0.2, 0.9]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({NODE_NAME: {"ros__parameters": {
        "camera_n_extrinsic": WorldModelNodeParams.extrinsic_from_pose(X), "arms": ["left", "right"],
        "slop": 0.05, "horizon": 5}}}))
    p = load_params_file(path, overrides={"checkpoint": "/models/m", "sampler_steps": 3})
    np.testing.assert_allclose(p.X_BC_n, X, atol=1e-12)
    assert (p.arms, p.slop, p.horizon, p.checkpoint, p.sampler_steps) == (["left", "right"], 0.05, 5, "/models/m", 3)
    assert p.path_topic_for("left") == "/geo4d/plan/path/left"
    assert WorldModelNodeParams().path_topic_for("arm") == "/geo4d/plan/path"
    flat = tmp_path / "flat.yaml"
    flat.write_text("slop: 0.01\n")
    assert load_params_file(flat).slop == 0.01


@pytest.mark.parametrize("values, message", [
    ({"min_confidence": 1.5}, r"'min_confidence' must be in \[0, 1\]"),
    ({"tracker": "sift"}, "'tracker' must be 'icp' or 'foundationpose'"),
    ({"tracker": "foundationpose"}, "'foundationpose_mesh' must name the gripper mesh"),
    ({"slop": -1.0}, "'slop' must be >= 0"),
    ({"slop": "fast"}, "'slop' must be a number"),
    ({"sampler_steps": 2.5}, "'sampler_steps' must be an integer"),
    ({"camera_n_extrinsic": [0, 0, 0, 0, 0, 0, 2]}, "unit norm"),
    ({"camera_n_extrinsic": [0, 0, 0]}, "7 finite numbers"),
    ({"workspace_lo": [0, 0, 2.0]}, "must be below 'workspace_hi'"),
    ({"arms": ["a", "a"]}, "'arms' must be distinct"),
    ({"color_n_topic": ""}, "'color_n_topic' must be a non-empty topic"),
    ({"no_such_param": 1}, "unknown parameter"),
    ({"publish_predictions": 1}, "true or false"),
])
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(ParamsError, match=message):
        WorldModelNodeParams.from_mapping(values)


def test_bad_files_give_clear_errors(tmp_path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(ParamsError, match="cannot read parameter file"):
        load_params_file(missing)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"some_other_node": {"ros__parameters": {"x": 1}}}))
    with pytest.raises(ParamsError, match="no block for node 'geo4d_world_model'"):
        load_params_file(other)
