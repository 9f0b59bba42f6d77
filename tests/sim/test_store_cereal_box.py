"""StoreCerealBoxUnderShelf: the scripted expert stores the box in the compartment, a broken one (never
closing the gripper) is reported as failed."""

import numpy as np
import pytest

from sim.expert import run_demonstration
from sim.tasks import make_task
from sim.tasks.store_cereal_box_under_shelf import COMPARTMENT_HI, COMPARTMENT_LO


@pytest.mark.slow
def test_scripted_demonstration_succeeds():
    result = run_demonstration(make_task("StoreCerealBoxUnderShelf"), seed=0)
    assert result.outcome.success, result.outcome.reason
    p_W = result.object_poses["cereal_box"][:3, 3]  # the box body's origin is its centre
    assert np.all(p_W >= COMPARTMENT_LO) and np.all(p_W <= COMPARTMENT_HI), p_W


@pytest.mark.slow
def test_demonstration_that_never_grasps_fails():
    result = run_demonstration(make_task("StoreCerealBoxUnderShelf"), seed=0, sabotage="no_grasp")
    assert not result.outcome.success
    assert "cereal box" in result.outcome.reason
