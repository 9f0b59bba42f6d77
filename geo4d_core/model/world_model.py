"""`WorldModel`: the inference API of the stereo 4D world model.

    model = WorldModel.from_pretrained("models/spatula_small")
    pred = model.predict(Observation(rgb_n, depth_n, K_n), Observation(rgb_m, depth_m, K_m), steps=25, seed=0)
    pred.points_m_in_n   # (h, H, W, 3) metres, view m's future pointmaps in camera n's frame

Only camera n's frame appears in the output: view m's condition pointmap is computed in camera m's own
frame from its depth and intrinsics (no extrinsics needed), and the model predicts view m's future points
directly in camera n's frame. A checkpoint folder holds `world_model.yaml` (this package's config),
`unet/` (StereoUNet), `rgb_vae/` and `pointmap_vae/` (diffusers `save_pretrained` format).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from geo4d_core.geometry.pointmap import depth_to_pointmap
from geo4d_core.model.configuration_world_model import WorldModelConfig
from geo4d_core.model.diffusion import StereoDiffusion
from geo4d_core.model.stereo_unet import StereoUNet, unet_preset
from geo4d_core.model.vae import LatentCodec, build_vae, load_vae, pointmap_vae_from_rgb

__all__ = ["Observation", "Prediction", "WorldModel", "ClipImageEncoder", "resize_frame", "scale_intrinsics"]


@dataclass
class Observation:
    """One RGB-D frame of one camera."""

    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres along the optical axis, 0 = invalid
    K: np.ndarray  # (3, 3) intrinsics, pixels (OpenCV convention)

    def validate(self, name: str) -> None:
        rgb, depth, K = np.asarray(self.rgb), np.asarray(self.depth), np.asarray(self.K)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{name}.rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{name}.depth must be (H, W) = {rgb.shape[:2]} metres, got {depth.shape}")
        if not np.issubdtype(depth.dtype, np.floating):
            raise ValueError(f"{name}.depth must be float metres (0 = invalid), got dtype {depth.dtype}")
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"{name}.K must be a finite 3x3 intrinsic matrix with positive focal lengths")


@dataclass
class Prediction:
    """The world model's forecast of frames t+1 .. t+h for both views (all arrays numpy)."""

    rgb_n: np.ndarray  # (h, H, W, 3) uint8, view n
    rgb_m: np.ndarray  # (h, H, W, 3) uint8, view m
    points_n: np.ndarray  # (h, H, W, 3) float32 metres, view n's pixels in camera n's frame, 0 where invalid
    points_m_in_n: np.ndarray  # (h, H, W, 3) float32 metres, view m's pixels in camera n's frame, 0 where invalid
    depth_n: np.ndarray  # (h, H, W) float32 metres, z of points_n, 0 where invalid
    valid_n: np.ndarray  # (h, H, W) bool
    valid_m: np.ndarray  # (h, H, W) bool
    K_n: np.ndarray  # (3, 3) intrinsics of view n at the prediction's resolution
    K_m: np.ndarray  # (3, 3) intrinsics of view m at the prediction's resolution
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (see WorldModel.predict)
    steps: int = 25  # denoising steps used
    seed: int = 0  # seed used
    latents_n: np.ndarray | None = None  # (h, 8, h_lat, w_lat) sampled latents of view n [RGB | pointmap]
    latents_m: np.ndarray | None = None  # (h, 8, h_lat, w_lat) sampled latents of view m

    @property
    def horizon(self) -> int:
        return int(self.rgb_n.shape[0])


