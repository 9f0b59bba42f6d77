"""train_stereo4d: one step learns, exact resume, atomic checkpoints, clear config errors, DDP on CPU."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import training.checkpointing as checkpointing
from geo4d_core.model.world_model import WorldModel
from training.checkpointing import latest_checkpoint, list_checkpoints
from training.config import ConfigError, TrainConfig, config_to_dict, load_config
from training.stereo4d_training import (StepBatchSampler, build_world_model, checkpoint_steps, combined_digest,
                                        tensor_digests, train)
from training.train_stereo4d import main, parse_args

REPO = Path(__file__).resolve().parents[2]


def _unet_state(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "unet" / "diffusion_pytorch_model.safetensors")


def test_one_step_changes_weights_and_loss_is_finite(tmp_path, train_overrides):
    cfg = load_config(TrainConfig, None, train_overrides(tmp_path / "run", "max_steps=1"))
    before = {k: v.clone() for k, v in build_world_model(cfg).unet.state_dict().items()}
    summary = train(cfg, progress=False)
    assert summary["steps"] == 1
    losses = summary["final_losses"]
    assert set(losses) == {"total", "rgb_n", "rgb_m", "pointmap_n", "pointmap_m"}
    assert all(np.isfinite(v) and v > 0 for v in losses.values())
    after = _unet_state(tmp_path / "run")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > 0.5 * len(before)
    # VAEs are frozen: identical to the ones training started from.
    model = WorldModel.from_pretrained(tmp_path / "run" / "model")
    fresh = build_world_model(cfg)
    for a, b in zip(model.rgb_vae.state_dict().values(), fresh.rgb_vae.state_dict().values()):
        assert torch.equal(a, b)
    recipe = json.loads((tmp_path / "run" / "model" / "data_recipe.json").read_text())
    assert recipe["heldout_episodes"] == ["episode_000002.zarr"]
    assert recipe["train_episodes"] == ["episode_000000.zarr", "episode_000001.zarr"]


@pytest.mark.parametrize("extra", [(), ("ema_decay=0.9", "optim.grad_accum=2", "data.cache_latents=false")],
                         ids=["cached", "ema+accum+pixels"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, train_overrides, extra):
    full = load_config(TrainConfig, None, train_overrides(tmp_path / "a", "max_steps=4", *extra))
    train(full, progress=False)
    part = load_config(TrainConfig, None, train_overrides(tmp_path / "b", "max_steps=2", *extra))
    train(part, progress=False)
    assert checkpoint_steps(tmp_path / "b") == [2]
    rest = load_config(TrainConfig, None, train_overrides(tmp_path / "b", "max_steps=4", *extra))
    summary = train(rest, resume="latest", progress=False)
    assert summary["steps"] == 4
    a, b = _unet_state(tmp_path / "a"), _unet_state(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # Resuming from the beginning is not the same run: the test above can fail.
    c = load_config(TrainConfig, None, train_overrides(tmp_path / "c", "max_steps=2", "seed=1", *extra))
    train(c, progress=False)
    assert any(not torch.equal(a[k], v) for k, v in _unet_state(tmp_path / "c").items())


def test_run_killed_mid_save_leaves_previous_checkpoint_loadable(tmp_path, train_overrides, monkeypatch):
    cfg = load_config(TrainConfig, None, train_overrides(tmp_path / "run", "max_steps=4"))
    real_save = checkpointing.save_checkpoint
    calls = {"n": 0}

    def dying_save(checkpoints_dir, step, write, state, keep=2):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_save(checkpoints_dir, step, write, state, keep)

        def half_write(tmp: Path) -> None:
            write(tmp)  # weights and optimizer are on disk...
            raise KeyboardInterrupt("killed while saving")  # ...but the checkpoint never completes

        return real_save(checkpoints_dir, step, half_write, state, keep)

    monkeypatch.setattr("training.stereo4d_training.save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["step_0000002"]
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]
    # The surviving checkpoint loads and training resumes from it.
    state = load_file(latest_checkpoint(tmp_path / "run" / "checkpoints") / "unet.safetensors")
    assert len(state) > 10
    monkeypatch.setattr("training.stereo4d_training.save_checkpoint", real_save)
    summary = train(cfg, resume="latest", progress=False)
    assert summary["steps"] == 4


@pytest.mark.parametrize("override, key", [
    ("optim.lr=-1", "optim.lr"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("mixed_precision=fp8", "mixed_precision"),
    ("model.height=100", "model.height"),
    ("model.preset=huge", "model.preset"),
    ("optim.batchsize=4", "optim.batchsize"),
    ("max_steps=ten", "max_steps"),
    ("model.vae_dir=/nonexistent", "model.vae_dir"),
])
def test_bad_config_value_gives_clear_error_before_training(tmp_path, tiny_dataset, override, key, capsys):
    out = tmp_path / "run"
    rc = main([f"data.root={tiny_dataset}", f"output_dir={out}", override])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad configuration" in err and key in err
    assert not out.exists()  # nothing started
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(TrainConfig, None, [override])


def test_config_yaml_files_load():
    for path in sorted((REPO / "training" / "configs").glob("*.yaml")):
        if path.name.startswith("vae"):
            continue
        # vae_dir / svd_path point at folders made by earlier steps; check everything else.
        cfg = load_config(TrainConfig, path, ["model.vae_dir=null", "model.svd_path=null"])
        assert cfg.optim.lr > 0
    svd = load_config(TrainConfig, REPO / "training/configs/svd_finetune.yaml", ["model.vae_dir=null"])
    assert (svd.optim.lr, svd.optim.betas, svd.optim.eps, svd.optim.weight_decay, svd.optim.batch_size) == (
        1e-6, (0.95, 0.999), 1e-8, 1e-6, 4)


@pytest.mark.parametrize("name", ["spatula_tiny", "spatula_tiny_no_mv"])
def test_committed_model_configs_are_the_yaml_files(name):
    """configs/<name>.yaml is the configuration models/<name> was trained with, apart from the run's folders."""
    used = json.loads((REPO / "models" / name / "train_summary.json").read_text())["config"]
    cfg = config_to_dict(load_config(TrainConfig, REPO / "training" / "configs" / f"{name}.yaml",
                                     ["model.vae_dir=null"]))
    for c in (used, cfg):  # machine-specific folders
        c.pop("output_dir")
        for key in ("root", "cache_dir"):
            c["data"].pop(key)
        c["model"].pop("vae_dir")
    assert cfg == used


