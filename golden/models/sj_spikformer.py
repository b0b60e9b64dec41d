"""SpikingJelly's Spikformer as a project model: the float target of :mod:`golden.interop.spikingjelly`.

SpikingJelly 2.0's ``activation_based.model.spikformer.Spikformer`` differs from the
hardware family (:mod:`golden.models.hw_spikeformer`) in ways that change its spikes,
so it is its own family. Its float forward reproduces SpikingJelly's op for op (same
layouts, same reductions), which keeps every spike identical rather than merely close:

* stem: four ``Conv3x3 (no bias) -> BN -> [MaxPool(3, 2, 1)] -> LIF`` stages with
  widths ``D/8, D/4, D/2, D``. The max-pool acts on the BN output (currents, which
  may be negative, padded with ``-inf``), before the neuron; patch size 4 pools in
  stages 2 and 3, patch size 16 in all four;
* positional encoding: ``pe = Conv3x3 + BN + LIF`` on the stem's spikes, added to
  them (values 0..2);
* tokens are channel-major ``[T, B, D, N]`` (SpikingJelly's ``[T, N, C, L]``), so every
  1x1 ``Conv1d`` sees the layout it sees in SpikingJelly;
* each block: ``x = x + attn(x)``, ``x = x + mlp(x)``. Attention: one fused
  ``qkv = Conv1d(D, 3D) + BN + LIF`` whose channels are ``[q | k | v]``, each split
  into heads of ``D / heads`` consecutive channels; per head and time step
  ``O = ((V K^T) Q) * 0.125`` with ``Q, K, V`` as ``[dh, N]`` (spatial grouping, the
  same order of products as SpikingJelly; all values are exact integers times a
  power of two), ``attn_lif`` (threshold 0.5 by default) on ``[T, B, heads, dh, N]``,
  then ``proj = Conv1d + BN + LIF``. MLP: ``fc1, fc2 = Conv1d + BN + LIF``;
* head: mean over tokens, ``Linear`` per time step (``[T, B, classes]``,
  :meth:`SjSpikformer.forward_steps`), then the mean over ``T`` (``forward``).

The input is taken as SpikingJelly takes it (no clamping or scaling), laid out as
the project's data loaders give it: ``[B, T, C, H, W]`` (events) or ``[B, C, H, W]``
(a static image, repeated ``T`` times).

Neurons are the project's :class:`golden.neuron.LIFNode` (``decay_input``, hard reset
to 0, ``tau`` a power of two). SpikingJelly's Spikformer leaves ``tau`` and
``detach_reset`` of its three attention neurons at their defaults when the others are
given other values, so the attention neurons carry their own ``detach_reset``; they
must share ``tau`` with the rest (the converter refuses otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..neuron import SURROGATES, LIFNode
from .common import (
    ConfigError,
    apply_overrides,
    check_choice,
    check_float,
    check_int,
    owner,
    where,
)
from .registry import register_model

__all__ = [
    "PATCH_POOLS",
    "SjSpikformerConfig",
    "StemStage",
    "TokenConvBNLIF",
    "SjSelfAttention",
    "SjMLP",
    "SjBlock",
    "StepLinearHead",
    "SjSpikformer",
    "pooled_size",
]

PATCH_POOLS: dict[int, tuple[bool, bool, bool, bool]] = {
    4: (False, False, True, True),
    16: (True, True, True, True),
}
"""Patch size -> which of the four stem stages max-pool their currents (SpikingJelly's rule)."""

POOL = (3, 2, 1)
"""Kernel, stride and padding of the stem's max-pool."""


def pooled_size(size: int) -> int:
    """Side after one ``MaxPool(3, 2, 1)``: ``ceil(size / 2)``."""
    kernel, stride, padding = POOL
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class SjSpikformerConfig:
    """Architecture of a SpikingJelly Spikformer (the defaults are SpikingJelly's ``Spikformer()``).

    Parameters
    ----------
    name:
        Preset name (used in messages and checkpoints).
    in_channels, img_size, img_width, num_classes, timesteps:
        Input ``[T, C, H, W]`` with ``H = img_size`` and ``W = img_width`` (``None``:
        square); classes of the head; ``T`` (static images are repeated ``T`` times).
    patch_size:
        4 (max-pool in stem stages 2 and 3) or 16 (in all four stages).
    embed_dim, heads, depth, mlp_hidden:
        Token width ``D`` (a multiple of 8), attention heads, blocks and the MLP's
        hidden width (SpikingJelly's ``int(D * mlp_ratio)``).
    tau:
        Membrane time constant of every neuron (a power of two >= 2).
    v_threshold, attn_threshold:
        Threshold of every neuron but ``attn_lif``, and of ``attn_lif``.
    detach_reset, attn_detach_reset:
        Gradient option of the stem/MLP neurons and of the three attention neurons
        (no effect on the forward pass).
    surrogate, surrogate_alpha:
        Training surrogate of every neuron (no effect on the forward pass); ``None``
        alpha takes the surrogate's default.
    """

    name: str = "sj-spikformer"
    in_channels: int = 3
    img_size: int = 224
    img_width: int | None = None
    num_classes: int = 1000
    timesteps: int = 4
    patch_size: int = 16
    embed_dim: int = 256
    heads: int = 8
    depth: int = 4
    mlp_hidden: int = 1024
    tau: float = 2.0
    v_threshold: float = 1.0
    attn_threshold: float = 0.5
    detach_reset: bool = True
    attn_detach_reset: bool = True
    surrogate: str = "sigmoid"
    surrogate_alpha: float | None = None

    def __post_init__(self) -> None:
        for field in (
            "in_channels",
            "img_size",
            "num_classes",
            "timesteps",
            "embed_dim",
            "heads",
            "mlp_hidden",
        ):
            check_int(self, field)
        check_int(self, "depth", minimum=0)
        if self.img_width is not None:
            check_int(self, "img_width")
        if self.patch_size not in PATCH_POOLS:
            raise ConfigError(f"{where(self, 'patch_size')} must be 4 or 16, not {self.patch_size!r}")
        check_choice(self, "surrogate", SURROGATES)
        for field in ("v_threshold", "attn_threshold"):
            check_float(self, field)
        if self.surrogate_alpha is not None:
            check_float(self, "surrogate_alpha")
        for field in ("detach_reset", "attn_detach_reset"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"{where(self, field)} must be a bool, not {getattr(self, field)!r}")
        tau = check_float(self, "tau")
        if tau < 2 or math.log2(tau) != round(math.log2(tau)):
            raise ConfigError(f"{where(self, 'tau')} must be a power of two >= 2, not {tau!r}")
        if self.embed_dim % 8:
            raise ConfigError(
                f"{where(self, 'embed_dim')} must be a multiple of 8 (stem widths D/8, D/4, D/2), "
                f"not {self.embed_dim!r}"
            )
        if self.embed_dim % self.heads:
            raise ConfigError(f"{owner(self)}.heads ({self.heads}) must divide embed_dim ({self.embed_dim})")

    @property
    def width(self) -> int:
        """Input width ``W``."""
        return self.img_size if self.img_width is None else self.img_width

    @property
    def stem_channels(self) -> tuple[int, int, int, int]:
        """Output widths of the four stem stages."""
        d = self.embed_dim
        return (d // 8, d // 4, d // 2, d)

    @property
    def stem_pools(self) -> tuple[bool, bool, bool, bool]:
        """Which stem stages max-pool their currents."""
        return PATCH_POOLS[self.patch_size]

    @property
    def token_grid(self) -> tuple[int, int]:
        """``(H', W')`` of the token grid after the stem."""
        h, w = self.img_size, self.width
        for pooled in self.stem_pools:
            if pooled:
                h, w = pooled_size(h), pooled_size(w)
        return h, w

    @property
    def num_tokens(self) -> int:
        """Tokens per time step, ``N = H' W'``."""
        h, w = self.token_grid
        return h * w


def _lif(cfg: SjSpikformerConfig, *, attention: bool = False, v_threshold: float | None = None) -> LIFNode:
    return LIFNode(
        tau=cfg.tau,
        v_threshold=cfg.v_threshold if v_threshold is None else v_threshold,
        surrogate=cfg.surrogate,
        alpha=cfg.surrogate_alpha,
        detach_reset=cfg.attn_detach_reset if attention else cfg.detach_reset,
    )


class StemStage(nn.Module):
    """``Conv3x3 (no bias) -> BatchNorm2d -> [max-pool of the currents] -> LIF`` on ``[T, B, C, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, *, pool: bool, lif: LIFNode) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = pool
        self.lif = lif

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x.flatten(0, 1)))
        if self.pool:
            y = F.max_pool2d(y, *POOL)  # -inf padding: currents can be negative
        return self.lif(y.view(*x.shape[:2], *y.shape[1:]))

    def extra_repr(self) -> str:
        return f"pool_before_lif={self.pool}"


class TokenConvBNLIF(nn.Module):
    """``Conv1d(k=1, no bias) -> BatchNorm1d -> LIF`` on channel-major tokens ``[T, B, C, N]``."""

    def __init__(self, in_channels: int, out_channels: int, *, lif: LIFNode) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm1d(out_channels)
        self.lif = lif

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x.flatten(0, 1)))
        return self.lif(y.view(*x.shape[:2], *y.shape[1:]))


class SjSelfAttention(nn.Module):
    """SpikingJelly's spiking self-attention: fused ``qkv``, ``((V K^T) Q) * scale`` per head and step."""

    def __init__(self, cfg: SjSpikformerConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.heads = cfg.heads
        self.scale = 0.125
        self.qkv = TokenConvBNLIF(dim, 3 * dim, lif=_lif(cfg, attention=True))
        self.attn_lif = _lif(cfg, attention=True, v_threshold=cfg.attn_threshold)
        self.proj = TokenConvBNLIF(dim, dim, lif=_lif(cfg, attention=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, n = x.shape
        qkv = self.qkv(x).reshape(t, b, 3, self.heads, c // self.heads, n)
        with torch.autocast(device_type=x.device.type, enabled=False):
            # Spike counts are exact in float32 (< 2**24); float16 is not beyond 2048.
            q, k, v = qkv.float().unbind(2)  # each [T, B, heads, dh, N]
            out = ((v @ k.transpose(-2, -1)) @ q) * self.scale
        return self.proj(self.attn_lif(out).reshape(t, b, c, n))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, scale={self.scale}, grouping=spatial"


class SjMLP(nn.Module):
    """``fc2(fc1(x))`` with ``fc1: D -> hidden`` and ``fc2: hidden -> D``, both Conv1d-BN-LIF."""

    def __init__(self, cfg: SjSpikformerConfig) -> None:
        super().__init__()
        self.fc1 = TokenConvBNLIF(cfg.embed_dim, cfg.mlp_hidden, lif=_lif(cfg))
        self.fc2 = TokenConvBNLIF(cfg.mlp_hidden, cfg.embed_dim, lif=_lif(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class SjBlock(nn.Module):
    """``x = x + attn(x)``, then ``x = x + mlp(x)`` on ``[T, B, D, N]``."""

    def __init__(self, cfg: SjSpikformerConfig) -> None:
        super().__init__()
        self.attn = SjSelfAttention(cfg)
        self.mlp = SjMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class StepLinearHead(nn.Module):
    """Mean over tokens, then ``Linear(D, classes)`` per time step: ``[T, B, D, N] -> [T, B, classes]``."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=-1)
        y = self.linear(pooled.flatten(0, 1))
        return y.view(*pooled.shape[:2], -1)


class SjSpikformer(nn.Module):
    """SpikingJelly's Spikformer (see the module docstring); build it with ``create_model``.

    Attributes
    ----------
    cfg:
        The :class:`SjSpikformerConfig`.
    stem:
        Four :class:`StemStage` s.
    pe:
        The positional-encoding :class:`StemStage` (no pool), added to the stem's spikes.
    blocks:
        :class:`SjBlock` s.
    head:
        :class:`StepLinearHead`.
    """

    def __init__(self, cfg: SjSpikformerConfig) -> None:
        super().__init__()
        if not isinstance(cfg, SjSpikformerConfig):
            raise TypeError(f"SjSpikformer needs a SjSpikformerConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        widths = (cfg.in_channels, *cfg.stem_channels)
        self.stem = nn.ModuleList(
            StemStage(cin, cout, pool=pooled, lif=_lif(cfg))
            for cin, cout, pooled in zip(widths[:-1], widths[1:], cfg.stem_pools, strict=True)
        )
        self.pe = StemStage(cfg.embed_dim, cfg.embed_dim, pool=False, lif=_lif(cfg))
        self.blocks = nn.ModuleList(SjBlock(cfg) for _ in range(cfg.depth))
        self.head = StepLinearHead(cfg.embed_dim, cfg.num_classes)

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.dim() == 4:
            x = x.unsqueeze(1).expand(-1, cfg.timesteps, -1, -1, -1)
        expected = (cfg.timesteps, cfg.in_channels, cfg.img_size, cfg.width)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{cfg.name}: input must be [B, T, C, H, W] with T, C, H, W = {expected} "
                f"or [B, C, H, W], got shape {tuple(x.shape)}"
            )
        return x.transpose(0, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` or ``[B, C, H, W]`` -> residual stream ``[T, B, D, N]``."""
        x = self._sequence(x)
        for stage in self.stem:
            x = stage(x)
        x = self.pe(x) + x
        x = x.flatten(3)
        for block in self.blocks:
            x = block(x)
        return x

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every time step ``[T, B, classes]`` (SpikingJelly's own output)."""
        return self.head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_steps(x).mean(dim=0)


_PRESETS: dict[str, SjSpikformerConfig] = {
    "sj-spikformer": SjSpikformerConfig(),
    # Spikformer-2-256 for DVS128 Gesture as SpikingJelly builds it: Spikformer(T=16,
    # in_channels=2, img_size_h=img_size_w=128, patch_size=16, num_classes=11,
    # embed_dims=256, num_heads=16, mlp_ratio=4, depths=2): every stem stage pools, 8x8 tokens.
    "sj-spikformer-2-256-gesture": SjSpikformerConfig(
        name="sj-spikformer-2-256-gesture",
        in_channels=2,
        img_size=128,
        num_classes=11,
        timesteps=16,
        patch_size=16,
        embed_dim=256,
        heads=16,
        depth=2,
        mlp_hidden=1024,
    ),
}


@register_model
def sj_spikformer(**overrides: Any) -> SjSpikformer:
    """SpikingJelly's ``Spikformer()`` defaults: 3x224x224, T=4, patch 16, D=256, 8 heads, depth 4."""
    return SjSpikformer(apply_overrides(_PRESETS["sj-spikformer"], overrides))


@register_model
def sj_spikformer_2_256_gesture(**overrides: Any) -> SjSpikformer:
    """Spikformer-2-256 for 2x128x128 DVS at T=16, 11 classes (the paper-sized DVS model)."""
    return SjSpikformer(apply_overrides(_PRESETS["sj-spikformer-2-256-gesture"], overrides))
