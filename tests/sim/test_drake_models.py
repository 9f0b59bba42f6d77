"""`package://drake_models` resolves to the local model set without any network access."""

from pathlib import Path

import pytest

from sim import drake_models

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "drake_models"


def test_env_var_wins_and_must_be_valid(monkeypatch, tmp_path):
    monkeypatch.setenv(drake_models.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="package.xml"):
        drake_models.local_drake_models_dir()
    (tmp_path / "package.xml").write_text("<package/>")
    assert drake_models.local_drake_models_dir() == tmp_path.resolve()


def test_shared_folder_is_found_when_present(monkeypatch):
    monkeypatch.delenv(drake_models.ENV_VAR, raising=False)
    found = drake_models.local_drake_models_dir()
    if SHARED.is_dir():
        assert found == SHARED
    else:
        assert found is None


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/drake_models beside the checkout")
def test_panda_loads_from_the_local_copy():
    from pydrake.multibody.parsing import Parser
    from pydrake.multibody.plant import MultibodyPlant

    plant = MultibodyPlant(time_step=0.0)
    parser = Parser(plant)
    assert drake_models.map_drake_models(parser) == SHARED
    assert Path(parser.package_map().GetPath("drake_models")) == SHARED
    parser.AddModelsFromUrl("package://drake_models/franka_description/urdf/panda_arm_hand.urdf")
    plant.WeldFrames(plant.world_frame(), plant.GetFrameByName("panda_link0"))
    plant.Finalize()
    for body in ["panda_link0", "panda_link8", "panda_hand", "panda_leftfinger", "panda_rightfinger"]:
        assert plant.HasBodyNamed(body), body
    assert plant.num_positions() == 9  # 7 arm joints + 2 fingers