class ClipImageEncoder:
    """CLIP image embeddings of the current frames from a local transformers CLIP vision checkpoint.

    Needs the optional `transformers` package and a local folder (no downloads). Returns (B, 1, D).
    """

    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        try:
            from transformers import CLIPVisionModelWithProjection
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "context='clip' needs the 'transformers' package (pip install transformers) and a local CLIP "
                f"image encoder folder; set context='learned' to run without them ({err})"
            ) from err
        self.model = CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True).to(device).eval()
        self.size = int(self.model.config.image_size)

    @torch.no_grad()
    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb: (B, 3, H, W) in [-1, 1] -> (B, 1, D) image embeddings."""
        x = torch.nn.functional.interpolate((rgb + 1) / 2, size=(self.size, self.size), mode="bicubic",
                                            align_corners=False, antialias=True)
        mean = x.new_tensor(self.MEAN)[None, :, None, None]
        std = x.new_tensor(self.STD)[None, :, None, None]
        return self.model(pixel_values=(x - mean) / std).image_embeds[:, None]


class WorldModel:
    """Stereo 4D world model: condition RGB-D of views n and m -> h future RGB frames and pointmaps."""

    def __init__(self, config: WorldModelConfig, unet: StereoUNet, rgb_vae: torch.nn.Module,
                 pointmap_vae: torch.nn.Module, image_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.config = config
        self.unet = unet.eval()
        self.rgb_vae = rgb_vae.eval()
        self.pointmap_vae = pointmap_vae.eval()
        self.codec = LatentCodec(self.rgb_vae, self.pointmap_vae, config.pointmap)
        self.diffusion = StereoDiffusion(self.unet, config.edm)
        if config.context == "clip" and image_encoder is None:
            if not config.clip_path:
                raise ValueError("WorldModelConfig.context is 'clip' but no clip_path (local CLIP image encoder) is set")
            image_encoder = ClipImageEncoder(config.clip_path, device=self.device)
        self.image_encoder = image_encoder

    # ------------------------------------------------------------------ construction / persistence
    @classmethod
    def from_config(cls, config: WorldModelConfig, *, seed: int = 0,
                    image_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None) -> "WorldModel":
        """Freshly initialised weights (seeded) for a configuration; the pointmap VAE copies the RGB VAE."""
        torch.manual_seed(seed)
        unet = StereoUNet(**unet_preset(config.architecture, mv_attention=config.mv_attention,
                                        context=config.context, num_frames=config.horizon))
        rgb_vae = build_vae(config.architecture)
        return cls(config, unet, rgb_vae, pointmap_vae_from_rgb(rgb_vae), image_encoder)

    @classmethod
    def from_svd(cls, svd_path: str | Path, config: WorldModelConfig | None = None) -> "WorldModel":
        """Initialise from a local diffusers-format Stable Video Diffusion checkpoint (GPU servers).

        Copies the U-Net into the shared encoder and both decoders (`StereoUNet.from_svd_unet`), takes the
        SVD VAE (`vae/`) as the RGB VAE and a copy of it as the pointmap VAE, and uses the checkpoint's
        `image_encoder/` as CLIP context when present.
        """
        svd_path = Path(svd_path)
        config = config or WorldModelConfig.preset("svd")
        clip_dir = svd_path / "image_encoder"
        if config.context == "clip" and not config.clip_path and clip_dir.is_dir():
            config.clip_path = str(clip_dir)
        unet = StereoUNet.from_svd_checkpoint(str(svd_path), mv_attention=config.mv_attention,
                                              context=config.context, num_frames=config.horizon)
        vae_dir = svd_path / "vae"
        if not vae_dir.is_dir():
            raise FileNotFoundError(f"{vae_dir} missing: expected a diffusers-format SVD checkpoint (unet/, vae/)")
        rgb_vae = _own_memory(load_vae(vae_dir))
        return cls(config, _own_memory(unet), rgb_vae, pointmap_vae_from_rgb(rgb_vae))

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config and weights (safetensors) into `directory`, atomically replacing an older save."""
        import os
        import shutil
        import tempfile

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.config.save(tmp)
            self.unet.save_pretrained(tmp / "unet")
            self.rgb_vae.save_pretrained(tmp / "rgb_vae")
            self.pointmap_vae.save_pretrained(tmp / "pointmap_vae")
            old = None
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                os.replace(directory, old)
            os.replace(tmp, directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu",
                        torch_dtype: torch.dtype | None = None,
                        image_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None) -> "WorldModel":
        """Load a folder written by `save_pretrained`."""
        directory = Path(directory)
        config = WorldModelConfig.load(directory)
        for sub in ("unet", "rgb_vae", "pointmap_vae"):
            if not (directory / sub).is_dir():
                raise FileNotFoundError(f"{directory / sub} missing: incomplete world-model checkpoint")
        kw: dict[str, Any] = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
        unet = StereoUNet.from_pretrained(directory / "unet", **kw)
        rgb_vae = load_vae(directory / "rgb_vae", **kw)
        pointmap_vae = load_vae(directory / "pointmap_vae", **kw)
        for module in (unet, rgb_vae, pointmap_vae):
            _own_memory(module)
        return cls(config, unet.to(device), rgb_vae.to(device), pointmap_vae.to(device), image_encoder)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def num_parameters(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"unet": count(self.unet), "rgb_vae": count(self.rgb_vae), "pointmap_vae": count(self.pointmap_vae)}

    # ------------------------------------------------------------------ inference
    def prepare(self, obs: Observation, name: str) -> Observation:
        """Validate and resize an observation to the model's resolution (K scaled accordingly)."""
        obs.validate(name)
        rgb, depth, K, _ = resize_frame(obs.rgb, obs.depth, obs.K, self.config.height, self.config.width)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        return Observation(np.ascontiguousarray(rgb), depth, K)

    def encode_condition(self, obs_n: Observation, obs_m: Observation) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition latents (1, 8, h, w) of both (prepared) observations, pointmaps in each camera's own frame."""
        rgb = np.stack([obs_n.rgb, obs_m.rgb])
        lifted = [depth_to_pointmap(o.depth, o.K) for o in (obs_n, obs_m)]
        pts = np.stack([p for p, _ in lifted])
        valid = np.stack([v for _, v in lifted])
        z_rgb = self.codec.encode_rgb(rgb)
        z_pm = self.codec.encode_pointmap(pts, valid)
        if not self.config.use_pointmaps:
            z_pm = torch.zeros_like(z_pm)
        cond = torch.cat([z_rgb, z_pm], dim=1)
        return cond[0:1], cond[1:2]

    @torch.no_grad()
    def predict(
        self,
        obs_n: Observation,
        obs_m: Observation,
        steps: int | None = None,
        seed: int = 0,
        *,
        guidance_scale: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Prediction:
        """Forecast frames t+1..t+h of both views from the current RGB-D of view n (reference) and view m.

        Args:
            obs_n, obs_m: current observations; resized to the model's resolution if needed.
            steps: Euler denoising steps (default `config.steps`, 25).
            seed: seeds the initial noise and condition augmentation; same seed, same prediction.
            guidance_scale: classifier-free guidance weight (default `config.guidance_scale`).
            progress: optional callback(step_index, steps) after every denoising step.

        Returns:
            Prediction with timings {"prepare_s", "encode_s", "denoise_s", "denoise_step_s", "decode_s",
            "total_s"}.
        """
        steps = int(steps or self.config.steps)
        guidance = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        t0 = time.perf_counter()
        obs_n, obs_m = self.prepare(obs_n, "obs_n"), self.prepare(obs_m, "obs_m")
        t1 = time.perf_counter()
        cond_n, cond_m = self.encode_condition(obs_n, obs_m)
        clip_n = clip_m = None
        if self.config.context == "clip":
            rgb = torch.from_numpy(np.stack([obs_n.rgb, obs_m.rgb])).permute(0, 3, 1, 2).float() / 127.5 - 1
            emb = self.image_encoder(rgb.to(self.device))
            clip_n, clip_m = emb[0:1], emb[1:2]
        t2 = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        lat_n, lat_m = self.diffusion.sample(cond_n, cond_m, self.config.horizon, steps=steps, generator=gen,
                                             clip_n=clip_n, clip_m=clip_m, guidance_scale=guidance,
                                             callback=progress)
        t3 = time.perf_counter()
        L = lat_n.shape[2] // 2
        lat = torch.cat([lat_n[0], lat_m[0]])  # (2h, 8, h_lat, w_lat)
        rgb = self.codec.decode_rgb(lat[:, :L])
        pts, valid = self.codec.decode_pointmap(lat[:, L:])
        if not self.config.use_pointmaps:  # RGB-only model: no geometry
            pts, valid = np.zeros_like(pts), np.zeros_like(valid)
        t4 = time.perf_counter()
        h = self.config.horizon
        depth_n = np.where(valid[:h], pts[:h, ..., 2], 0.0).astype(np.float32)
        timings = {
            "prepare_s": t1 - t0,
            "encode_s": t2 - t1,
            "denoise_s": t3 - t2,
            "denoise_step_s": (t3 - t2) / steps,
            "decode_s": t4 - t3,
            "total_s": t4 - t0,
        }
        return Prediction(
            rgb_n=rgb[:h], rgb_m=rgb[h:], points_n=pts[:h], points_m_in_n=pts[h:], depth_n=depth_n,
            valid_n=valid[:h], valid_m=valid[h:], K_n=obs_n.K, K_m=obs_m.K, timings=timings, steps=steps,
            seed=int(seed), latents_n=lat_n[0].float().cpu().numpy(), latents_m=lat_m[0].float().cpu().numpy(),
        )


def scale_intrinsics(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of an image of `size` = (H, W) pixels resized to `new_size` = (H', W').

    Pixel centres sit at integer coordinates (DESIGN.md §3), so u' + 0.5 = (u + 0.5) W'/W (same for v).
    Returns a new (3, 3) float64 array; K itself is not modified.
    """
    K = np.asarray(K, dtype=np.float64).copy()
    (h, w), (H, W) = size, new_size
    if (h, w) != (H, W):
        sx, sy = W / w, H / h
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def resize_frame(
    rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, height: int, width: int, label: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Resize one camera frame to `height` x `width` pixels the way the world model sees it.

    Args:
        rgb: (H, W, 3) uint8 RGB; resized with area averaging (cv2.INTER_AREA).
        depth: (H, W) float metres along the optical axis, 0 = invalid; nearest neighbour (no mixed depths).
        K: (3, 3) intrinsics of the input, pixels; scaled with `scale_intrinsics`.
        label: optional (H, W) integer render labels; nearest neighbour.
    Returns:
        (rgb (height, width, 3) uint8, depth (height, width) float32 metres, K (3, 3) float64 at the new
        resolution, label (height, width) or None). Frames already of the target size keep their pixels.
    """
    rgb = np.asarray(rgb)
    depth = np.asarray(depth, dtype=np.float32)
    size = rgb.shape[:2]
    K = scale_intrinsics(K, size, (height, width))
    if size != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
        if label is not None:
            label = cv2.resize(np.asarray(label), (width, height), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(rgb), depth, K, label


@torch.no_grad()
def _own_memory(module: torch.nn.Module) -> torch.nn.Module:
    """Copy memory-mapped checkpoint tensors into ordinary memory.

    Tensors loaded from safetensors are views of the mapped file with their own alignment, which makes
    some CPU kernels round differently; after the copy a loaded model reproduces the saved one bit for bit.
    """
    for tensor in list(module.parameters()) + list(module.buffers()):
        tensor.data = tensor.data.clone()
    return module
