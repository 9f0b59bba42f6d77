"""`StereoUNet`: the two-view spatio-temporal denoiser of the geometry-aware 4D world model.

Architecture (DESIGN.md §4, the paper's "shared encoder, two decoders, cross-view attention"):

* `self.unet` is a diffusers `UNetSpatioTemporalConditionModel` (the SVD img2vid U-Net layout). Its
  `conv_in`, time embeddings, down blocks and mid block form the **shared encoder**, run on view n and
  view m in one batch. Its up blocks, `conv_norm_out` and `conv_out` are the **decoder of view n**.
  Keeping the whole diffusers module (instead of re-declaring its pieces) means its state-dict keys are
  exactly those of a pretrained SVD U-Net, so initialisation from a checkpoint is a plain state-dict copy.
* `self.decoder_m` holds a second set of up blocks / output head with the same architecture and
  independent weights: the **decoder of view m**, whose output is expressed in camera n's frame.
* `self.cross_view[k]` is a `CrossViewAttention` after **each decoder layer** k (one resnet + spatio-
  temporal transformer of an up block; 3 per block x 4 blocks = 12 at SVD scale): queries are view m's
  feature tokens, keys / values are view n's tokens of the same frame at the same stage. Their output
  projections start at zero, so a freshly added layer is the identity.
* `mv_attention=False` builds no cross-view layers: the "w/o MV attn" ablation, where the two decoders
  share only the encoder weights and never exchange information.

Per view the input is the channel concatenation (noisy RGB latent, noisy pointmap latent, RGB condition
latent, pointmap condition latent), 4 + 4 + 4 + 4 = 16 channels, and the output is (RGB latent,
pointmap latent), 8 channels; see `geo4d_core.model.latents` for the channel layout helpers.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from diffusers import ModelMixin, UNetSpatioTemporalConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from torch import nn

__all__ = [
    "StereoUNet",
    "CrossViewAttention",
    "ConditionContextEncoder",
    "UNET_PRESETS",
    "unet_preset",
    "widen_conv_in",
    "widen_conv_out",
]

LATENT_CHANNELS = 4  # channels of one VAE latent (RGB or pointmap)
IN_CHANNELS = 4 * LATENT_CHANNELS  # noisy RGB, noisy pointmap, RGB condition, pointmap condition
OUT_CHANNELS = 2 * LATENT_CHANNELS  # RGB latent, pointmap latent

# Architectures of the named configurations. `svd` is the stable-video-diffusion img2vid U-Net
# (block widths, heads, 1024-d CLIP context, 3 x 256-d added time ids); `tiny` runs the test suite on
# 2 CPU cores; `small` is for CPU training runs (DESIGN.md §6: ~0.4 s/step at 16x20 latents).
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        num_attention_heads=(2, 4),
        layers_per_block=1,
        cross_attention_dim=64,
        addition_time_embed_dim=16,
        projection_class_embeddings_input_dim=48,
    ),
    "small": dict(
        block_out_channels=(64, 128, 128),
        down_block_types=(
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types=(
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        num_attention_heads=(2, 4, 4),
        layers_per_block=1,
        cross_attention_dim=128,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,
    ),
    "svd": dict(
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=(
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types=(
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        num_attention_heads=(5, 10, 20, 20),
        layers_per_block=2,
        cross_attention_dim=1024,
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=768,
    ),
}


def unet_preset(name: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of `StereoUNet` for a named configuration, with overrides applied."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown StereoUNet configuration {name!r}; expected one of {sorted(UNET_PRESETS)}")
    kwargs = dict(UNET_PRESETS[name])
    unknown = sorted(set(overrides) - set(_STEREO_ARGS))
    if unknown:
        raise ValueError(f"unknown StereoUNet option(s) {unknown}; expected a subset of {sorted(_STEREO_ARGS)}")
    kwargs.update(overrides)
    return kwargs


class CrossViewAttention(nn.Module):
    """Residual cross-attention from view m's feature tokens (queries) to view n's (keys and values).

    Tokens are the H x W spatial positions of one frame at one decoder stage: each frame of view m
    attends to the same frame of view n. Layer-normed inputs; the output projection is zero at
    initialisation, so the layer starts as the identity on view m's features.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"CrossViewAttention: channels {channels} not divisible by heads {heads}")
        self.norm_m = nn.LayerNorm(channels)
        self.norm_n = nn.LayerNorm(channels)
        self.attn = Attention(query_dim=channels, cross_attention_dim=channels, heads=heads,
                              dim_head=channels // heads, out_bias=True)
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, h_m: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
        """h_m, h_n: (B*T, C, H, W) features of view m and view n; returns the updated view-m features."""
        bt, c, hh, ww = h_m.shape
        q = h_m.flatten(2).transpose(1, 2)  # (B*T, H*W, C)
        kv = h_n.flatten(2).transpose(1, 2)
        out = self.attn(self.norm_m(q), encoder_hidden_states=self.norm_n(kv))
        return h_m + out.transpose(1, 2).reshape(bt, c, hh, ww)


class ConditionContextEncoder(nn.Module):
    """A small learned stand-in for the CLIP image embedding: condition latents -> context tokens.

    Input: (B, 8, h, w) RGB + pointmap condition latents of the current frame. Output: (B, tokens, D)
    tokens for the U-Net's cross-attention, D = `cross_attention_dim`.
    """

    def __init__(self, in_channels: int, width: int, dim: int, tokens_per_side: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(tokens_per_side),
        )
        self.proj = nn.Linear(width, dim)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(cond).flatten(2).transpose(1, 2))


