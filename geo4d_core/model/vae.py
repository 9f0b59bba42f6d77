"""The RGB VAE, the pointmap VAE initialised from it, and conversions between arrays and latents.

* RGB images (T, H, W, 3) uint8 <-> latents (T, 4, H/8, W/8), scaled by the VAE's `scaling_factor`.
* Pointmaps (T, H, W, 3) float metres in a named frame <-> latents of the same shape. Points are mapped
  into the VAE's [-1, 1] input range with the metric box of `PointmapNormalizationConfig` (DESIGN.md §4);
  invalid pixels are written as the box's lower corner (normalised -1, i.e. z = lo_z), and on decoding
  a pixel is valid when its normalised z is above `invalid_below`.

The `svd` preset is SVD's `AutoencoderKLTemporalDecoder` (loaded from a checkpoint on GPU servers);
`tiny` and `small` are `AutoencoderKL`s small enough to train and run on 2 CPU cores. All share the
8x spatial downsampling and 4 latent channels of the SVD VAE.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder

from geo4d_core.geometry.normalization import (
    PointmapNormalizationConfig,
    denormalize_pointmap,
    normalize_pointmap,
)

__all__ = [
    "VAE_PRESETS",
    "build_vae",
    "pointmap_vae_from_rgb",
    "load_vae",
    "PointmapCodecConfig",
    "LatentCodec",
    "VAE_DOWNSAMPLE",
]

VAE_DOWNSAMPLE = 8  # pixels per latent cell along each axis

VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        block_out_channels=(8, 16, 32, 32), layers_per_block=1, norm_num_groups=8, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ),
    "small": dict(
        block_out_channels=(32, 64, 64, 64), layers_per_block=1, norm_num_groups=16, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    ),
    # SVD's VAE: AutoencoderKLTemporalDecoder's defaults are the released img2vid VAE.
    "svd": dict(),
}


def build_vae(preset: str) -> AutoencoderKL | AutoencoderKLTemporalDecoder:
    """A freshly initialised RGB VAE of a named configuration."""
    if preset not in VAE_PRESETS:
        raise ValueError(f"unknown VAE configuration {preset!r}; expected one of {sorted(VAE_PRESETS)}")
    if preset == "svd":
        return AutoencoderKLTemporalDecoder(**VAE_PRESETS[preset])
    return AutoencoderKL(in_channels=3, out_channels=3, **VAE_PRESETS[preset])


def load_vae(path: str | Path, **kwargs: Any) -> AutoencoderKL | AutoencoderKLTemporalDecoder:
    """Load a saved VAE folder, choosing the diffusers class recorded in its config.json."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} missing: not a diffusers VAE folder")
    name = json.loads(config_file.read_text()).get("_class_name")
    classes = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLTemporalDecoder": AutoencoderKLTemporalDecoder}
    if name not in classes:
        raise ValueError(f"{config_file}: unsupported VAE class {name!r}; expected one of {sorted(classes)}")
    return classes[name].from_pretrained(str(path), **kwargs)


def pointmap_vae_from_rgb(rgb_vae: torch.nn.Module) -> torch.nn.Module:
    """The pointmap VAE before fine-tuning: the RGB VAE's architecture with a copy of its weights."""
    vae = copy.deepcopy(rgb_vae)
    vae.requires_grad_(True)
    return vae


@dataclass
class PointmapCodecConfig:
    """How pointmaps are put into and read back from the pointmap VAE's input range."""

    # Metric box (in the pointmap's frame, camera n) mapped onto [-1, 1]^3; invalid pixels -> its lo corner.
    normalization: PointmapNormalizationConfig = field(
        default_factory=lambda: PointmapNormalizationConfig(invalid_value=-1.0)
    )
    # A decoded pixel is valid when its normalised z exceeds this (default -0.9 = 0.15 m with the default box).
    invalid_below: float = -0.9

    def to_dict(self) -> dict[str, Any]:
        return {"normalization": self.normalization.to_dict(), "invalid_below": self.invalid_below}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PointmapCodecConfig":
        d = dict(d)
        norm = PointmapNormalizationConfig.from_dict(d.pop("normalization", {}))
        return cls(normalization=norm, **d)


def _encode(vae: torch.nn.Module, x: torch.Tensor, chunk: int) -> torch.Tensor:
    outs = [vae.encode(x[i:i + chunk]).latent_dist.mode() for i in range(0, x.shape[0], chunk)]
    return torch.cat(outs) * vae.config.scaling_factor


def _decode(vae: torch.nn.Module, z: torch.Tensor, chunk: int) -> torch.Tensor:
    z = z / vae.config.scaling_factor
    outs = []
    for i in range(0, z.shape[0], chunk):
        part = z[i:i + chunk]
        if isinstance(vae, AutoencoderKLTemporalDecoder):
            outs.append(vae.decode(part, num_frames=part.shape[0]).sample)
        else:
            outs.append(vae.decode(part).sample)
    return torch.cat(outs)


