"""Learning works: the tiny model overfits one fixed batch, and sampling then reproduces its targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode
from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
from geo4d_core.model import WorldModel, WorldModelConfig

STEPS = 500


def _batch(model: WorldModel):
    """Latents of one real sample: condition frame t=2, targets t+1..t+10, view m's points in n's frame."""
    ep = make_synthetic_episode(SyntheticEpisodeConfig(height=64, width=80, num_frames=13, seed=0))
    cam_n, cam_m = ep.cameras[2], ep.cameras[3]

    def latents(cam, steps, to_n):
        rgb = np.stack([ep.frames[t][cam.name].color for t in steps])
        pts, valid = depth_to_pointmap(np.stack([ep.frames[t][cam.name].depth for t in steps]), cam.K)
        if to_n:
            pts = pointmap_m_to_n(pts, cam_n.X_WC, cam_m.X_WC, valid)
        z = torch.cat([model.codec.encode_rgb(rgb), model.codec.encode_pointmap(pts, valid)], 1)
        return F.avg_pool2d(z, 2)  # 4 x 5 latents keep the test fast

    future = list(range(3, 13))
    tn, tm = latents(cam_n, future, False)[None], latents(cam_m, future, True)[None]
    cn, cm = latents(cam_n, [2], False), latents(cam_m, [2], False)
    # The VAE is untrained here; scale its latents to the sigma_data the preconditioning assumes.
    scale = model.config.edm.sigma_data / tn.std()
    return [x * scale for x in (tn, tm, cn, cm)]


@pytest.mark.slow
def test_tiny_model_overfits_a_fixed_batch_and_sampling_reproduces_it():
    torch.manual_seed(0)
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    diffusion = model.diffusion
    tn, tm, cn, cm = _batch(model)
    eval_sigmas = diffusion.sample_sigmas(16, torch.Generator().manual_seed(7))

    def held_loss() -> float:
        """The training objective on a fixed set of noise levels and noises."""
        with torch.no_grad():
            return float(np.mean([diffusion.loss(tn, tm, cn, cm, generator=torch.Generator().manual_seed(j),
                                                 sigma=s).total for j, s in enumerate(eval_sigmas)]))

    def sample_error() -> tuple[float, float]:
        with torch.no_grad():
            sn, sm = diffusion.sample(cn, cm, 10, steps=25, generator=torch.Generator().manual_seed(0))
        rel = lambda a, b: float((a - b).abs().mean() / b.abs().mean())  # noqa: E731
        return rel(sn[:, :, 4:], tn[:, :, 4:]), rel(sm[:, :, 4:], tm[:, :, 4:])

    model.unet.eval()
    before = held_loss()
    err_before = sample_error()
    model.unet.train()
    opt = torch.optim.AdamW(model.unet.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=STEPS, pct_start=0.1)
    batch = [torch.cat([x] * 4) for x in (tn, tm, cn, cm)]  # one sample, four noise draws per step
    gen = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        loss = diffusion.loss(*batch, generator=gen).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.unet.eval()
    after = held_loss()
    err_n, err_m = sample_error()
    print(f"held-out loss {before:.3f} -> {after:.3f} ({before / after:.1f}x); sampled pointmap latent error "
          f"n {err_before[0]:.3f} -> {err_n:.3f}, m {err_before[1]:.3f} -> {err_m:.3f}")
    assert before / after >= 10, f"loss fell only {before / after:.1f}x ({before:.3f} -> {after:.3f})"
    # Sampled pointmap latents of both views (m in n's frame) match the targets.
    assert err_n < 0.25 and err_m < 0.25, (err_n, err_m)
    assert err_n < err_before[0] / 3 and err_m < err_before[1] / 3, (err_before, (err_n, err_m))