class _ViewDecoder(nn.Module):
    """The decoder of view m: up blocks and output head with the same layout as the shared U-Net's."""

    def __init__(self, unet: UNetSpatioTemporalConditionModel):
        super().__init__()
        self.up_blocks = copy.deepcopy(unet.up_blocks)
        self.conv_norm_out = copy.deepcopy(unet.conv_norm_out)
        self.conv_out = copy.deepcopy(unet.conv_out)


class StereoUNet(ModelMixin, ConfigMixin):
    """Shared-encoder, two-decoder spatio-temporal U-Net with cross-view attention (see module docstring).

    `forward(sample_n, sample_m, timestep, context_n, context_m, added_time_ids)` takes per-view inputs
    of shape (B, T, 16, h, w) and returns per-view outputs (B, T, 8, h, w). View m's output is the
    latent of its pointmap expressed in camera n's frame (and its RGB).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        down_block_types: tuple[str, ...] = UNET_PRESETS["svd"]["down_block_types"],
        up_block_types: tuple[str, ...] = UNET_PRESETS["svd"]["up_block_types"],
        num_attention_heads: tuple[int, ...] = (5, 10, 20, 20),
        layers_per_block: int = 2,
        cross_attention_dim: int = 1024,
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        transformer_layers_per_block: int = 1,
        in_channels: int = IN_CHANNELS,
        out_channels: int = OUT_CHANNELS,
        num_frames: int = 10,
        mv_attention: bool = True,
        context: str = "learned",
        context_tokens_per_side: int = 2,
    ):
        super().__init__()
        if context not in ("learned", "clip"):
            raise ValueError(f"StereoUNet: context must be 'learned' or 'clip', got {context!r}")
        if projection_class_embeddings_input_dim != 3 * addition_time_embed_dim:
            raise ValueError(
                "StereoUNet: projection_class_embeddings_input_dim must be 3 x addition_time_embed_dim "
                f"(three added time ids: fps, motion bucket, condition noise); got "
                f"{projection_class_embeddings_input_dim} and {addition_time_embed_dim}"
            )
        self.unet = UNetSpatioTemporalConditionModel(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels),
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=tuple(num_attention_heads),
            num_frames=num_frames,
        )
        self.decoder_m = _ViewDecoder(self.unet)
        heads = list(reversed(num_attention_heads))
        self.cross_view = (
            nn.ModuleList(
                CrossViewAttention(block.resnets[0].spatial_res_block.out_channels, heads[i])
                for i, block in enumerate(self.unet.up_blocks)
                for _ in block.resnets
            )
            if mv_attention
            else None
        )
        self.context_encoder = (
            ConditionContextEncoder(2 * LATENT_CHANNELS, block_out_channels[0], cross_attention_dim,
                                    context_tokens_per_side)
            if context == "learned"
            else None
        )
        self.gradient_checkpointing = False

    # ------------------------------------------------------------------ helpers
    @property
    def num_decoder_layers(self) -> int:
        """Layers of one decoder (resnet + optional transformer), i.e. places for cross-view attention."""
        return sum(len(block.resnets) for block in self.unet.up_blocks)

    def learned_context(self, cond_latents: torch.Tensor) -> torch.Tensor:
        """(B, 8, h, w) condition latents of one view -> (B, S, D) context tokens (context='learned')."""
        if self.context_encoder is None:
            raise RuntimeError("StereoUNet was built with context='clip'; pass CLIP image embeddings instead")
        return self.context_encoder(cond_latents)

    def _time_embedding(self, timestep: torch.Tensor, added_time_ids: torch.Tensor, batch: int,
                        dtype: torch.dtype) -> torch.Tensor:
        u = self.unet
        timestep = torch.as_tensor(timestep, device=added_time_ids.device)
        if timestep.ndim == 0:
            timestep = timestep[None]
        timestep = timestep.expand(batch)
        emb = u.time_embedding(u.time_proj(timestep).to(dtype))
        added = u.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(dtype)
        return emb + u.add_embedding(added)

    @staticmethod
    def _run_layer(block: nn.Module, j: int, h: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor,
                   ctx: torch.Tensor, indicator: torch.Tensor) -> torch.Tensor:
        h = torch.cat([h, skip], dim=1)
        h = block.resnets[j](h, emb, image_only_indicator=indicator)
        if getattr(block, "has_cross_attention", False):
            h = block.attentions[j](h, encoder_hidden_states=ctx, image_only_indicator=indicator,
                                    return_dict=False)[0]
        return h

    def _maybe_checkpoint(self, fn, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sample_n: torch.Tensor,
        sample_m: torch.Tensor,
        timestep: torch.Tensor | float,
        context_n: torch.Tensor,
        context_m: torch.Tensor,
        added_time_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoise both views.

        Args:
            sample_n, sample_m: (B, T, 16, h, w) network inputs of view n and view m.
            timestep: scalar or (B,) noise conditioning (EDM c_noise = log(sigma) / 4).
            context_n, context_m: (B, S, D) cross-attention context of each view.
            added_time_ids: (B, 3) fps, motion bucket and condition-noise ids (SVD's micro-conditioning).

        Returns:
            (out_n, out_m): (B, T, 8, h, w) each.
        """
        if sample_n.shape != sample_m.shape:
            raise ValueError(f"view n and m inputs differ in shape: {tuple(sample_n.shape)} vs {tuple(sample_m.shape)}")
        u = self.unet
        b, t = sample_n.shape[:2]
        # Shared encoder: both views in one batch of 2B clips.
        x = torch.cat([sample_n, sample_m], dim=0).flatten(0, 1)  # (2B*T, 16, h, w)
        emb1 = self._time_embedding(
            torch.as_tensor(timestep, dtype=x.dtype, device=x.device), added_time_ids, b, x.dtype
        )
        emb = torch.cat([emb1, emb1], 0).repeat_interleave(t, dim=0)  # (2B*T, E)
        ctx = torch.cat([context_n, context_m], 0).repeat_interleave(t, dim=0)
        indicator = torch.zeros(2 * b, t, dtype=x.dtype, device=x.device)

        h = u.conv_in(x)
        skips = [h]
        for block in u.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = self._maybe_checkpoint(
                    lambda hh, blk=block: blk(hidden_states=hh, temb=emb, encoder_hidden_states=ctx,
                                              image_only_indicator=indicator), h)
            else:
                h, res = self._maybe_checkpoint(
                    lambda hh, blk=block: blk(hidden_states=hh, temb=emb, image_only_indicator=indicator), h)
            skips.extend(res)
        h = u.mid_block(hidden_states=h, temb=emb, encoder_hidden_states=ctx, image_only_indicator=indicator)

        # Two decoders, layer by layer; view m's cross-attends to view n's after every layer.
        bt = b * t
        h_n, h_m = h[:bt], h[bt:]
        emb_v, ctx_n, ctx_m = emb[:bt], ctx[:bt], ctx[bt:]
        ind_v = indicator[:b]
        k = 0
        for blk_n, blk_m in zip(u.up_blocks, self.decoder_m.up_blocks, strict=True):
            for j in range(len(blk_n.resnets)):
                skip = skips.pop()
                h_n = self._maybe_checkpoint(
                    lambda hh, s, blk=blk_n, jj=j: self._run_layer(blk, jj, hh, s, emb_v, ctx_n, ind_v),
                    h_n, skip[:bt])
                h_m = self._maybe_checkpoint(
                    lambda hh, s, blk=blk_m, jj=j: self._run_layer(blk, jj, hh, s, emb_v, ctx_m, ind_v),
                    h_m, skip[bt:])
                if self.cross_view is not None:
                    h_m = self._maybe_checkpoint(self.cross_view[k], h_m, h_n)
                k += 1
            if blk_n.upsamplers is not None:
                size = skips[-1].shape[2:]
                h_n = blk_n.upsamplers[0](h_n, size)
                h_m = blk_m.upsamplers[0](h_m, size)

        out_n = u.conv_out(u.conv_act(u.conv_norm_out(h_n)))
        d = self.decoder_m
        out_m = d.conv_out(u.conv_act(d.conv_norm_out(h_m)))
        return out_n.reshape(b, t, *out_n.shape[1:]), out_m.reshape(b, t, *out_m.shape[1:])

    # ------------------------------------------------------------------ initialisation from SVD
    @classmethod
    def from_svd_unet(cls, svd_unet: UNetSpatioTemporalConditionModel, **overrides: Any) -> "StereoUNet":
        """Build a StereoUNet whose encoder and both decoders are copies of a pretrained SVD-layout U-Net.

        The architecture (widths, heads, context size, time ids) is read from `svd_unet.config`;
        `overrides` may set `mv_attention`, `context`, `num_frames`, `context_tokens_per_side`.
        `conv_in` is widened from the U-Net's (noisy latent, image latent) input to our 16 channels and
        `conv_out` from 4 to 8 channels with `widen_conv_in` / `widen_conv_out`, so that with zero
        pointmap channels the RGB output equals the pretrained U-Net's. Cross-view attention starts at zero.
        """
        c = svd_unet.config
        if c.in_channels != 2 * LATENT_CHANNELS or c.out_channels != LATENT_CHANNELS:
            raise ValueError(
                f"expected an SVD img2vid U-Net with 8 input / 4 output channels, got {c.in_channels} / "
                f"{c.out_channels}"
            )
        kwargs = dict(
            block_out_channels=tuple(c.block_out_channels),
            down_block_types=tuple(c.down_block_types),
            up_block_types=tuple(c.up_block_types),
            num_attention_heads=_per_block(c.num_attention_heads, len(c.down_block_types)),
            layers_per_block=c.layers_per_block,
            cross_attention_dim=c.cross_attention_dim,
            addition_time_embed_dim=c.addition_time_embed_dim,
            projection_class_embeddings_input_dim=c.projection_class_embeddings_input_dim,
            transformer_layers_per_block=c.transformer_layers_per_block,
            context="clip",
        )
        kwargs.update(overrides)
        model = cls(**kwargs)
        state = dict(svd_unet.state_dict())
        state["conv_in.weight"] = widen_conv_in(state["conv_in.weight"])
        state["conv_out.weight"] = widen_conv_out(state["conv_out.weight"])
        state["conv_out.bias"] = widen_conv_out(state["conv_out.bias"])
        model.unet.load_state_dict(state)
        model.decoder_m.load_state_dict(
            {k: v for k, v in model.unet.state_dict().items()
             if k.split(".")[0] in ("up_blocks", "conv_norm_out", "conv_out")}
        )
        return model

    @classmethod
    def from_svd_checkpoint(cls, path: str, **overrides: Any) -> "StereoUNet":
        """`from_svd_unet` on the U-Net of a local diffusers-format SVD checkpoint (folder or its `unet/`)."""
        import os

        subfolder = "unet" if os.path.isdir(os.path.join(path, "unet")) else None
        svd_unet = UNetSpatioTemporalConditionModel.from_pretrained(path, subfolder=subfolder)
        return cls.from_svd_unet(svd_unet, **overrides)


