"""`WorldModelConfig`: everything about the world model that is not a weight, saved next to the weights.

Named configurations (`WorldModelConfig.preset(name)`):

| name  | U-Net                                | VAEs                          | image     | EDM                                  |
|-------|--------------------------------------|-------------------------------|-----------|--------------------------------------|
| tiny  | 2 levels (32, 64), 1 layer per level | AutoencoderKL (8..32 ch)      | 64 x 80   | F-prediction, sigma_data 0.5         |
| small | 3 levels (64, 128, 128)              | AutoencoderKL (32..64 ch)     | 128 x 160 | F-prediction, sigma_data 0.5         |
| svd   | SVD img2vid (320..1280, 12 decoder layers) | SVD AutoencoderKLTemporalDecoder | 256 x 320 | v-prediction, sigma_data 1, sigma_max 700 (SVD's) |
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from geo4d_core.model.diffusion import EDMConfig
from geo4d_core.model.stereo_unet import UNET_PRESETS
from geo4d_core.model.vae import VAE_DOWNSAMPLE, PointmapCodecConfig

__all__ = ["WorldModelConfig", "CONFIG_NAME"]

CONFIG_NAME = "world_model.yaml"

_IMAGE_SIZE = {"tiny": (64, 80), "small": (128, 160), "svd": (256, 320)}
_EDM = {
    "tiny": EDMConfig(),
    "small": EDMConfig(),
    "svd": EDMConfig(sigma_max=700.0, sigma_data=1.0, prediction_type="v_prediction", p_mean=0.7, p_std=1.6),
}


@dataclass
class WorldModelConfig:
    """Settings of the stereo 4D world model around its weights (architecture details live in unet/config.json)."""

    # Named architecture of the U-Net and VAEs: "tiny" (tests), "small" (CPU training) or "svd".
    architecture: str = "tiny"
    # Image height the model runs at, pixels (inputs of another size are resized, K scaled with them).
    height: int = 64
    # Image width the model runs at, pixels.
    width: int = 80
    # Number of predicted future frames h (t+1 .. t+h), at the 10 Hz control rate.
    horizon: int = 10
    # Cross-attention context: "learned" (embedding of the condition latents) or "clip" (CLIP image embedding).
    context: str = "learned"
    # Cross-view attention from view m's decoder to view n's; False is the "w/o MV attn" ablation.
    mv_attention: bool = True
    # Predict pointmaps; False is the RGB-only (SVD-style) baseline: pointmap latents are zeroed in the
    # condition and the targets, their loss weight is 0 and predictions carry no valid points.
    use_pointmaps: bool = True
    # Local folder of a CLIP image encoder (transformers format), needed when context == "clip".
    clip_path: str | None = None
    # Default classifier-free guidance weight at prediction time (1 = no guidance).
    guidance_scale: float = 1.0
    # Default number of Euler sampling steps.
    steps: int = 25
    # Noise schedule, parametrisation and loss weights.
    edm: EDMConfig = field(default_factory=EDMConfig)
    # Pointmap normalisation box and validity threshold of the pointmap VAE.
    pointmap: PointmapCodecConfig = field(default_factory=PointmapCodecConfig)

    def __post_init__(self) -> None:
        if self.architecture not in UNET_PRESETS:
            raise ValueError(f"WorldModelConfig.architecture must be one of {sorted(UNET_PRESETS)}, got {self.architecture!r}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0 or v % VAE_DOWNSAMPLE:
                raise ValueError(f"WorldModelConfig.{name} must be a positive multiple of {VAE_DOWNSAMPLE}, got {v!r}")
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"WorldModelConfig.horizon must be a positive integer, got {self.horizon!r}")
        if self.context not in ("learned", "clip"):
            raise ValueError(f"WorldModelConfig.context must be 'learned' or 'clip', got {self.context!r}")
        if self.steps < 1:
            raise ValueError(f"WorldModelConfig.steps must be >= 1, got {self.steps}")
        if isinstance(self.edm, Mapping):
            self.edm = EDMConfig.from_dict(self.edm)
        if isinstance(self.pointmap, Mapping):
            self.pointmap = PointmapCodecConfig.from_dict(self.pointmap)
        if not self.use_pointmaps:
            self.edm.pointmap_weight = 0.0

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "WorldModelConfig":
        """The named configuration (tiny / small / svd) with field overrides."""
        if name not in _IMAGE_SIZE:
            raise ValueError(f"unknown world-model configuration {name!r}; expected one of {sorted(_IMAGE_SIZE)}")
        h, w = _IMAGE_SIZE[name]
        kwargs: dict[str, Any] = dict(architecture=name, height=h, width=w, edm=EDMConfig(**_EDM[name].to_dict()))
        if name == "svd":
            kwargs["context"] = "clip"
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["edm"] = self.edm.to_dict()
        out["pointmap"] = self.pointmap.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WorldModelConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"WorldModelConfig: unknown keys {unknown}")
        return cls(**dict(d))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "WorldModelConfig":
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a geo4d world-model checkpoint folder")
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})