@pytest.mark.parametrize("argv, resume, overrides", [
    (["--config", "c.yaml", "--resume", "max_steps=10"], "latest", ["max_steps=10"]),
    (["--resume", "max_steps=10", "max_minutes=null"], "latest", ["max_steps=10", "max_minutes=null"]),
    (["optim.lr=1e-3", "--resume", "max_steps=10", "--quiet"], "latest", ["optim.lr=1e-3", "max_steps=10"]),
    (["max_steps=10", "--resume"], "latest", ["max_steps=10"]),
    (["--resume", "latest", "max_steps=10"], "latest", ["max_steps=10"]),
    (["--resume", "runs/x/checkpoints/step_0000010", "max_steps=20"], "runs/x/checkpoints/step_0000010",
     ["max_steps=20"]),
    (["--config", "c.yaml", "max_steps=10"], None, ["max_steps=10"]),
])
def test_resume_followed_by_an_override_is_not_a_checkpoint_path(argv, resume, overrides):
    args = parse_args(argv)
    assert (args.resume, args.overrides) == (resume, overrides)


def test_resume_value_that_is_an_existing_path_stays_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("max_steps=10").mkdir()  # an odd but existing checkpoint folder name
    args = parse_args(["--resume", "max_steps=10", "max_minutes=null"])
    assert (args.resume, args.overrides) == ("max_steps=10", ["max_minutes=null"])


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    rc = main([f"data.root={tmp_path / 'nope'}", f"output_dir={tmp_path / 'run'}", "--quiet"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_step_batch_sampler_is_deterministic_and_shards_over_processes():
    single = StepBatchSampler(10, 4, seed=3)
    ranks = [StepBatchSampler(10, 4, seed=3, rank=r, world=2) for r in range(2)]
    for g in range(7):
        assert ranks[0].micro_batch(g) + ranks[1].micro_batch(g) == single.micro_batch(g)
    # each epoch is a permutation: 10 samples, positions 0..9 cover every index once
    flat = [i for g in range(5) for i in StepBatchSampler(10, 2, seed=3).micro_batch(g)]
    assert sorted(flat) == list(range(10))
    resumed = iter(StepBatchSampler(10, 4, seed=3, start=5))
    assert next(resumed) == single.micro_batch(5)
    assert StepBatchSampler(10, 4, seed=4).micro_batch(0) != single.micro_batch(0) or \
        StepBatchSampler(10, 4, seed=4).micro_batch(1) != single.micro_batch(1)
    with pytest.raises(ConfigError, match="processes"):
        StepBatchSampler(10, 3, seed=0, world=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_trains_ddp_with_identical_replicas(tmp_path, tiny_dataset):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    # `--multi_gpu` selects accelerate's torch.distributed launcher; with no GPU the two processes run DDP on
    # CPU over gloo (`--cpu` alone starts a single process unless MPI is configured; see training/README.md).
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()), str(REPO / "training" / "train_stereo4d.py"), "--quiet",
           f"data.root={tiny_dataset}", "data.heldout_episodes=1", "model.height=64", "model.width=80",
           f"output_dir={out}", "optim.batch_size=4", "max_steps=2", "threads=1", "optim.lr=1e-3"]
    # PYTHONFAULTHANDLER: if the run hangs, SIGABRT makes every process print its Python stacks.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        _, stderr = proc.communicate(timeout=300)  # ~15 s on 2 cores
    except subprocess.TimeoutExpired:
        # The ranks run in sessions of their own: signal the whole tree, ranks first (killing only the
        # launcher orphans them, and they keep the output pipes open).
        import psutil  # an accelerate dependency

        tree = psutil.Process(proc.pid).children(recursive=True)[::-1] + [psutil.Process(proc.pid)]
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGABRT)
        psutil.wait_procs(tree, timeout=30)
        _, stderr = proc.communicate()
        stacks = [line for line in stderr.splitlines()
                  if line.lstrip().startswith(("File ", "Current thread", "Thread 0x", "Fatal Python"))]
        pytest.fail("accelerate launch hung; stacks of its processes:\n" + "\n".join(stacks[-80:]))
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "model" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    # Every tensor of both processes' final U-Nets hashed byte for byte: identical replicas, equal to the
    # saved model (no EMA here), and different from the initial weights.
    assert summary["replica_mismatched_tensors"] == []
    digests = summary["replica_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    saved = tensor_digests(WorldModel.from_pretrained(out / "model").unet)
    assert combined_digest(saved) == digests[0]
    fresh = tensor_digests(build_world_model(load_config(TrainConfig, None, [
        f"data.root={tiny_dataset}", "model.height=64", "model.width=80"])).unet)
    assert fresh.keys() == saved.keys() and combined_digest(fresh) != digests[0]  # it trained


def test_rgb_only_variant_trains_without_pointmap_loss(tmp_path, train_overrides):
    cfg = load_config(TrainConfig, None, train_overrides(tmp_path / "run", "max_steps=1", "model.use_pointmaps=false"))
    losses = train(cfg, progress=False)["final_losses"]
    assert losses["total"] == pytest.approx(losses["rgb_n"] + losses["rgb_m"], rel=1e-6)
    model = WorldModel.from_pretrained(tmp_path / "run" / "model")
    assert model.config.use_pointmaps is False and model.config.edm.pointmap_weight == 0.0