class LatentCodec:
    """Encode / decode RGB images and metric pointmaps with the two VAEs (no gradients, eval mode).

    The tensor methods (`*_tensor`) work on (N, 3, H, W) values in [-1, 1] and are what training uses;
    the array methods take and return numpy arrays in natural units (uint8 RGB, metres).
    """

    def __init__(self, rgb_vae: torch.nn.Module, pointmap_vae: torch.nn.Module,
                 config: PointmapCodecConfig | None = None, chunk: int = 16):
        self.rgb_vae = rgb_vae
        self.pointmap_vae = pointmap_vae
        self.config = config or PointmapCodecConfig()
        self.chunk = chunk  # frames per VAE call, bounds peak memory

    @property
    def device(self) -> torch.device:
        return next(self.rgb_vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.rgb_vae.parameters()).dtype

    # ---------------------------------------------------------------- tensors in [-1, 1]
    @torch.no_grad()
    def encode_rgb_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 4, H/8, W/8) scaled latents."""
        _check_hw(images.shape[-2:])
        return _encode(self.rgb_vae, images.to(self.device, self.dtype), self.chunk)

    @torch.no_grad()
    def decode_rgb_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 4, h, w) scaled latents -> (N, 3, 8h, 8w) in [-1, 1] (clamped)."""
        return _decode(self.rgb_vae, latents.to(self.device, self.dtype), self.chunk).clamp(-1, 1)

    @torch.no_grad()
    def encode_pointmap_tensor(self, normalized: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised pointmap -> (N, 4, H/8, W/8) scaled latents."""
        _check_hw(normalized.shape[-2:])
        return _encode(self.pointmap_vae, normalized.to(self.device, self.dtype), self.chunk)

    @torch.no_grad()
    def decode_pointmap_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, 4, h, w) scaled latents -> (N, 3, 8h, 8w) normalised pointmap (not clamped)."""
        return _decode(self.pointmap_vae, latents.to(self.device, self.dtype), self.chunk)

    # ---------------------------------------------------------------- arrays in natural units
    def encode_rgb(self, rgb: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB -> (T, 4, H/8, W/8) latents."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be (T, H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return self.encode_rgb_tensor(x)

    def decode_rgb(self, latents: torch.Tensor) -> np.ndarray:
        """(T, 4, h, w) latents -> (T, 8h, 8w, 3) uint8 RGB."""
        x = self.decode_rgb_tensor(latents).float().cpu()
        return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def normalize_points(self, points: np.ndarray | torch.Tensor, valid=None) -> torch.Tensor:
        """(T, H, W, 3) metres (+ optional (T, H, W) validity) -> (T, 3, H, W) VAE input."""
        pts = torch.as_tensor(np.asarray(points, dtype=np.float32)) if not torch.is_tensor(points) else points
        if pts.ndim != 4 or pts.shape[-1] != 3:
            raise ValueError(f"points must be (T, H, W, 3) metres, got {tuple(pts.shape)}")
        if valid is not None and not torch.is_tensor(valid):
            valid = torch.as_tensor(np.asarray(valid, dtype=bool))
        normalized, _ = normalize_pointmap(pts.float(), self.config.normalization, valid)
        return normalized.permute(0, 3, 1, 2)

    def encode_pointmap(self, points: np.ndarray | torch.Tensor, valid=None) -> torch.Tensor:
        """(T, H, W, 3) metres (+ optional (T, H, W) bool validity) -> (T, 4, H/8, W/8) latents.

        Pixels that are invalid, non-finite or (0, 0, 0) are encoded as invalid.
        """
        pts = points if torch.is_tensor(points) else torch.as_tensor(np.asarray(points, dtype=np.float32))
        nonzero = pts.abs().sum(-1) > 0
        valid = nonzero if valid is None else (torch.as_tensor(np.asarray(valid, dtype=bool)) & nonzero)
        return self.encode_pointmap_tensor(self.normalize_points(pts, valid))

    def points_from_normalized(self, normalized: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(T, 3, H, W) normalised -> (points (T, H, W, 3) float32 metres, 0 where invalid; valid (T, H, W))."""
        nrm = normalized.float().cpu().permute(0, 2, 3, 1)
        valid = nrm[..., 2] > self.config.invalid_below
        pts = denormalize_pointmap(nrm, self.config.normalization, valid)
        return pts.numpy().astype(np.float32), valid.numpy()

    def decode_pointmap(self, latents: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(T, 4, h, w) latents -> (points (T, 8h, 8w, 3) metres, valid (T, 8h, 8w) bool)."""
        return self.points_from_normalized(self.decode_pointmap_tensor(latents))


def _check_hw(hw) -> None:
    h, w = int(hw[0]), int(hw[1])
    if h % VAE_DOWNSAMPLE or w % VAE_DOWNSAMPLE:
        raise ValueError(f"image size {h}x{w} must be a multiple of {VAE_DOWNSAMPLE} on both axes")
