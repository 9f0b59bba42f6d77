"""EDM preconditioning, the joint loss and the Euler sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo4d_core.model.diffusion import EDMConfig, StereoDiffusion, mask_to_latent
from geo4d_core.model.stereo_unet import StereoUNet, unet_preset


@pytest.fixture(scope="module")
def diffusion():
    torch.manual_seed(0)
    return StereoDiffusion(StereoUNet(**unet_preset("tiny")).eval(), EDMConfig())


def batch(b=2, t=10, h=4, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, 8, h, w, generator=g) * 0.5, torch.randn(b, t, 8, h, w, generator=g) * 0.5,
            torch.randn(b, 8, h, w, generator=g) * 0.5, torch.randn(b, 8, h, w, generator=g) * 0.5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_coefficients_match_diffusers_edm_scheduler(prediction_type):
    cfg = EDMConfig(prediction_type=prediction_type, sigma_data=0.7)
    d = StereoDiffusion(None, cfg)
    sched = d.make_scheduler()
    sigma = torch.tensor([0.01, 0.3, 2.0, 50.0])
    c_skip, c_out, c_in, c_noise = d.coefficients(sigma)
    x, f = torch.randn(4), torch.randn(4)
    assert torch.allclose(c_skip * x + c_out * f, sched.precondition_outputs(x, f, sigma))
    assert torch.allclose(c_in * x, sched.precondition_inputs(x, sigma))
    assert torch.allclose(c_noise, sched.precondition_noise(sigma))
    # EDM's defining properties: unit-variance input and the skip/out split.
    assert torch.allclose(c_in**2 * (sigma**2 + 0.49), torch.ones(4))
    assert torch.allclose(c_skip, 0.49 / (sigma**2 + 0.49))
    assert torch.all(c_out < 0) if prediction_type == "v_prediction" else torch.all(c_out > 0)


def test_training_noise_levels_are_log_normal(diffusion):
    s = diffusion.sample_sigmas(20000, torch.Generator().manual_seed(0))
    logs = s.log().numpy()
    assert abs(logs.mean() - diffusion.config.p_mean) < 0.05
    assert abs(logs.std() - diffusion.config.p_std) < 0.05


def test_mask_to_latent_marks_cells_with_any_gripper_pixel():
    mask = torch.zeros(1, 2, 16, 24, dtype=torch.bool)
    mask[0, 0, 9, 17] = True
    lat = mask_to_latent(mask, 8)
    assert lat.shape == (1, 2, 1, 2, 3)
    assert lat.sum() == 1 and lat[0, 0, 0, 1, 2] == 1


def test_loss_terms_and_weights(diffusion):
    tn, tm, cn, cm = batch()
    kw = dict(sigma=torch.tensor([0.5, 1.5]))
    with torch.no_grad():
        base = diffusion.loss(tn, tm, cn, cm, generator=torch.Generator().manual_seed(1), **kw)
        full = torch.ones(2, 10, 32, 40, dtype=torch.bool)
        masked = diffusion.loss(tn, tm, cn, cm, full, full, generator=torch.Generator().manual_seed(1), **kw)
    vals = base.as_floats()
    assert all(np.isfinite(v) and v > 0 for v in vals.values())
    lam = diffusion.config.pointmap_weight
    assert vals["total"] == pytest.approx(vals["rgb_n"] + vals["rgb_m"] + lam * (vals["pointmap_n"] + vals["pointmap_m"]))
    # gripper everywhere -> every term weighted by gripper_weight (2)
    assert masked.as_floats()["total"] == pytest.approx(diffusion.config.gripper_weight * vals["total"], rel=1e-5)
    with pytest.raises(ValueError, match="integer multiple"):
        diffusion.loss(tn, tm, cn, cm, torch.ones(2, 10, 30, 40), None, **kw)


def test_gripper_region_weight_only_affects_masked_cells(diffusion):
    tn, tm, cn, cm = batch(b=1)
    mask = torch.zeros(1, 10, 32, 40, dtype=torch.bool)
    mask[..., :8, :8] = True  # one latent cell per frame
    d = StereoDiffusion(diffusion.unet, EDMConfig(gripper_weight=1.0))
    with torch.no_grad():
        a = d.loss(tn, tm, cn, cm, mask, mask, generator=torch.Generator().manual_seed(2), sigma=0.7).total
        b = diffusion.loss(tn, tm, cn, cm, None, None, generator=torch.Generator().manual_seed(2), sigma=0.7).total
        c = diffusion.loss(tn, tm, cn, cm, mask, mask, generator=torch.Generator().manual_seed(2), sigma=0.7).total
    assert torch.allclose(a, b)  # weight 1 == no mask
    assert b < c < 2 * b


def test_sampler_lands_on_the_denoisers_target(diffusion, monkeypatch):
    """With an ideal denoiser D(x; sigma) = x0, the Euler sampler must end exactly at x0."""
    _, _, cn, cm = batch(b=1)
    x0 = torch.randn(2, 1, 10, 8, 4, 5, generator=torch.Generator().manual_seed(4))
    calls = []

    def ideal(x_n, x_m, sigma, *args):
        calls.append(float(sigma[0]))
        return x0[0].expand_as(x_n), x0[1].expand_as(x_m)

    monkeypatch.setattr(diffusion, "denoise", ideal)
    out_n, out_m = diffusion.sample(cn, cm, 10, steps=7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out_n, x0[0], atol=1e-5) and torch.allclose(out_m, x0[1], atol=1e-5)
    assert len(calls) == 7 and calls[0] == pytest.approx(diffusion.config.sigma_max, rel=1e-4)
    assert all(a > b for a, b in zip(calls, calls[1:]))  # decreasing Karras schedule


def test_classifier_free_guidance_combines_conditional_and_unconditional(diffusion, monkeypatch):
    _, _, cn, cm = batch(b=1)
    a, c = torch.full((1, 10, 8, 4, 5), 0.2), torch.full((1, 10, 8, 4, 5), 1.0)

    def denoiser(x_n, x_m, sigma, cond_n, cond_m, *args):
        assert x_n.shape[0] == 2  # unconditional and conditional in one batch
        assert torch.count_nonzero(cond_n[0]) == 0 and torch.equal(cond_n[1], cn[0])
        out = torch.cat([a, c])
        return out, out

    monkeypatch.setattr(diffusion, "denoise", denoiser)
    diffusion.config.cond_aug, saved = 0.0, diffusion.config.cond_aug
    try:
        out_n, _ = diffusion.sample(cn, cm, 10, steps=3, guidance_scale=2.5)
    finally:
        diffusion.config.cond_aug = saved
    assert torch.allclose(out_n, a + 2.5 * (c - a), atol=1e-5)


def test_sampling_is_deterministic_per_seed(diffusion):
    _, _, cn, cm = batch(b=1)
    run = lambda seed: diffusion.sample(cn, cm, 10, steps=3, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0])


def test_condition_dropout_zeroes_condition_and_context(diffusion, monkeypatch):
    tn, tm, cn, cm = batch()
    seen = {}

    def spy(x_n, x_m, sigma, cond_n, cond_m, ctx_n, ctx_m):
        seen.update(cond_n=cond_n, ctx_n=ctx_n)
        return x_n, x_m

    monkeypatch.setattr(diffusion, "denoise", spy)
    diffusion.loss(tn, tm, cn, cm, drop_condition=torch.tensor([True, False]), sigma=1.0)
    assert torch.count_nonzero(seen["cond_n"][0]) == 0 and torch.count_nonzero(seen["ctx_n"][0]) == 0
    assert torch.count_nonzero(seen["cond_n"][1]) > 0 and torch.count_nonzero(seen["ctx_n"][1]) > 0


def test_config_validation():
    with pytest.raises(ValueError, match="prediction_type"):
        EDMConfig(prediction_type="sample")
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EDMConfig(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="unknown keys"):
        EDMConfig.from_dict({"sigma_mx": 3})
    assert EDMConfig.from_dict(EDMConfig(p_mean=0.7).to_dict()) == EDMConfig(p_mean=0.7)
