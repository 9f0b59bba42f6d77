"""Typed training configurations: dataclasses loaded from YAML with `key.sub=value` command-line overrides.

Every value is checked before any work starts (`ConfigError` names the key, the value and what was
expected), so a typo in a config file fails in the first second, not after an hour of caching.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "VaeTrainConfig",
    "load_config",
    "apply_overrides",
    "config_to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


@dataclass
class DataConfig:
    """Where the episodes come from and how samples are drawn."""

    # Dataset folder of geo4d episodes (`geo4d sim generate --out ...`).
    root: str = "data/spatula"
    # The last N episodes (sorted by name) are held out from training, for evaluation.
    heldout_episodes: int = 2
    # Camera split the view pairs (n, m) are drawn from: "train" (the paper) or "all".
    cameras: str = "train"
    # Condition times t are taken every `stride` frames (t = 0, stride, ... <= T-1-h).
    stride: int = 1
    # Encode every frame once with the frozen VAEs and train on the stored latents (CPU training).
    cache_latents: bool = True
    # Folder of the latent cache; default <output_dir>/latent_cache.
    cache_dir: str | None = None
    # DataLoader worker processes (0 = load in the training process).
    num_workers: int = 0


@dataclass
class ModelConfig:
    """Which world model is trained and where its frozen VAEs come from."""

    # Named architecture: "tiny" / "small" (CPU) or "svd" (GPU servers).
    preset: str = "tiny"
    # Image height the model runs at, pixels (must equal the episodes' height).
    height: int = 128
    # Image width the model runs at, pixels (must equal the episodes' width).
    width: int = 160
    # Cross-view attention from view m's decoder to view n's; false = the "w/o MV attn" ablation.
    mv_attention: bool = True
    # Predict pointmaps; false = the RGB-only (SVD-style) baseline.
    use_pointmaps: bool = True
    # Folder with rgb_vae/ and pointmap_vae/ (from train_pointmap_vae.py); null = freshly initialised VAEs.
    vae_dir: str | None = None
    # World-model folder (save_pretrained) whose weights the training starts from; null = fresh.
    init_checkpoint: str | None = None
    # Local diffusers Stable Video Diffusion checkpoint to initialise from (GPU servers); null = none.
    svd_path: str | None = None
    # Recompute activations in the backward pass to save memory (SVD scale).
    gradient_checkpointing: bool = False


@dataclass
class OptimConfig:
    """AdamW settings; defaults are the paper's for fine-tuning SVD."""

    # Learning rate (paper: 1e-6 when fine-tuning SVD; 2e-4 for the tiny models from scratch, spatula_tiny.yaml).
    lr: float = 1e-6
    # AdamW betas.
    betas: tuple[float, float] = (0.95, 0.999)
    # AdamW epsilon.
    eps: float = 1e-8
    # AdamW decoupled weight decay.
    weight_decay: float = 1e-6
    # Samples per optimizer step over all processes (before gradient accumulation).
    batch_size: int = 4
    # Micro-batches accumulated per optimizer step.
    grad_accum: int = 1
    # Gradient-norm clipping (0 = off).
    max_grad_norm: float = 1.0
    # Linear learning-rate warm-up, optimizer steps.
    warmup_steps: int = 0


