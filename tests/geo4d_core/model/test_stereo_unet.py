"""StereoUNet: shapes per configuration, SVD-scale layout on the meta device, SVD initialisation, cross-view attention."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from geo4d_core.model.stereo_unet import (
    IN_CHANNELS,
    OUT_CHANNELS,
    StereoUNet,
    unet_preset,
    widen_conv_in,
    widen_conv_out,
)

# Parameter count of the released stable-video-diffusion img2vid U-Net (diffusers' default
# UNetSpatioTemporalConditionModel config is that U-Net's layout).
SVD_UNET_PARAMETERS = 1_524_623_082


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(model: StereoUNet, b=1, t=10, h=8, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    x_n = torch.randn(b, t, IN_CHANNELS, h, w, generator=g)
    x_m = torch.randn(b, t, IN_CHANNELS, h, w, generator=g)
    ctx = torch.randn(b, 4, c.cross_attention_dim, generator=g)
    ids = torch.tensor([[10.0, 127.0, 0.02]]).expand(b, 3)
    return x_n, x_m, torch.full((b,), 0.1), ctx, ctx.clone(), ids


def randomize_cross_view(model: StereoUNet, scale: float = 0.2) -> None:
    """Give the zero-initialised output projections values, as training would."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in model.cross_view:
            out = layer.attn.to_out[0]
            out.weight.copy_(torch.randn(out.weight.shape, generator=g) * scale)


@pytest.mark.parametrize("name,hw", [("tiny", (8, 10)), ("small", (16, 20))])
def test_forward_shapes_and_dtypes(name, hw):
    torch.manual_seed(0)
    model = StereoUNet(**unet_preset(name)).eval()
    with torch.no_grad():
        out_n, out_m = model(*inputs(model, b=2, h=hw[0], w=hw[1]))
    assert out_n.shape == out_m.shape == (2, 10, OUT_CHANNELS, *hw)
    assert out_n.dtype == out_m.dtype == torch.float32
    assert torch.isfinite(out_n).all() and torch.isfinite(out_m).all()


def test_odd_latent_sizes_are_supported():
    model = StereoUNet(**unet_preset("tiny")).eval()
    with torch.no_grad():
        out_n, _ = model(*inputs(model, h=5, w=7))
    assert out_n.shape[-2:] == (5, 7)


def test_svd_configuration_on_meta_device_has_the_svd_size_plus_the_added_layers():
    with torch.device("meta"):
        base = UNetSpatioTemporalConditionModel()
        model = StereoUNet(**unet_preset("svd"))
        ablation = StereoUNet(**unet_preset("svd", mv_attention=False, context="clip"))
    assert count(base) == SVD_UNET_PARAMETERS
    assert model.num_decoder_layers == 12 and len(model.cross_view) == 12

    # Widened convolutions: conv_in 8 -> 16 input channels, conv_out 4 -> 8 outputs (320 wide, 3x3).
    widen = 320 * 8 * 9 + (4 * 320 * 9 + 4)
    decoder = sum(count(m) for m in (base.up_blocks, base.conv_norm_out, base.conv_out)) + (4 * 320 * 9 + 4)
    # One cross-attention per decoder layer: 2 LayerNorms (4C) + q, k, v (3C^2) + output (C^2 + C).
    widths = [1280] * 6 + [640] * 3 + [320] * 3
    cross = sum(4 * c * c + 5 * c for c in widths)
    assert count(model.cross_view) == cross
    assert count(ablation) == SVD_UNET_PARAMETERS + widen + decoder
    assert count(model) == SVD_UNET_PARAMETERS + widen + decoder + cross + count(model.context_encoder)
    heads = [layer.attn.heads for layer in model.cross_view]
    assert heads == [20] * 6 + [10] * 3 + [5] * 3


def test_new_attention_layers_start_at_zero_and_receive_gradients():
    model = StereoUNet(**unet_preset("tiny"))
    for layer in model.cross_view:
        assert torch.count_nonzero(layer.attn.to_out[0].weight) == 0
        assert torch.count_nonzero(layer.attn.to_out[0].bias) == 0
    out_n, out_m = model(*inputs(model))
    out_m.square().mean().backward()
    grads = [layer.attn.to_out[0].weight.grad for layer in model.cross_view]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("mv_attention", [True, False])
