"""EDM training objective and Euler sampler for the two-view latent video (Karras et al. 2022).

Latent layout (all tensors torch, float):
    target_n, target_m: (B, T, 8, h, w) clean latents of the future frames t+1..t+T, channels
        [RGB latent (4), pointmap latent (4)]; view n's pointmap in camera n's frame, view m's pointmap
        also in camera n's frame.
    cond_n, cond_m: (B, 8, h, w) latents of the current observation of each view, [RGB (4), pointmap (4)],
        each pointmap in its own camera's frame (what a camera measures without extrinsics); repeated
        over the T frames as the U-Net's condition channels.

Preconditioning (`EDMConfig.prediction_type`): "epsilon" is EDM's F-parametrisation
D = c_skip x + c_out F with c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2); "v_prediction" flips the
sign of c_out, which with sigma_d = 1 is exactly SVD's parametrisation (so a pretrained SVD U-Net is
used as trained). c_in = 1 / sqrt(sigma^2 + sigma_d^2), c_noise = log(sigma) / 4. The formulas are those
of diffusers' `EDMEulerScheduler`, which also runs the sampler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from diffusers import EDMEulerScheduler

from geo4d_core.model.stereo_unet import LATENT_CHANNELS, StereoUNet

__all__ = ["EDMConfig", "StereoDiffusion", "mask_to_latent", "LossTerms"]


@dataclass
class EDMConfig:
    """Noise schedule, parametrisation and loss settings of the EDM diffusion."""

    # Smallest noise level of the sampling schedule (latent units).
    sigma_min: float = 0.002
    # Largest noise level of the sampling schedule; SVD uses 700.
    sigma_max: float = 80.0
    # Standard deviation of the clean latents assumed by the preconditioning; SVD uses 1.0.
    sigma_data: float = 0.5
    # "epsilon" (EDM F-prediction) or "v_prediction" (SVD).
    prediction_type: str = "epsilon"
    # Karras schedule exponent.
    rho: float = 7.0
    # Mean of log(sigma) for training noise levels (log-normal sampling).
    p_mean: float = -1.2
    # Standard deviation of log(sigma) for training noise levels.
    p_std: float = 1.2
    # Weight of the pointmap latent loss relative to the RGB loss (lambda of the paper).
    pointmap_weight: float = 1.0
    # Loss weight inside the gripper mask (outside: 1).
    gripper_weight: float = 2.0
    # Std of Gaussian noise added to the condition latents (SVD's cond_aug); also an added time id.
    cond_aug: float = 0.02
    # Frames-per-second id passed to the U-Net's added time embedding.
    fps_id: int = 10
    # Motion-bucket id passed to the U-Net's added time embedding.
    motion_bucket_id: int = 127

    def __post_init__(self) -> None:
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"EDMConfig.prediction_type must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"EDMConfig: need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.sigma_data <= 0:
            raise ValueError(f"EDMConfig.sigma_data must be > 0, got {self.sigma_data}")
        if self.cond_aug < 0 or self.pointmap_weight < 0 or self.gripper_weight < 0:
            raise ValueError("EDMConfig: cond_aug, pointmap_weight and gripper_weight must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EDMConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"EDMConfig: unknown keys {unknown}")
        return cls(**dict(d))


@dataclass
class LossTerms:
    """The joint loss and its parts (scalars): total = rgb_n + rgb_m + lambda (pointmap_n + pointmap_m)."""

    total: torch.Tensor
    rgb_n: torch.Tensor
    rgb_m: torch.Tensor
    pointmap_n: torch.Tensor
    pointmap_m: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "rgb_n", "rgb_m", "pointmap_n", "pointmap_m")}


def mask_to_latent(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, T, H, W) bool/float pixel mask -> (B, T, 1, H/f, W/f) float: 1 where any pixel of the cell is set."""
    b, t, h, w = mask.shape
    m = F.max_pool2d(mask.float().reshape(b * t, 1, h, w), kernel_size=factor, stride=factor)
    return m.reshape(b, t, 1, h // factor, w // factor)


class StereoDiffusion:
    """The denoiser D(x; sigma) of both views around a `StereoUNet`, its training loss and its sampler."""

    def __init__(self, unet: StereoUNet, config: EDMConfig):
        self.unet = unet
        self.config = config

    def make_scheduler(self) -> EDMEulerScheduler:
        c = self.config
        return EDMEulerScheduler(sigma_min=c.sigma_min, sigma_max=c.sigma_max, sigma_data=c.sigma_data,
                                 sigma_schedule="karras", prediction_type=c.prediction_type, rho=c.rho)

    # ------------------------------------------------------------------ preconditioning
    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in, c_noise) for noise levels `sigma` (any shape)."""
        sd = self.config.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        if self.config.prediction_type == "v_prediction":
            c_out = -c_out
        c_in = 1.0 / (sigma**2 + sd**2).sqrt()
        c_noise = 0.25 * sigma.log()
        return c_skip, c_out, c_in, c_noise

    def added_time_ids(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        c = self.config
        ids = torch.tensor([float(c.fps_id), float(c.motion_bucket_id), float(c.cond_aug)], dtype=dtype,
                           device=device)
        return ids.expand(batch, 3)

    def context(self, cond: torch.Tensor, clip_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-attention context of one view: CLIP embeddings (B, S, D) if given, else the learned one."""
        if clip_embeds is not None:
            return clip_embeds
        return self.unet.learned_context(cond)

    def denoise(self, x_n: torch.Tensor, x_m: torch.Tensor, sigma: torch.Tensor, cond_n: torch.Tensor,
                cond_m: torch.Tensor, ctx_n: torch.Tensor, ctx_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(x; sigma) for both views: noisy (B, T, 8, h, w) latents -> estimates of the clean latents.

        sigma: (B,) noise level per sample. cond_*: (B, 8, h, w). ctx_*: (B, S, D).
        """
        b, t = x_n.shape[:2]
        sigma = torch.as_tensor(sigma, dtype=x_n.dtype, device=x_n.device).reshape(-1).expand(b)
        c_skip, c_out, c_in, c_noise = (c.reshape(b, 1, 1, 1, 1) for c in self.coefficients(sigma))
        rep = lambda c: c[:, None].expand(b, t, *c.shape[1:])  # noqa: E731
        in_n = torch.cat([c_in * x_n, rep(cond_n)], dim=2)
        in_m = torch.cat([c_in * x_m, rep(cond_m)], dim=2)
        ids = self.added_time_ids(b, x_n.device, x_n.dtype)
        f_n, f_m = self.unet(in_n, in_m, c_noise.reshape(b), ctx_n, ctx_m, ids)
        return c_skip * x_n + c_out * f_n, c_skip * x_m + c_out * f_m

    # ------------------------------------------------------------------ training
    def sample_sigmas(self, batch: int, generator: torch.Generator | None = None,
                      device: torch.device | None = None) -> torch.Tensor:
        """Training noise levels: log(sigma) ~ N(p_mean, p_std^2), shape (B,)."""
        z = torch.randn(batch, generator=generator, device=device)
        return (self.config.p_mean + self.config.p_std * z).exp()

    def loss(
        self,
        target_n: torch.Tensor,
        target_m: torch.Tensor,
        cond_n: torch.Tensor,
        cond_m: torch.Tensor,
        gripper_mask_n: torch.Tensor | None = None,
        gripper_mask_m: torch.Tensor | None = None,
        *,
        clip_n: torch.Tensor | None = None,
        clip_m: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sigma: torch.Tensor | None = None,
        drop_condition: torch.Tensor | None = None,
    ) -> LossTerms:
        """The paper's joint loss on one batch.

        Args:
            target_n, target_m: (B, T, 8, h, w) clean latents (see module docstring).
            cond_n, cond_m: (B, 8, h, w) condition latents.
            gripper_mask_n, gripper_mask_m: optional (B, T, H, W) pixel masks of the gripper in the target
                frames (H = 8h); the loss inside them is weighted by `gripper_weight`.
            clip_n, clip_m: optional CLIP image embeddings (B, S, D) for context='clip'.
            generator: RNG for noise levels, noise and condition augmentation (reproducible training).
            sigma: optional (B,) or scalar noise levels (default: sampled log-normally).
            drop_condition: optional (B,) bool; where True the condition latents and context are zeroed
                (classifier-free guidance training).

        Returns:
            LossTerms with the EDM-weighted mean squared errors.
        """
        b = target_n.shape[0]
        dev = target_n.device
        if sigma is None:
            sigma = self.sample_sigmas(b, generator, dev)
        sigma = torch.as_tensor(sigma, dtype=target_n.dtype, device=dev).reshape(-1).expand(b)
        cfg = self.config
        if cfg.cond_aug > 0:
            cond_n = cond_n + cfg.cond_aug * torch.randn(cond_n.shape, generator=generator, device=dev)
            cond_m = cond_m + cfg.cond_aug * torch.randn(cond_m.shape, generator=generator, device=dev)
        ctx_n, ctx_m = self.context(cond_n, clip_n), self.context(cond_m, clip_m)
        if drop_condition is not None:
            keep = (~drop_condition.to(dev).bool()).to(cond_n.dtype)
            cond_n, cond_m = cond_n * keep[:, None, None, None], cond_m * keep[:, None, None, None]
            ctx_n, ctx_m = ctx_n * keep[:, None, None], ctx_m * keep[:, None, None]
        noise_n = torch.randn(target_n.shape, generator=generator, device=dev)
        noise_m = torch.randn(target_m.shape, generator=generator, device=dev)
        s = sigma.reshape(b, 1, 1, 1, 1)
        d_n, d_m = self.denoise(target_n + s * noise_n, target_m + s * noise_m, sigma, cond_n, cond_m, ctx_n, ctx_m)
        sd = cfg.sigma_data
        lam = ((sigma**2 + sd**2) / (sigma * sd) ** 2).reshape(b, 1, 1, 1, 1)
        w_n = self._weights(gripper_mask_n, target_n)
        w_m = self._weights(gripper_mask_m, target_m)
        L = LATENT_CHANNELS
        err_n = lam * w_n * (d_n - target_n) ** 2
        err_m = lam * w_m * (d_m - target_m) ** 2
        rgb_n, pm_n = err_n[:, :, :L].mean(), err_n[:, :, L:].mean()
        rgb_m, pm_m = err_m[:, :, :L].mean(), err_m[:, :, L:].mean()
        total = rgb_n + rgb_m + cfg.pointmap_weight * (pm_n + pm_m)
        return LossTerms(total, rgb_n, rgb_m, pm_n, pm_m)

    def _weights(self, mask: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor | float:
        if mask is None:
            return 1.0
        factor = mask.shape[-1] // target.shape[-1]
        if factor < 1 or mask.shape[-1] != factor * target.shape[-1] or mask.shape[-2] != factor * target.shape[-2]:
            raise ValueError(
                f"gripper mask {tuple(mask.shape[-2:])} is not an integer multiple of the latent size "
                f"{tuple(target.shape[-2:])}"
            )
        return 1.0 + (self.config.gripper_weight - 1.0) * mask_to_latent(mask.to(target.device), factor)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        cond_n: torch.Tensor,
        cond_m: torch.Tensor,
        num_frames: int,
        *,
        steps: int = 25,
        generator: torch.Generator | None = None,
        clip_n: torch.Tensor | None = None,
        clip_m: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        callback: Callable[[int, int], None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler EDM sampling of both views' future latents given the condition.

        Args:
            cond_n, cond_m: (B, 8, h, w) condition latents.
            num_frames: T, the horizon.
            steps: number of Euler steps (denoiser evaluations, x2 with guidance).
            generator: RNG for the initial noise and the condition augmentation; same generator state,
                same result.
            guidance_scale: classifier-free guidance weight w on the condition (1 = off):
                D = D_uncond + w (D_cond - D_uncond), D_uncond with zeroed condition and context.
            callback: called as callback(step_index, steps) after each step (progress bars).

        Returns:
            (latents_n, latents_m): (B, T, 8, h, w).
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        b, _, h, w = cond_n.shape
        dev = cond_n.device
        dtype = cond_n.dtype
        cfg = self.config
        if cfg.cond_aug > 0:
            cond_n = cond_n + cfg.cond_aug * torch.randn(cond_n.shape, generator=generator, device=dev, dtype=dtype)
            cond_m = cond_m + cfg.cond_aug * torch.randn(cond_m.shape, generator=generator, device=dev, dtype=dtype)
        ctx_n, ctx_m = self.context(cond_n, clip_n), self.context(cond_m, clip_m)
        guided = guidance_scale != 1.0
        if guided:
            cond_n = torch.cat([torch.zeros_like(cond_n), cond_n])
            cond_m = torch.cat([torch.zeros_like(cond_m), cond_m])
            ctx_n = torch.cat([torch.zeros_like(ctx_n), ctx_n])
            ctx_m = torch.cat([torch.zeros_like(ctx_m), ctx_m])

        scheduler = self.make_scheduler()
        scheduler.set_timesteps(steps, device=dev)
        shape = (b, num_frames, 2 * LATENT_CHANNELS, h, w)
        # EDM starts from N(0, sigma_max^2) (the scheduler's init_noise_sigma adds 1 to the variance).
        x = torch.randn((2, *shape), generator=generator, device=dev, dtype=dtype) * scheduler.sigmas[0].to(dtype)
        for i, t in enumerate(scheduler.timesteps):
            sigma = scheduler.sigmas[i].to(dev, dtype)
            x_n, x_m = x[0], x[1]
            if guided:
                x_n, x_m = torch.cat([x_n, x_n]), torch.cat([x_m, x_m])
            sig = sigma.expand(x_n.shape[0])
            d_n, d_m = self.denoise(x_n, x_m, sig, cond_n, cond_m, ctx_n, ctx_m)
            if guided:
                d_n = d_n[:b] + guidance_scale * (d_n[b:] - d_n[:b])
                d_m = d_m[:b] + guidance_scale * (d_m[b:] - d_m[:b])
            denoised = torch.stack([d_n, d_m])
            # Euler step through diffusers' scheduler, given our (possibly guided) x0 estimate.
            scheduler.is_scale_input_called = True
            x = scheduler.step(torch.zeros_like(x), t, x, pred_original_sample=denoised).prev_sample
            if callback is not None:
                callback(i, steps)
        return x[0], x[1]