@dataclass
class TrainConfig:
    """`training/train_stereo4d.py`: the stereo 4D diffusion model on recorded episodes."""

    # Run folder: checkpoints/, logs/ (tensorboard), model/ (the final save_pretrained), latent_cache/.
    output_dir: str = "runs/stereo4d"
    # Seed of initial weights, data order, noise levels and noise (resume is exact).
    seed: int = 0
    # Optimizer steps to train.
    max_steps: int = 1000
    # Stop earlier after this many minutes of training (null = no time limit); the step reached is recorded.
    max_minutes: float | None = None
    # accelerate mixed precision: "no", "fp16" (GPU) or "bf16".
    mixed_precision: str = "no"
    # Exponential moving average of the U-Net weights (null = off); the final model uses the EMA weights.
    ema_decay: float | None = None
    # Save a resumable checkpoint every N optimizer steps (and at the end).
    checkpoint_every: int = 500
    # Resumable checkpoints kept on disk (oldest deleted first).
    keep_checkpoints: int = 2
    # Log losses to tensorboard / the progress bar every N steps.
    log_every: int = 10
    # Log a sample prediction (images) to tensorboard every N steps (0 = never).
    sample_every: int = 0
    # Probability of dropping the condition (classifier-free guidance training).
    condition_dropout: float = 0.1
    # Torch CPU threads per process (null = torch's default).
    threads: int | None = None
    # The episodes and sampling.
    data: DataConfig = field(default_factory=DataConfig)
    # The model and its frozen VAEs.
    model: ModelConfig = field(default_factory=ModelConfig)
    # The optimizer.
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class VaeTrainConfig:
    """`training/train_pointmap_vae.py`: pointmap VAE fine-tuning (or the RGB VAE where none is pretrained)."""

    # "pointmap": fine-tune a copy of the RGB VAE on pointmaps; "rgb": train the RGB VAE (CPU, no SVD VAE).
    modality: str = "pointmap"
    # Output folder; the VAE is saved to <output_dir>/<modality>_vae with metrics.json beside it.
    output_dir: str = "runs/vae"
    # Named VAE architecture ("tiny", "small", "svd") used when no --init is given.
    preset: str = "tiny"
    # RGB VAE folder to initialise from (required for modality "pointmap"; optional for "rgb").
    init: str | None = None
    # Seed of data order and initial weights.
    seed: int = 0
    # Optimizer steps.
    max_steps: int = 2000
    # Stop earlier after this many minutes (null = no limit).
    max_minutes: float | None = None
    # Images per step.
    batch_size: int = 8
    # AdamW learning rate.
    lr: float = 1e-3
    # Weight of the KL term against the L1 reconstruction loss.
    kl_weight: float = 1e-6
    # Probability that a training pointmap is another train camera's points moved into this camera's frame
    # (the targets of view m are in n's frame); 0 = only native pointmaps.
    cross_view_prob: float = 0.5
    # Train on random square crops of this many pixels (multiple of 8; null = whole frames). The VAEs are
    # convolutional, so crops cut the cost per sample several-fold; evaluation uses whole frames.
    crop: int | None = None
    # Held-out frames (test cameras of held-out episodes) evaluated at the end.
    eval_frames: int = 64
    # Torch CPU threads (null = torch's default).
    threads: int | None = None
    # The episodes (root, held-out count; image size must match the episodes).
    data: DataConfig = field(default_factory=DataConfig)