def test_view_m_depends_on_view_n_only_through_cross_view_attention(mv_attention):
    torch.manual_seed(0)
    model = StereoUNet(**unet_preset("tiny", mv_attention=mv_attention)).eval()
    if mv_attention:
        randomize_cross_view(model)
    x_n, x_m, t, ctx_n, ctx_m, ids = inputs(model)
    with torch.no_grad():
        out_n, out_m = model(x_n, x_m, t, ctx_n, ctx_m, ids)
        out_n2, out_m2 = model(x_n + torch.randn_like(x_n), x_m, t, ctx_n, ctx_m, ids)
    assert (out_n2 - out_n).abs().max() > 1e-3  # view n's own output follows its input
    change_m = (out_m2 - out_m).abs().max().item()
    if mv_attention:
        assert change_m > 1e-3
    else:
        assert change_m == 0.0
    # Either way, view n never depends on view m.
    with torch.no_grad():
        out_n3, _ = model(x_n, x_m + torch.randn_like(x_m), t, ctx_n, ctx_m, ids)
    assert torch.equal(out_n3, out_n)


def test_widening_is_documented_channel_placement():
    w = torch.randn(5, 8, 3, 3)
    wide = widen_conv_in(w)
    assert wide.shape == (5, 16, 3, 3)
    assert torch.equal(wide[:, 0:4], w[:, 0:4]) and torch.equal(wide[:, 8:12], w[:, 4:8])
    assert torch.count_nonzero(wide[:, 4:8]) == 0 and torch.count_nonzero(wide[:, 12:16]) == 0
    b = torch.randn(4)
    assert torch.equal(widen_conv_out(b), torch.cat([b, b]))
    with pytest.raises(ValueError, match="conv_in"):
        widen_conv_in(torch.randn(5, 16, 3, 3))


def test_initialisation_from_a_saved_unet_preserves_its_function(tmp_path):
    torch.manual_seed(0)
    kw = unet_preset("tiny")
    base = UNetSpatioTemporalConditionModel(in_channels=8, out_channels=4, num_frames=10, **kw)
    with torch.no_grad():  # move away from the init so zero-initialised parts could not hide a bug
        for p in base.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    base.save_pretrained(tmp_path / "svd" / "unet")
    model = StereoUNet.from_svd_checkpoint(str(tmp_path / "svd"), context="learned").eval()
    assert model.config.mv_attention and len(model.cross_view) == model.num_decoder_layers

    g = torch.Generator().manual_seed(1)
    noisy_n, noisy_m, cond_n, cond_m = (torch.randn(1, 10, 4, 8, 10, generator=g) for _ in range(4))
    ctx = torch.randn(1, 3, kw["cross_attention_dim"], generator=g)
    ids = torch.tensor([[9.0, 127.0, 0.02]])
    zero = torch.zeros_like(noisy_n)
    t = torch.tensor([0.3])
    with torch.no_grad():
        ref_n = base(torch.cat([noisy_n, cond_n], 2), t, ctx, ids).sample
        ref_m = base(torch.cat([noisy_m, cond_m], 2), t, ctx, ids).sample
        out_n, out_m = model(torch.cat([noisy_n, zero, cond_n, zero], 2), torch.cat([noisy_m, zero, cond_m, zero], 2),
                             t, ctx, ctx, ids)
    assert (out_n[:, :, :4] - ref_n).abs().max() < 1e-5
    assert (out_m[:, :, :4] - ref_m).abs().max() < 1e-5  # view m's decoder is a copy, cross-attn is zero
    assert (out_n[:, :, 4:] - ref_n).abs().max() < 1e-5  # pointmap head starts as a copy of the RGB head


def test_from_svd_unet_rejects_a_unet_with_other_channels():
    base = UNetSpatioTemporalConditionModel(in_channels=4, out_channels=4, **unet_preset("tiny"))
    with pytest.raises(ValueError, match="8 input / 4 output"):
        StereoUNet.from_svd_unet(base)


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="unknown StereoUNet configuration 'huge'"):
        unet_preset("huge")
    with pytest.raises(ValueError, match="unknown StereoUNet option"):
        unet_preset("tiny", widht=3)
    with pytest.raises(ValueError, match="context must be"):
        StereoUNet(**unet_preset("tiny", context="text"))


def test_save_and_load_round_trip(tmp_path):
    model = StereoUNet(**unet_preset("tiny", mv_attention=False)).eval()
    model.save_pretrained(tmp_path / "unet")
    loaded = StereoUNet.from_pretrained(tmp_path / "unet").eval()
    assert loaded.config.mv_attention is False and loaded.cross_view is None
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = StereoUNet(**unet_preset("tiny"))
    randomize_cross_view(model)
    args = inputs(model)

    def grads():
        model.zero_grad()
        out_n, out_m = model(*args)
        (out_n.square().mean() + out_m.square().mean()).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    assert torch.allclose(grads(), plain, atol=1e-7)