_STEREO_ARGS = (
    "block_out_channels", "down_block_types", "up_block_types", "num_attention_heads", "layers_per_block",
    "cross_attention_dim", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
    "transformer_layers_per_block", "in_channels", "out_channels", "num_frames", "mv_attention", "context",
    "context_tokens_per_side",
)


def _per_block(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),) * n


def widen_conv_in(weight: torch.Tensor) -> torch.Tensor:
    """SVD `conv_in` weight (C, 8, k, k) -> ours (C, 16, k, k), function-preserving.

    SVD's input channels are [noisy latent (4), condition image latent (4)]; ours are [noisy RGB (4),
    noisy pointmap (4), RGB condition (4), pointmap condition (4)]. The RGB slots take SVD's weights, the
    pointmap slots start at zero, so the output does not depend on pointmap inputs until trained.
    """
    if weight.ndim != 4 or weight.shape[1] != 2 * LATENT_CHANNELS:
        raise ValueError(f"conv_in weight must be (C, 8, k, k), got {tuple(weight.shape)}")
    L = LATENT_CHANNELS
    out = weight.new_zeros(weight.shape[0], IN_CHANNELS, *weight.shape[2:])
    out[:, 0:L] = weight[:, 0:L]  # noisy latent -> noisy RGB latent
    out[:, 2 * L:3 * L] = weight[:, L:2 * L]  # image latent -> RGB condition latent
    return out


def widen_conv_out(param: torch.Tensor) -> torch.Tensor:
    """SVD `conv_out` weight (4, C, k, k) or bias (4,) -> ours with 8 outputs, function-preserving.

    Output channels 0-3 (RGB latent) are SVD's. Channels 4-7 (pointmap latent) start as a copy of the
    same head: the pointmap VAE is initialised from the RGB VAE, so the RGB prediction is the natural
    starting point for the pointmap branch, and the RGB outputs are unchanged.
    """
    if param.shape[0] != LATENT_CHANNELS:
        raise ValueError(f"conv_out parameter must have 4 outputs, got {tuple(param.shape)}")
    return torch.cat([param, param.clone()], dim=0)