# ---------------------------------------------------------------------------------------------- loading
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check / convert one value against a dataclass field type (the small set of types used above)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def _build(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; valid keys: "
                          f"{sorted(prefix + k for k in known)}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML-friendly dict (tuples as lists) of a config dataclass."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `a.b=value` strings (value parsed as YAML) to a nested dict, in order."""
    out = dict(values)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-4)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key")
        node = out
        for p in parts[:-1]:
            child = node.get(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
            node[p] = dict(child)
            node = node[p]
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults <- YAML file <- overrides, then `validate_*` checks; raises ConfigError with the key."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
        values = loaded
    values = apply_overrides(values, overrides)
    cfg = _build(cls, values)
    _validate(cfg)
    return cfg


def _check(cond: bool, key: str, value: Any, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{key} = {value!r}: expected {expected}")


def _validate(cfg: Any) -> None:
    from geo4d_core.model.stereo_unet import UNET_PRESETS
    from geo4d_core.model.vae import VAE_DOWNSAMPLE, VAE_PRESETS

    data = cfg.data
    _check(data.heldout_episodes >= 0, "data.heldout_episodes", data.heldout_episodes, ">= 0")
    _check(data.cameras in ("train", "all"), "data.cameras", data.cameras, "'train' or 'all'")
    _check(data.stride >= 1, "data.stride", data.stride, ">= 1")
    _check(data.num_workers >= 0, "data.num_workers", data.num_workers, ">= 0")
    if cfg.threads is not None:
        _check(cfg.threads >= 1, "threads", cfg.threads, ">= 1 or null")
    if cfg.max_minutes is not None:
        _check(cfg.max_minutes > 0, "max_minutes", cfg.max_minutes, "> 0 or null")
    if isinstance(cfg, TrainConfig):
        m, o = cfg.model, cfg.optim
        _check(m.preset in UNET_PRESETS, "model.preset", m.preset, f"one of {sorted(UNET_PRESETS)}")
        for k in ("height", "width"):
            v = getattr(m, k)
            _check(v > 0 and v % VAE_DOWNSAMPLE == 0, f"model.{k}", v, f"a positive multiple of {VAE_DOWNSAMPLE}")
        _check(o.lr > 0, "optim.lr", o.lr, "> 0")
        _check(all(0 <= b < 1 for b in o.betas), "optim.betas", o.betas, "two numbers in [0, 1)")
        _check(o.eps > 0, "optim.eps", o.eps, "> 0")
        _check(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0")
        _check(o.batch_size >= 1, "optim.batch_size", o.batch_size, ">= 1")
        _check(o.grad_accum >= 1, "optim.grad_accum", o.grad_accum, ">= 1")
        _check(o.max_grad_norm >= 0, "optim.max_grad_norm", o.max_grad_norm, ">= 0")
        _check(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, ">= 0")
        _check(cfg.max_steps >= 1, "max_steps", cfg.max_steps, ">= 1")
        _check(cfg.mixed_precision in ("no", "fp16", "bf16"), "mixed_precision", cfg.mixed_precision,
               "'no', 'fp16' or 'bf16'")
        if cfg.ema_decay is not None:
            _check(0 < cfg.ema_decay < 1, "ema_decay", cfg.ema_decay, "in (0, 1) or null")
        _check(cfg.checkpoint_every >= 1, "checkpoint_every", cfg.checkpoint_every, ">= 1")
        _check(cfg.keep_checkpoints >= 1, "keep_checkpoints", cfg.keep_checkpoints, ">= 1")
        _check(cfg.log_every >= 1, "log_every", cfg.log_every, ">= 1")
        _check(cfg.sample_every >= 0, "sample_every", cfg.sample_every, ">= 0")
        _check(0 <= cfg.condition_dropout < 1, "condition_dropout", cfg.condition_dropout, "in [0, 1)")
        for k in ("vae_dir", "init_checkpoint", "svd_path"):
            p = getattr(m, k)
            _check(p is None or Path(p).is_dir(), f"model.{k}", p, "an existing folder or null")
        if m.vae_dir is not None:
            for sub in ("rgb_vae", "pointmap_vae"):
                _check((Path(m.vae_dir) / sub).is_dir(), "model.vae_dir", m.vae_dir,
                       f"a folder containing {sub}/ (train_pointmap_vae.py output)")
    elif isinstance(cfg, VaeTrainConfig):
        _check(cfg.modality in ("pointmap", "rgb"), "modality", cfg.modality, "'pointmap' or 'rgb'")
        _check(cfg.preset in VAE_PRESETS, "preset", cfg.preset, f"one of {sorted(VAE_PRESETS)}")
        if cfg.modality == "pointmap":
            _check(cfg.init is not None, "init", cfg.init, "the RGB VAE folder to copy (required for modality pointmap)")
        _check(cfg.init is None or Path(cfg.init).is_dir(), "init", cfg.init, "an existing VAE folder or null")
        _check(cfg.max_steps >= 1, "max_steps", cfg.max_steps, ">= 1")
        _check(cfg.batch_size >= 1, "batch_size", cfg.batch_size, ">= 1")
        _check(cfg.lr > 0, "lr", cfg.lr, "> 0")
        _check(cfg.kl_weight >= 0, "kl_weight", cfg.kl_weight, ">= 0")
        _check(0 <= cfg.cross_view_prob <= 1, "cross_view_prob", cfg.cross_view_prob, "in [0, 1]")
        _check(cfg.eval_frames >= 1, "eval_frames", cfg.eval_frames, ">= 1")
        if cfg.crop is not None:
            _check(cfg.crop >= 8 and cfg.crop % 8 == 0, "crop", cfg.crop, "a positive multiple of 8 or null")
