"""sim.evaluation: trial bookkeeping (resume, shards, settings), success statistics and the Table 2 report.

The closed-loop trials themselves run in tests/sim/test_closed_loop.py; here `run_one_trial` is replaced
by a function that writes a result record, to exercise the runner's bookkeeping in milliseconds.
"""

import json

import pytest

import sim.evaluation as evaluation
from geo4d_core.cli import main
from sim.evaluation import EvalConfig, results_markdown, run_evaluation, summarize, trial_path, wilson_interval

TASK = "PutSpatulaOnTable"


def record(task, policy, seed, success, stop=None, reason="", cycles=2):
    stop = stop or ("success" if success else "timeout")
    timings = {"observe": 0.2, "predict": 3.0, "extract": 5.0, "execute": 1.0, "record": 0.0}
    return {"config": {"task": task, "policy": policy, "seed": seed}, "success": success, "stop": stop,
            "reason": reason, "sim_seconds": 3.0, "wall_seconds": 20.0, "camera_sources": ["cam12", "cam13"],
            "placement_seed": 1, "cycles": [{"timings": timings}] * cycles, "robot_timings": {},
            "poses_finite": True, "files": {}}


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(9, 10)
    assert lo == pytest.approx(0.5958, abs=1e-3) and hi == pytest.approx(0.9821, abs=1e-3)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_counts_rates_failures_and_cycle_times():
    results = [record(TASK, "oracle", s, s != 3) for s in range(10)]
    results[3]["reason"] = "timed out after 30.0 s: spatula not lying on the table (centre of mass at z = 0.1 m)"
    results += [record(TASK, "world_model", 0, False, "safety_stop",
                       "safety stop: 3 plans in a row not executed; last: step 0: angular speed 4 rad/s", 3)]
    summary = summarize(results)
    rows = {(r["task"], r["policy"]): r for r in summary["rows"]}
    oracle = rows[(TASK, "oracle")]
    assert (oracle["trials"], oracle["successes"]) == (10, 9) and oracle["success_rate"] == pytest.approx(0.9)
    assert oracle["ci95"] == pytest.approx(list(wilson_interval(9, 10)))
    assert oracle["failures"] == {"timeout: spatula not lying on the table": 1}
    assert oracle["cycle_wall_s"]["total"] == pytest.approx(9.2)
    wm = rows[(TASK, "world_model")]
    assert wm["failures"] == {"safety stop (angular speed)": 1} and wm["mean_cycles"] == 3
    md = results_markdown(summary)
    assert f"| policy | {TASK} |" in md
    assert "| world_model | 0/1 (0%" in md and "| oracle | 9/10 (90%, CI 60%–98%) |" in md
    assert md.index("| world_model |") < md.index("| oracle |")  # rows in POLICIES order
    assert "safety stop (angular speed) ×1" in md


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        EvalConfig(tasks=["Nope"], policy="oracle", trials=1, out=tmp_path)
    with pytest.raises(ValueError, match="unknown policy"):
        EvalConfig(tasks=[TASK], policy="random", trials=1, out=tmp_path)
    with pytest.raises(ValueError, match="needs --checkpoint"):
        EvalConfig(tasks=[TASK], policy="world_model", trials=1, out=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        EvalConfig(tasks=[TASK], policy="world_model", trials=1, out=tmp_path, checkpoint=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="shard"):
        EvalConfig(tasks=[TASK], policy="oracle", trials=1, out=tmp_path, shard=(2, 2))
    with pytest.raises(ValueError, match="chunk"):
        EvalConfig(tasks=[TASK], policy="oracle", trials=1, out=tmp_path, chunk=0)


def test_shards_split_the_trial_indices():
    cfgs = [EvalConfig(tasks=[TASK], policy="oracle", trials=7, out="x", shard=(k, 3)) for k in range(3)]
    assert [c.indices() for c in cfgs] == [[0, 3, 6], [1, 4], [2, 5]]
    assert cfgs[1].trial_config(TASK, 4).seed == 4
    assert EvalConfig(tasks=[TASK], policy="oracle", trials=1, out="x", seed=100).trial_config(TASK, 2).seed == 102


@pytest.fixture
def fake_trials(monkeypatch):
    """Replace the trial itself by a record writer; returns the list of (task, seed) it ran."""
    ran = []

    def fake(trial, path):
        ran.append((trial.task, trial.seed))
        d = record(trial.task, trial.policy, trial.seed, trial.seed % 2 == 0)
        d["config"] = trial.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d))
        return d

    monkeypatch.setattr(evaluation, "run_one_trial", fake)
    return ran


