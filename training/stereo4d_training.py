"""Training of the stereo 4D world model (`training/train_stereo4d.py` is the command-line front end).

- The paper's joint loss (`StereoDiffusion.loss`): EDM denoising of RGB latents of both views + λ x pointmap
  latents (view n native, view m in n's frame), gripper cells weighted x2; condition dropout for guidance.
- Distribution through accelerate (`accelerate launch training/train_stereo4d.py ...`): DDP over processes
  and nodes, mixed precision; gradient accumulation with `no_sync` on the accumulation micro-batches.
- Exact resume: the data order, noise levels and noise of step s are functions of (seed, s, process), so a
  checkpoint only needs the weights, the optimizer and the EMA; resuming reproduces an uninterrupted run
  bit for bit (CPU). Checkpoints are atomic (`training.checkpointing`).
- The VAEs are frozen; on CPU the latents are cached once (`training.data.build_latent_cache`).
- tensorboard logs of every loss term, learning rate, throughput, and sample predictions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from geo4d_core.model.configuration_world_model import WorldModelConfig
from geo4d_core.model.diffusion import LossTerms, StereoDiffusion
from geo4d_core.model.stereo_unet import LATENT_CHANNELS
from geo4d_core.model.vae import LatentCodec, load_vae, pointmap_vae_from_rgb
from geo4d_core.model.world_model import WorldModel
from training.checkpointing import list_checkpoints, read_state, resolve_resume, save_checkpoint
from training.config import ConfigError, TrainConfig, config_to_dict
from training.data import (
    EpisodeSplit,
    StereoLatentDataset,
    StereoPixelDataset,
    build_latent_cache,
    split_episodes,
)

__all__ = ["StereoLossModule", "StepBatchSampler", "world_model_config", "build_world_model", "train"]


# ---------------------------------------------------------------------------------------------- pieces
class StereoLossModule(torch.nn.Module):
    """The U-Net plus its loss in one module, so DDP sees every parameter used inside `forward`."""

    def __init__(self, unet: torch.nn.Module, config: WorldModelConfig):
        super().__init__()
        self.unet = unet
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
                drop: torch.Tensor | None) -> LossTerms:
        diffusion = StereoDiffusion(self.unet, self.config.edm)
        return diffusion.loss(batch["target_n"], batch["target_m"], batch["cond_n"], batch["cond_m"],
                              batch["gripper_n"], batch["gripper_m"], generator=generator, drop_condition=drop)


class StepBatchSampler(torch.utils.data.Sampler):
    """Micro-batches of sample indices as a pure function of (seed, micro-batch number, process).

    Global micro-batch g covers positions g*B .. g*B+B-1 of the concatenation of per-epoch permutations
    (epoch e permuted with seed (seed, e)); process r takes its B/world slice. Starting at `start` lets a
    resumed run continue exactly where the checkpoint left off.
    """

    def __init__(self, num_samples: int, global_micro_batch: int, *, seed: int, start: int = 0,
                 rank: int = 0, world: int = 1):
        if global_micro_batch % world:
            raise ConfigError(f"batch of {global_micro_batch} samples per micro-batch does not split over "
                              f"{world} processes (optim.batch_size / optim.grad_accum must be divisible by it)")
        self.n, self.B, self.seed, self.start, self.rank, self.world = (
            num_samples, global_micro_batch, seed, start, rank, world)
        self._perm: dict[int, np.ndarray] = {}

    def _index(self, pos: int) -> int:
        epoch = pos // self.n
        if epoch not in self._perm:
            self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return int(self._perm[epoch][pos % self.n])

    def micro_batch(self, g: int) -> list[int]:
        per = self.B // self.world
        first = g * self.B + self.rank * per
        return [self._index(p) for p in range(first, first + per)]

    def __iter__(self) -> Iterator[list[int]]:
        g = self.start
        while True:
            yield self.micro_batch(g)
            g += 1

    def __len__(self) -> int:  # infinite in practice; DataLoader only needs a number
        return 2**62


def world_model_config(cfg: TrainConfig, horizon: int = 10) -> WorldModelConfig:
    m = cfg.model
    return WorldModelConfig.preset(m.preset, height=m.height, width=m.width, mv_attention=m.mv_attention,
                                   use_pointmaps=m.use_pointmaps, horizon=horizon)


def _own(module: torch.nn.Module) -> torch.nn.Module:
    for t in list(module.parameters()) + list(module.buffers()):
        t.data = t.data.clone()
    return module


def build_world_model(cfg: TrainConfig) -> WorldModel:
    """The model to train: from an SVD checkpoint, a world-model folder, or fresh (seeded); VAEs from vae_dir."""
    m = cfg.model
    wcfg = world_model_config(cfg)
    if m.svd_path:
        model = WorldModel.from_svd(m.svd_path, wcfg)
    elif m.init_checkpoint:
        model = WorldModel.from_pretrained(m.init_checkpoint)
        model.config = wcfg
    else:
        model = WorldModel.from_config(wcfg, seed=cfg.seed)
    if m.vae_dir:
        rgb = _own(load_vae(Path(m.vae_dir) / "rgb_vae"))
        pm = _own(load_vae(Path(m.vae_dir) / "pointmap_vae"))
        model = WorldModel(wcfg, model.unet, rgb, pm, model.image_encoder)
    elif not (m.svd_path or m.init_checkpoint):
        model = WorldModel(wcfg, model.unet, model.rgb_vae, pointmap_vae_from_rgb(model.rgb_vae))
    for vae in (model.rgb_vae, model.pointmap_vae):
        vae.requires_grad_(False).eval()
    if m.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    return model


@torch.no_grad()
def pixels_to_latents(batch: dict[str, torch.Tensor], codec: LatentCodec) -> dict[str, torch.Tensor]:
    """A `StereoPixelDataset` batch -> the latent batch layout of `StereoLatentDataset` (frozen VAEs)."""
    B, V, h = batch["target_rgb"].shape[:3]
    H, W = batch["target_rgb"].shape[-2:]
    z_rgb = codec.encode_rgb_tensor(batch["target_rgb"].reshape(-1, 3, H, W)).reshape(B, V, h, LATENT_CHANNELS,
                                                                                      H // 8, W // 8)
    z_pm = codec.encode_pointmap_tensor(batch["target_points"].reshape(-1, 3, H, W)).reshape(
        B, V, h, LATENT_CHANNELS, H // 8, W // 8)
    c_rgb = codec.encode_rgb_tensor(batch["cond_rgb"].reshape(-1, 3, H, W)).reshape(B, V, LATENT_CHANNELS,
                                                                                   H // 8, W // 8)
    c_pm = codec.encode_pointmap_tensor(batch["cond_points"].reshape(-1, 3, H, W)).reshape(
        B, V, LATENT_CHANNELS, H // 8, W // 8)
    target = torch.cat([z_rgb, z_pm], dim=3)
    cond = torch.cat([c_rgb, c_pm], dim=2)
    return {"cond_n": cond[:, 0], "cond_m": cond[:, 1], "target_n": target[:, 0], "target_m": target[:, 1],
            "gripper_n": batch["gripper"][:, 0], "gripper_m": batch["gripper"][:, 1]}


def _rgb_only(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(batch)
    L = LATENT_CHANNELS
    out["cond_n"] = torch.cat([batch["cond_n"][:, :L], torch.zeros_like(batch["cond_n"][:, L:])], 1)
    out["cond_m"] = torch.cat([batch["cond_m"][:, :L], torch.zeros_like(batch["cond_m"][:, L:])], 1)
    out["target_n"] = torch.cat([batch["target_n"][:, :, :L], torch.zeros_like(batch["target_n"][:, :, L:])], 2)
    out["target_m"] = torch.cat([batch["target_m"][:, :, :L], torch.zeros_like(batch["target_m"][:, :, L:])], 2)
    return out


def _step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, micro, rank]).generate_state(1)[0]))


def tensor_digests(module: torch.nn.Module) -> dict[str, str]:
    """sha256 of every state-dict tensor (dtype, shape and raw bytes), by name: equal digests = equal tensors."""
    out = {}
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h = hashlib.sha256(f"{t.dtype} {tuple(t.shape)} ".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        out[name] = h.hexdigest()
    return out


def combined_digest(digests: dict[str, str]) -> str:
    """One sha256 over a `tensor_digests` result (names and per-tensor digests, sorted by name)."""
    return hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(digests.items())).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- training
def train(cfg: TrainConfig, *, resume: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train as configured (see module docstring); returns the run summary. Writes into cfg.output_dir:

    checkpoints/step_NNNNNNN/ (resumable), logs/ (tensorboard), model/ (the final world model with
    data_recipe.json and train_summary.json), latent_cache/ (when data.cache_latents).
    """
    from accelerate import Accelerator
    from accelerate.utils import broadcast, gather_object
    from diffusers.training_utils import EMAModel

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    # Without a GPU, processes started by `accelerate launch --multi_gpu` / torchrun run DDP on CPU (gloo).
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, log_with="tensorboard",
                              project_dir=str(out / "logs"), cpu=not torch.cuda.is_available())
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    o = cfg.optim
    if o.batch_size % o.grad_accum:
        raise ConfigError(f"optim.batch_size = {o.batch_size} is not divisible by optim.grad_accum = {o.grad_accum}")
    micro_global = o.batch_size // o.grad_accum
    if micro_global % world:
        raise ConfigError(f"optim.batch_size / optim.grad_accum = {micro_global} samples per micro-batch do not "
                          f"split over {world} processes")
    ckpt_dir = out / "checkpoints"
    start = resolve_resume(resume, ckpt_dir)

    split = split_episodes(cfg.data.root, cfg.data.heldout_episodes)
    model = build_world_model(cfg)
    wcfg = model.config
    for vae in (model.rgb_vae, model.pointmap_vae):
        vae.to(accelerator.device)
    dataset = _dataset(cfg, split, model, accelerator, progress)
    unet = model.unet.train().requires_grad_(True)
    module = StereoLossModule(unet, wcfg)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay) if cfg.ema_decay else None

    step, elapsed_before = 0, 0.0
    if start is not None:
        state = read_state(start)
        step, elapsed_before = int(state["step"]), float(state.get("train_seconds", 0.0))
        unet.load_state_dict(load_file(start / "unet.safetensors"))
        optimizer.load_state_dict(torch.load(start / "optimizer.pt", weights_only=True))
        if ema is not None:
            ema.load_state_dict(torch.load(start / "ema.pt", weights_only=False))
    module, optimizer = accelerator.prepare(module, optimizer)

    sampler = StepBatchSampler(len(dataset), micro_global, seed=cfg.seed, start=step * o.grad_accum,
                               rank=rank, world=world)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                                         persistent_workers=cfg.data.num_workers > 0)
    batches = iter(loader)
    if main:
        accelerator.init_trackers("stereo4d", config=_flat(config_to_dict(cfg)))

    def write_checkpoint(at: int, seconds: float) -> Path | None:
        path = None
        if main:
            net = accelerator.unwrap_model(module).unet

            def write(tmp: Path) -> None:
                save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
                          tmp / "unet.safetensors")
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
                if ema is not None:
                    torch.save(ema.state_dict(), tmp / "ema.pt")

            path = save_checkpoint(ckpt_dir, at, write, {"train_seconds": seconds, "world_size": world},
                                   keep=cfg.keep_checkpoints)
        accelerator.wait_for_everyone()
        return path

    t_start = time.perf_counter()
    seconds = lambda: elapsed_before + time.perf_counter() - t_start  # noqa: E731
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train stereo4d", unit="step", disable=not (progress and main))
    history: list[dict[str, float]] = []
    data_time = model_time = 0.0
    stopped_by_time = False
    while step < cfg.max_steps:
        lr = o.lr * min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else o.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        sums: dict[str, float] = {}
        for micro in range(o.grad_accum):
            t0 = time.perf_counter()
            batch = next(batches)
            if not cfg.data.cache_latents:
                batch = pixels_to_latents(batch, model.codec)
            if not wcfg.use_pointmaps:
                batch = _rgb_only(batch)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            gen = _step_generator(cfg.seed, step, micro, rank)
            b = batch["cond_n"].shape[0]
            drop = torch.rand(b, generator=gen) < cfg.condition_dropout if cfg.condition_dropout > 0 else None
            t1 = time.perf_counter()
            sync = contextlib.nullcontext() if micro == o.grad_accum - 1 else accelerator.no_sync(module)
            with sync:
                terms = module(batch, gen, drop)
                accelerator.backward(terms.total / o.grad_accum)
            for k, v in terms.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v / o.grad_accum
            data_time += t1 - t0
            model_time += time.perf_counter() - t1
        if o.max_grad_norm > 0:
            accelerator.clip_grad_norm_(module.parameters(), o.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(accelerator.unwrap_model(module).unet.parameters())
        step += 1
        bar.update(1)
        history.append(sums)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            recent = {k: float(np.mean([h[k] for h in history[-cfg.log_every:]])) for k in sums}
            accelerator.log({**{f"loss/{k}": v for k, v in recent.items()}, "lr": lr,
                             "time/data_s_per_step": data_time / step, "time/model_s_per_step": model_time / step},
                            step=step)
            bar.set_postfix(loss=f"{recent['total']:.4f}")
        if cfg.sample_every and step % cfg.sample_every == 0 and main:
            _log_sample(accelerator, model, accelerator.unwrap_model(module).unet, dataset, step)
        if step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            write_checkpoint(step, seconds())
        if cfg.max_minutes is not None and step % cfg.log_every == 0:
            flag = torch.tensor([float(seconds() > 60 * cfg.max_minutes)], device=accelerator.device)
            if bool(broadcast(flag)[0] > 0):
                stopped_by_time = True
                break
    bar.close()
    train_seconds = seconds()
    write_checkpoint(step, train_seconds)

    # DDP keeps the replicas identical; check it exactly: every process hashes the bytes of every tensor of
    # its U-Net state dict, and the per-tensor hashes of all processes are compared.
    net = accelerator.unwrap_model(module).unet
    digests = tensor_digests(net)
    replica_digests = gather_object([digests]) if world > 1 else [digests]
    replica_sha256 = [combined_digest(d) for d in replica_digests]
    mismatched = [k for k in sorted(set().union(*replica_digests)) if len({d.get(k) for d in replica_digests}) > 1]
    summary: dict[str, Any] = {}
    if main:
        if ema is not None:
            ema.store(net.parameters())
            ema.copy_to(net.parameters())
        final = WorldModel(wcfg, net.eval(), model.rgb_vae, model.pointmap_vae, model.image_encoder)
        model_dir = final.save_pretrained(out / "model")
        if ema is not None:
            ema.restore(net.parameters())
        last = {k: float(np.mean([h[k] for h in history[-50:]])) for k in history[-1]} if history else {}
        summary = {
            "steps": step,
            "stopped_by_time_limit": stopped_by_time,
            "train_seconds": round(train_seconds, 1),
            "processes": world,
            "replica_sha256": replica_sha256,
            "replica_mismatched_tensors": mismatched,
            "samples_seen": step * o.batch_size,
            "final_losses": last,
            "data_seconds_per_step": data_time / max(len(history), 1),
            "model_seconds_per_step": model_time / max(len(history), 1),
            "parameters": final.num_parameters(),
            "config": config_to_dict(cfg),
        }
        (model_dir / "train_summary.json").write_text(json.dumps(summary, indent=1))
        recipe = {**split.to_dict(), "cameras": cfg.data.cameras, "horizon": wcfg.horizon,
                  "samples": len(dataset), "stride": cfg.data.stride}
        ds_meta = Path(cfg.data.root) / "dataset.json"
        if ds_meta.is_file():
            recipe["dataset"] = json.loads(ds_meta.read_text())
        (model_dir / "data_recipe.json").write_text(json.dumps(recipe, indent=1))
        summary["model_dir"] = str(model_dir)
    # Every process leaves together: a process that destroys the process group (end_training) while
    # another is still saving can hang the run at exit (pytorch/pytorch#75097).
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _dataset(cfg: TrainConfig, split: EpisodeSplit, model: WorldModel, accelerator, progress: bool):
    d, m = cfg.data, cfg.model
    kw = dict(height=m.height, width=m.width, cameras=d.cameras, stride=d.stride)
    if not d.cache_latents:
        return StereoPixelDataset(split.train, model.config.horizon, codec=model.config.pointmap, **kw)
    cache = Path(d.cache_dir) if d.cache_dir else Path(cfg.output_dir) / "latent_cache"
    if accelerator.is_main_process:
        build_latent_cache(split.train, model.codec, cache, cameras=d.cameras, progress=progress)
    accelerator.wait_for_everyone()
    return StereoLatentDataset(split.train, model.config.horizon, cache, **kw)


@torch.no_grad()
def _log_sample(accelerator, model: WorldModel, unet: torch.nn.Module, dataset, step: int) -> None:
    """Predict the first training sample with the current weights and log true / predicted frames."""
    from geo4d_core.model.export import colorize_depth, frame_strip
    from geo4d_core.model.world_model import Observation
    from training.data import load_clip

    key = dataset.keys[0]
    reader = dataset.reader(key.episode)
    clip = {v: reader.frame(c, list(range(key.t, key.t + model.config.horizon + 1)))
            for v, c in (("n", key.cam_n), ("m", key.cam_m))}
    obs = {v: Observation(clip[v].color[0], clip[v].depth[0], reader.cameras[c].K)
           for v, c in (("n", key.cam_n), ("m", key.cam_m))}
    was_training = unet.training
    unet.eval()
    live = WorldModel(model.config, unet, model.rgb_vae, model.pointmap_vae, model.image_encoder)
    pred = live.predict(obs["n"], obs["m"], steps=10, seed=0)
    unet.train(was_training)
    truth_m_in_n = load_clip(reader, key, model.config.horizon)["points_m_in_n"][..., 2]
    rows = [frame_strip(clip["n"].color[1:]), frame_strip(pred.rgb_n), frame_strip(clip["m"].color[1:]),
            frame_strip(pred.rgb_m), frame_strip(colorize_depth(clip["n"].depth[1:])),
            frame_strip(colorize_depth(pred.depth_n)), frame_strip(colorize_depth(truth_m_in_n)),
            frame_strip(colorize_depth(np.where(pred.valid_m, pred.points_m_in_n[..., 2], 0.0)))]
    image = np.concatenate(rows, axis=0)
    tracker = accelerator.get_tracker("tensorboard", unwrap=True)
    tracker.add_image("sample/true_vs_predicted", image, step, dataformats="HWC")


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) and not (isinstance(v, float) and math.isnan(v)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


def checkpoint_steps(output_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints of a run (for tests and tooling)."""
    return [int(read_state(p)["step"]) for p in list_checkpoints(Path(output_dir) / "checkpoints")]
