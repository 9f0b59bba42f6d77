"""The Drake station: builds for each task, renders colour/depth/labels that agree with the geometry."""

import numpy as np
import pytest

from geo4d_core.data.cameras import SHELL_BOX_HI, SHELL_BOX_LO, SHELL_RADIUS, sample_cameras
from geo4d_core.geometry import depth_to_pointmap, project_world_points, transform_points
from sim.scene import BACKGROUND_LABEL, HOME_Q, MAX_FINGER_WIDTH, build_station
from sim.tasks import make_task, task_names

H, W = 96, 128


@pytest.fixture(scope="module")
def rendered():
    """The spatula station with 3 sampled cameras, arm at home, objects placed; one rendered frame."""
    task = make_task("PutSpatulaOnTable")
    cams = sample_cameras(np.random.default_rng(7), 3, height=H, width=W, num_test=1)
    station = build_station(task, cams)
    context = station.diagram.CreateDefaultContext()
    plant_context = station.plant.GetMyMutableContextFromRoot(context)
    arm = station.arms[0]
    station.plant.SetPositions(plant_context, arm.instance, np.concatenate([HOME_Q, [MAX_FINGER_WIDTH / 2] * 2]))
    task.randomize(station, plant_context, np.random.default_rng(0))
    frames = {c.name: station.render(context, c.name) for c in cams}
    return station, cams, frames


@pytest.mark.parametrize("name", task_names())
def test_each_task_builds(name):
    station = build_station(make_task(name))
    assert station.plant.is_finalized()
    assert len(station.arms) >= 1
    for part in ("hand", "left_finger", "right_finger", "table", "gripper", *station.objects):
        assert station.label_parts[part], part


def test_camera_samples_satisfy_the_shell_and_look_at_the_workspace():
    cams = sample_cameras(np.random.default_rng(3), 16, height=H, width=W, num_test=4)
    assert [c.split for c in cams].count("test") == 4
    for cam in cams:
        p = cam.X_WC[:3, 3]
        assert SHELL_RADIUS[0] <= np.linalg.norm(p) <= SHELL_RADIUS[1]
        assert np.all(p >= SHELL_BOX_LO) and np.all(p <= SHELL_BOX_HI)
        uv, z, inside = project_world_points(np.zeros(3), cam.K, cam.X_WC, H, W)
        assert inside and z > 0.5


def test_rendered_images_have_the_camera_shape_and_types(rendered):
    _, cams, frames = rendered
    for cam in cams:
        f = frames[cam.name]
        assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8
        assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
        assert f.label.shape == (H, W) and f.label.dtype == np.int32
        assert f.color.std() > 5  # not a blank image


def test_table_top_depth_lifts_to_the_table_height(rendered):
    station, cams, frames = rendered
    table_labels = station.label_parts["table"]
    for cam in cams:
        f = frames[cam.name]
        points_C, valid = depth_to_pointmap(f.depth, cam.K)
        p_W = transform_points(cam.X_WC, points_C)
        table = np.isin(f.label, table_labels) & valid
        # Top face pixels: away from the slab's edges (its sides are 4 cm tall).
        top = table & (np.abs(p_W[..., 0]) < 0.55) & (np.abs(p_W[..., 1]) < 0.4) & (p_W[..., 2] > -0.01)
        assert top.sum() > 0.2 * H * W
        np.testing.assert_allclose(p_W[top][:, 2], 0.0, atol=0.002)


def test_labels_map_to_semantic_parts(rendered):
    station, cams, frames = rendered
    seen = set(np.unique(np.concatenate([frames[c.name].label.ravel() for c in cams])))
    assert BACKGROUND_LABEL in station.label_parts["background"]
    for part in ("table", "spatula", "crock", "robot"):
        assert seen & set(station.label_parts[part]), f"{part} not visible in any camera"
    # Pixels labelled "spatula" lift to points on the spatula: within its bounding box.
    context = station.diagram.CreateDefaultContext()
    plant_context = station.plant.GetMyMutableContextFromRoot(context)
    make_task("PutSpatulaOnTable").randomize(station, plant_context, np.random.default_rng(0))
    X_SW = station.plant.EvalBodyPoseInWorld(plant_context, station.objects["spatula"]).inverse().GetAsMatrix4()
    for cam in cams:
        f = frames[cam.name]
        mask = np.isin(f.label, station.label_parts["spatula"])
        if not mask.any():
            continue
        points_C, _ = depth_to_pointmap(f.depth, cam.K)
        p_S = transform_points(X_SW @ cam.X_WC, points_C[mask])
        assert np.all(np.abs(p_S[:, 0]) < 0.035) and np.all(np.abs(p_S[:, 1]) < 0.01)
        assert np.all((p_S[:, 2] > -0.003) & (p_S[:, 2] < 0.30))
