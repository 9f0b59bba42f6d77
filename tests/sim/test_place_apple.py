"""PlaceAppleFromBowlIntoBin: the bimanual scripted expert succeeds, a broken one is reported as failed."""

import pytest

from sim.expert import run_demonstration
from sim.tasks import make_task


@pytest.mark.slow
def test_scripted_demonstration_succeeds():
    result = run_demonstration(make_task("PlaceAppleFromBowlIntoBin"), seed=0)
    assert result.outcome.success, result.outcome.reason
    assert result.num_steps == 151


@pytest.mark.slow
def test_demonstration_that_never_grasps_fails():
    result = run_demonstration(make_task("PlaceAppleFromBowlIntoBin"), seed=0, sabotage="no_grasp")
    assert not result.outcome.success
    assert "apple" in result.outcome.reason