def test_extraction_overrides_change_only_the_named_settings(tmp_path):
    from geo4d_core.policy import PolicyConfig

    cfg = EvalConfig(tasks=[TASK], policy="oracle", trials=1, out=tmp_path,
                     extraction_overrides={"icp.crop_margin_z": 0, "interpolate_gaps": False,
                                           "icp.icp_distances": [0.02, 0.004]})
    ext = cfg.trial_config(TASK, 0).policy_config.extraction
    default = PolicyConfig().extraction
    assert ext.icp.crop_margin_z == 0.0 and isinstance(ext.icp.crop_margin_z, float)
    assert ext.interpolate_gaps is False and ext.icp.icp_distances == (0.02, 0.004)
    # everything else keeps the policy's values
    assert ext.min_confidence == default.min_confidence and ext.gripper == default.gripper
    assert ext.icp.register_guess_search == default.icp.register_guess_search
    assert default.icp.crop_margin_z > 0 and default.interpolate_gaps is True  # the default is not modified
    # --gripper-rule changes the rule only, not the policy's hysteresis and confirmations
    ruled = EvalConfig(tasks=[TASK], policy="oracle", trials=1, out=tmp_path, gripper_rule="centroid")
    gripper = ruled.trial_config(TASK, 0).policy_config.extraction.gripper
    assert gripper.rule == "centroid" and gripper.hysteresis == default.gripper.hysteresis > 0
    assert gripper.confirm == default.gripper.confirm > 1
    for bad, match in [({"icp.nope": 1}, "no field 'nope'"), ({"nope": 1}, "no field 'nope'"),
                       ({"interpolate_gaps": 1}, "interpolate_gaps = 1"),
                       ({"icp.crop_margin_z": "a"}, "crop_margin_z = 'a'"),
                       ({"min_confidence.x": 1}, "not a section"),
                       ({"min_confidence": -1}, "min_confidence must be")]:
        with pytest.raises(ValueError, match=match):
            EvalConfig(tasks=[TASK], policy="oracle", trials=1, out=tmp_path, extraction_overrides=bad)


def test_cli_extraction_overrides_reach_the_trials_and_are_recorded(tmp_path, fake_trials):
    assert main(["sim", "eval", "--task", TASK, "--policy", "oracle", "--trials", "1", "--out", str(tmp_path),
                 "--trial-timeout", "0", "--extraction", "icp.crop_margin_z=0", "interpolate_gaps=true"]) == 0
    settings = json.loads((tmp_path / TASK / "oracle" / "settings.json").read_text())
    ext = settings["policy_config"]["extraction"]
    assert ext["icp"]["crop_margin_z"] == 0.0 and ext["interpolate_gaps"] is True
    # adding trials with other extraction settings to the same folder is refused
    assert main(["sim", "eval", "--task", TASK, "--policy", "oracle", "--trials", "2", "--out", str(tmp_path),
                 "--trial-timeout", "0"]) == 2
    assert main(["sim", "eval", "--task", TASK, "--policy", "oracle", "--trials", "1", "--out", str(tmp_path),
                 "--extraction", "crop"]) == 2


def test_run_is_resumable_and_reruns_only_errored_trials(tmp_path, fake_trials):
    cfg = EvalConfig(tasks=[TASK], policy="oracle", trials=4, out=tmp_path, trial_timeout=0)
    summary = run_evaluation(cfg, progress=False)
    assert fake_trials == [(TASK, 0), (TASK, 1), (TASK, 2), (TASK, 3)]
    assert summary["rows"][0]["successes"] == 2
    assert (tmp_path / "results.md").read_text().count("2/4") == 1
    # A second run finds every trial done; an errored trial (a crash, not a policy failure) runs again.
    err = trial_path(tmp_path, TASK, "oracle", 2)
    err.write_text(json.dumps({**json.loads(err.read_text()), "stop": "error", "success": False}))
    fake_trials.clear()
    run_evaluation(cfg, progress=False)
    assert fake_trials == [(TASK, 2)]
    # More trials in the same folder run only the new ones; other settings are refused.
    fake_trials.clear()
    run_evaluation(EvalConfig(tasks=[TASK], policy="oracle", trials=6, out=tmp_path, trial_timeout=0), progress=False)
    assert fake_trials == [(TASK, 4), (TASK, 5)]
    with pytest.raises(ValueError, match="other settings.*chunk"):
        run_evaluation(EvalConfig(tasks=[TASK], policy="oracle", trials=6, out=tmp_path, chunk=5), progress=False)


def test_shards_in_one_folder_add_up(tmp_path, fake_trials):
    for k in range(2):
        run_evaluation(EvalConfig(tasks=[TASK], policy="scripted", trials=5, out=tmp_path, shard=(k, 2),
                                  trial_timeout=0), progress=False)
    assert sorted(s for _, s in fake_trials) == [0, 1, 2, 3, 4]
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["rows"][0]["trials"] == 5 and summary["rows"][0]["successes"] == 3


def test_cli_eval_and_report_errors(tmp_path, capsys):
    assert main(["sim", "eval", "--task", "Nope", "--policy", "oracle", "--trials", "1", "--out", str(tmp_path)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["sim", "report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sim", "report", str(tmp_path)]) == 2
    assert "no trial results" in capsys.readouterr().err
