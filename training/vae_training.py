"""VAE training for the world model: pointmap-VAE fine-tuning, and the RGB VAE where no pretrained one exists.

The paper initialises the pointmap VAE from SVD's RGB VAE and fine-tunes it on pointmaps normalised into
the VAE's input range (`PointmapCodecConfig`). On CPU machines without SVD weights the small RGB VAE is
first trained from scratch on the episodes' images (`modality: rgb`), then copied and fine-tuned.

Loss: L1 reconstruction (of [-1, 1] images or normalised pointmaps) + `kl_weight` x KL. After training the
latent `scaling_factor` is set to 1 / std of the latents of training frames (so diffusion sees unit-scale
latents, as Stable Diffusion's 0.18215 does for its VAE).

Held-out evaluation (test cameras of held-out episodes): pointmaps - 3D error in millimetres of decoded
points on pixels valid in both truth and reconstruction, and validity accuracy; RGB - PSNR in dB.
Both are reported for the initial weights too, so the gain of fine-tuning is visible.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder
from tqdm.auto import tqdm

from geo4d_core.metrics.image import psnr
from geo4d_core.model.vae import LatentCodec, PointmapCodecConfig, build_vae, load_vae, pointmap_vae_from_rgb
from training.checkpointing import write_directory_atomically
from training.config import VaeTrainConfig, config_to_dict
from training.data import FrameDataset, split_episodes

__all__ = ["train_vae", "evaluate_vae", "latent_scaling_factor"]


def _decode(vae: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    if isinstance(vae, AutoencoderKLTemporalDecoder):
        return vae.decode(z, num_frames=z.shape[0]).sample
    return vae.decode(z).sample


def _batch(ds: FrameDataset, idx: np.ndarray, rng: np.random.Generator | None, crop: int | None = None) -> torch.Tensor:
    x = torch.stack([ds.item(int(i), rng) for i in idx])
    if crop is None or rng is None:
        return x
    H, W = x.shape[-2:]
    if crop > min(H, W):
        raise ValueError(f"crop {crop} is larger than the {H}x{W} frames")
    y0, x0 = int(rng.integers(0, H - crop + 1)), int(rng.integers(0, W - crop + 1))
    return x[..., y0:y0 + crop, x0:x0 + crop]


@torch.no_grad()
def latent_scaling_factor(vae: torch.nn.Module, ds: FrameDataset, frames: int = 128, seed: int = 0) -> float:
    """1 / std of the (unscaled) latent means over `frames` random frames of `ds`."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds), size=min(frames, len(ds)), replace=False)
    zs = [vae.encode(_batch(ds, idx[i:i + 16], rng)).latent_dist.mode() for i in range(0, len(idx), 16)]
    return float(1.0 / torch.cat(zs).float().std().clamp_min(1e-6))


@torch.no_grad()
def evaluate_vae(vae: torch.nn.Module, ds: FrameDataset, frames: int, codec: PointmapCodecConfig,
                 seed: int = 0) -> dict[str, float]:
    """Reconstruction quality on `frames` evenly spaced frames of `ds` (see module docstring)."""
    vae.eval()
    idx = np.linspace(0, len(ds) - 1, num=min(frames, len(ds))).round().astype(int)
    if ds.modality == "rgb":
        vals = []
        for i in range(0, len(idx), 16):
            x = _batch(ds, idx[i:i + 16], None)
            rec = _decode(vae, vae.encode(x).latent_dist.mode()).clamp(-1, 1)
            u8 = lambda a: ((a + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # noqa: E731
            vals.append(psnr(u8(rec), u8(x), reduction="none"))
        v = np.concatenate([np.atleast_1d(a) for a in vals])
        return {"psnr_db": float(np.mean(v)), "frames": int(len(idx))}
    lc = LatentCodec(vae, vae, codec)
    errs, agree, total = [], 0, 0
    for i in range(0, len(idx), 16):
        chunk = idx[i:i + 16]
        truth = [ds.points(int(j)) for j in chunk]
        pts = np.stack([p for p, _ in truth])
        valid = np.stack([v for _, v in truth])
        z = vae.encode(lc.normalize_points(pts, valid)).latent_dist.mode()
        rec, rec_valid = lc.points_from_normalized(_decode(vae, z))
        both = valid & rec_valid
        errs.append(np.linalg.norm(rec[both] - pts[both], axis=-1) * 1000.0)
        agree += int((rec_valid == valid).sum())
        total += valid.size
    e = np.concatenate(errs) if errs else np.zeros(0)
    return {
        "median_error_mm": float(np.median(e)) if e.size else math.nan,
        "mean_error_mm": float(np.mean(e)) if e.size else math.nan,
        "p90_error_mm": float(np.percentile(e, 90)) if e.size else math.nan,
        "validity_accuracy": agree / max(total, 1),
        "frames": int(len(idx)),
    }


def train_vae(cfg: VaeTrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train / fine-tune one VAE as configured; saves `<output_dir>/<modality>_vae` and returns the metrics."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    codec = PointmapCodecConfig()
    split = split_episodes(cfg.data.root, cfg.data.heldout_episodes)
    eval_eps = split.heldout or split.train
    train_ds = FrameDataset(split.train, cfg.modality, cameras=cfg.data.cameras,
                            cross_view_prob=cfg.cross_view_prob if cfg.modality == "pointmap" else 0.0, codec=codec)
    eval_ds = FrameDataset(eval_eps, cfg.modality, cameras="test", codec=codec)

    if cfg.init is not None:
        vae = load_vae(cfg.init)
        for t in list(vae.parameters()) + list(vae.buffers()):
            t.data = t.data.clone()
    else:
        vae = build_vae(cfg.preset)
    if cfg.modality == "pointmap":
        vae = pointmap_vae_from_rgb(vae)
    before = evaluate_vae(vae, eval_ds, cfg.eval_frames, codec) if cfg.init is not None else None

    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    losses: list[float] = []
    step = 0
    bar = tqdm(total=cfg.max_steps, desc=f"{cfg.modality} VAE", unit="step", disable=not progress)
    while step < cfg.max_steps:
        if cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            break
        x = _batch(train_ds, rng.integers(len(train_ds), size=cfg.batch_size), rng, cfg.crop)
        post = vae.encode(x).latent_dist
        rec = _decode(vae, post.sample(generator=gen))
        rec_loss = (rec - x).abs().mean()
        kl = post.kl().mean() / x[0].numel()
        loss = rec_loss + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(float(rec_loss.detach()))
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(l1=f"{np.mean(losses[-10:]):.4f}")
    bar.close()
    train_s = time.perf_counter() - t0

    vae.eval()
    vae.register_to_config(scaling_factor=latent_scaling_factor(vae, train_ds, seed=cfg.seed))
    after = evaluate_vae(vae, eval_ds, cfg.eval_frames, codec)
    out = Path(cfg.output_dir) / f"{cfg.modality}_vae"
    write_directory_atomically(out, vae.save_pretrained)
    metrics = {
        "modality": cfg.modality,
        "steps": step,
        "train_seconds": round(train_s, 1),
        "final_l1": float(np.mean(losses[-50:])) if losses else None,
        "scaling_factor": float(vae.config.scaling_factor),
        "heldout": {"episodes": [p.name for p in eval_eps], "cameras": "test", "before": before, "after": after},
        "data": split.to_dict(),
        "config": config_to_dict(cfg),
    }
    (Path(cfg.output_dir) / f"{cfg.modality}_vae_metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
