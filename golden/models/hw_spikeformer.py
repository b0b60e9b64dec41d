"""Hardware Spikeformer: a fully spiking Spikeformer the accelerator can run exactly.

Every tensor between layers is binary spikes or a small non-negative integer, and
every layer has an integer reference in :mod:`contract.numerics`:

* tokenizer: ``conv (no bias) -> BN -> LIF [-> max-pool on spikes]`` stages;
  the image/event input is integer-valued and divided by ``input_max``;
* tokens ``[T, B, N, D]`` (``N = H' W'``) form a residual stream of small integers;
* each block: ``x = x + attn(x)`` per attention stage, then ``x = x + mlp(x)``.
  Spiking attention (Spikformer SSA without softmax): ``Q, K, V`` spikes from
  ``Linear -> BN -> LIF``, ``O = (Q K^T) V`` per head inside each token group,
  ``attn_lif(O * scale)`` (threshold 0.5), then ``proj: Linear -> BN -> LIF``.
  Token groups: ``joint`` (all ``T N`` tokens of a sample), ``divided`` (a
  temporal stage over ``T`` per position, then a spatial stage over ``N`` per
  step, as TimeSformer / Spikeformer's STA) or ``spatial`` (over ``N`` per step);
* head: mean over ``T`` and ``N`` of the residual stream, then ``Linear``.

Module and attribute names (``tokenizer[i].conv/bn/lif/pool``, ``blocks[i].attn[j].q/k/v/proj``
with ``.linear/.bn/.lif``, ``attn_lif``, ``grouping``, ``heads``, ``scale``,
``blocks[i].mlp.fc1/fc2``, ``head.linear``) are an interface: the quantizer walks them.
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
    check_bool_tuple,
    check_choice,
    check_float,
    check_int,
    check_int_tuple,
    owner,
    prepare_input,
    where,
)
from .registry import register_model

__all__ = [
    "ATTENTION_MODES",
    "HwSpikeformerConfig",
    "SpikeMaxPool",
    "ConvBNLIF",
    "LinearBNLIF",
    "SpikeAttention",
    "SpikeMLP",
    "HwBlock",
    "SumPoolHead",
    "HwSpikeformer",
    "group_attention",
]

ATTENTION_MODES: dict[str, tuple[str, ...]] = {
    "joint": ("joint",),
    "divided": ("temporal", "spatial"),
    "spatial": ("spatial",),
}
"""Attention option -> token groupings of its attention stages, in order."""


@dataclass(frozen=True)
class HwSpikeformerConfig:
    """Architecture of a hardware Spikeformer.

    Parameters
    ----------
    name:
        Preset name (used in messages and checkpoints).
    in_channels, img_size, num_classes, timesteps:
        Input ``[T, C, H, W]`` with ``H = W = img_size``; classes of the head.
    tokenizer_channels:
        Output widths of the tokenizer stages before the last one (which has ``embed_dim``).
    tokenizer_pools:
        For each tokenizer stage (``len(tokenizer_channels) + 1``), whether a spike max-pool follows.
    tokenizer_kernel:
        Odd conv kernel size (``same`` padding).
    pool_kernel, pool_stride, pool_padding:
        The spike max-pool window (zero padding; ``padding <= kernel // 2``).
    embed_dim, depth, heads, mlp_ratio:
        Token width ``D``, number of blocks, attention heads, MLP hidden width ``mlp_ratio * D``.
    attention:
        Token grouping: ``joint``, ``divided`` or ``spatial``.
    tau, v_threshold, surrogate:
        LIF parameters of every neuron (``tau`` must be a power of two for the hardware).
    attn_scale, attn_threshold:
        Scale of ``(Q K^T) V`` (a power of two) and the attention LIF threshold.
    input_bits:
        Inputs are integers in ``[0, 2**input_bits - 1]``; the model divides by that maximum.
    """

    name: str = "hw"
    in_channels: int = 1
    img_size: int = 8
    num_classes: int = 10
    timesteps: int = 4
    tokenizer_channels: tuple[int, ...] = (32,)
    tokenizer_pools: tuple[bool, ...] = (False, True)
    tokenizer_kernel: int = 3
    pool_kernel: int = 2
    pool_stride: int = 2
    pool_padding: int = 0
    embed_dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 2
    attention: str = "joint"
    tau: float = 2.0
    v_threshold: float = 1.0
    surrogate: str = "sigmoid"
    attn_scale: float = 0.125
    attn_threshold: float = 0.5
    input_bits: int = 8

    def __post_init__(self) -> None:
        for field in (
            "in_channels",
            "img_size",
            "num_classes",
            "timesteps",
            "tokenizer_kernel",
            "pool_kernel",
            "pool_stride",
            "embed_dim",
            "depth",
            "heads",
            "mlp_ratio",
            "input_bits",
        ):
            check_int(self, field)
        check_int(self, "pool_padding", minimum=0)
        channels = check_int_tuple(self, "tokenizer_channels")
        check_bool_tuple(self, "tokenizer_pools", length=len(channels) + 1)
        check_choice(self, "attention", ATTENTION_MODES)
        check_choice(self, "surrogate", SURROGATES)
        for field in ("v_threshold", "attn_threshold"):
            check_float(self, field)
        for field in ("tau", "attn_scale"):
            value = check_float(self, field)
            if math.log2(value) != round(math.log2(value)):
                raise ConfigError(
                    f"{where(self, field)} must be a power of two "
                    f"(the integer model shifts by it), not {value!r}"
                )
        if self.tau < 2:
            raise ConfigError(f"{where(self, 'tau')} must be >= 2, not {self.tau!r}")
        if self.tokenizer_kernel % 2 == 0:
            raise ConfigError(
                f"{where(self, 'tokenizer_kernel')} must be odd "
                f"('same' padding), not {self.tokenizer_kernel!r}"
            )
        if self.pool_padding > self.pool_kernel // 2:
            raise ConfigError(
                f"{where(self, 'pool_padding')} must be <= pool_kernel // 2 "
                f"= {self.pool_kernel // 2}, not {self.pool_padding!r}"
            )
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"{where(self, 'heads')} ({self.heads}) must divide embed_dim ({self.embed_dim})"
            )
        if self.token_grid < 1:
            raise ConfigError(
                f"{owner(self)}: img_size {self.img_size} leaves no tokens after "
                f"{sum(self.tokenizer_pools)} pooling stage(s)"
            )

    @property
    def input_max(self) -> int:
        """The integer input's maximum ``2**input_bits - 1``; the model divides its input by it."""
        return (1 << self.input_bits) - 1

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output widths of all tokenizer stages (the last is ``embed_dim``)."""
        return (*self.tokenizer_channels, self.embed_dim)

    @property
    def token_grid(self) -> int:
        """Side ``H' = W'`` of the token grid after the tokenizer."""
        size = self.img_size
        for pooled in self.tokenizer_pools:
            if pooled:
                size = (size + 2 * self.pool_padding - self.pool_kernel) // self.pool_stride + 1
        return size

    @property
    def num_tokens(self) -> int:
        """Tokens per time step, ``N = H' W'``."""
        return self.token_grid**2


def _lif(cfg: HwSpikeformerConfig, v_threshold: float | None = None) -> LIFNode:
    return LIFNode(
        tau=cfg.tau,
        v_threshold=cfg.v_threshold if v_threshold is None else v_threshold,
        surrogate=cfg.surrogate,
    )


class SpikeMaxPool(nn.Module):
    """2-D max-pool of spikes ``[T, B, C, H, W]`` (an OR over the window).

    PyTorch pads with ``-inf``; on non-negative spikes with ``padding <= kernel // 2``
    every window holds a real element, so this equals zero padding (the integer rule).
    """

    def __init__(self, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x.flatten(0, 1), self.kernel, self.stride, self.padding)
        return y.view(*x.shape[:2], *y.shape[1:])

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}"


class ConvBNLIF(nn.Module):
    """``conv (no bias) -> BatchNorm2d -> LIF -> [SpikeMaxPool]`` on ``[T, B, C, H, W]``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel: int, lif: LIFNode, pool: SpikeMaxPool | None
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.lif = lif
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x.flatten(0, 1)))
        s = self.lif(y.view(*x.shape[:2], *y.shape[1:]))
        return s if self.pool is None else self.pool(s)


class LinearBNLIF(nn.Module):
    """``Linear (no bias) -> BatchNorm1d over D -> LIF`` on tokens ``[T, B, N, D]``."""

    def __init__(self, in_features: int, out_features: int, *, lif: LIFNode) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        self.lif = lif

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.linear(x).flatten(0, 2))
        return self.lif(y.view(*x.shape[:3], -1))


def group_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, heads: int, grouping: str
) -> torch.Tensor:
    """``(Q K^T) V`` per head inside each token group; ``[T, B, N, D]`` in and out, no scale.

    The inputs are spikes, so every product is an exact integer (< 2**24) in
    float32 and ``Q (K^T V)`` equals ``(Q K^T) V`` exactly: the cheaper order is
    used (linear in the group size when it exceeds the head width). Runs in
    float32 with autocast off, because float16 is not exact beyond 2048.
    """
    t, b, n, d = q.shape
    # [T, B, N, H, dh] -> [..., group, dh]; `order` moves the grouped axis next to dh.
    order = {"joint": (1, 3, 0, 2, 4), "temporal": (1, 2, 3, 0, 4), "spatial": (0, 1, 3, 2, 4)}[grouping]
    inverse = [order.index(i) for i in range(5)]

    def split(z: torch.Tensor) -> torch.Tensor:
        z = z.float().reshape(t, b, n, heads, d // heads).permute(order)
        return z.flatten(2, 3) if grouping == "joint" else z

    with torch.autocast(device_type=q.device.type, enabled=False):
        qg, kg, vg = split(q), split(k), split(v)
        if qg.shape[-2] > qg.shape[-1]:
            out = qg @ (kg.transpose(-2, -1) @ vg)
        else:
            out = (qg @ kg.transpose(-2, -1)) @ vg
    if grouping == "joint":
        out = out.unflatten(2, (t, n))
    return out.permute(inverse).reshape(t, b, n, d)


class SpikeAttention(nn.Module):
    """Spiking self-attention over one token grouping (``joint``, ``temporal`` or ``spatial``).

    ``proj(attn_lif(scale * (Q K^T) V))`` with ``Q, K, V`` spike tensors; no softmax.
    """

    def __init__(self, cfg: HwSpikeformerConfig, grouping: str) -> None:
        super().__init__()
        if grouping not in ("joint", "temporal", "spatial"):
            raise ValueError(f"attention grouping must be joint, temporal or spatial, not {grouping!r}")
        dim = cfg.embed_dim
        self.grouping = grouping
        self.heads = cfg.heads
        self.scale = cfg.attn_scale
        self.q = LinearBNLIF(dim, dim, lif=_lif(cfg))
        self.k = LinearBNLIF(dim, dim, lif=_lif(cfg))
        self.v = LinearBNLIF(dim, dim, lif=_lif(cfg))
        self.attn_lif = _lif(cfg, cfg.attn_threshold)
        self.proj = LinearBNLIF(dim, dim, lif=_lif(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = group_attention(self.q(x), self.k(x), self.v(x), heads=self.heads, grouping=self.grouping)
        # Kept in float32 (float16 cannot hold every multiple of the scale up to the counts' range).
        return self.proj(self.attn_lif(out * self.scale))

    def extra_repr(self) -> str:
        return f"grouping={self.grouping}, heads={self.heads}, scale={self.scale}"


class SpikeMLP(nn.Module):
    """``fc2(fc1(x))`` with ``fc1: D -> rD`` and ``fc2: rD -> D``, both Linear-BN-LIF."""

    def __init__(self, cfg: HwSpikeformerConfig) -> None:
        super().__init__()
        hidden = cfg.mlp_ratio * cfg.embed_dim
        self.fc1 = LinearBNLIF(cfg.embed_dim, hidden, lif=_lif(cfg))
        self.fc2 = LinearBNLIF(hidden, cfg.embed_dim, lif=_lif(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class HwBlock(nn.Module):
    """``x = x + a(x)`` for each attention stage ``a``, then ``x = x + mlp(x)``."""

    def __init__(self, cfg: HwSpikeformerConfig) -> None:
        super().__init__()
        self.attn = nn.ModuleList(SpikeAttention(cfg, g) for g in ATTENTION_MODES[cfg.attention])
        self.mlp = SpikeMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn in self.attn:
            x = x + attn(x)
        return x + self.mlp(x)


class SumPoolHead(nn.Module):
    """Mean of the residual stream over ``T`` and ``N``, then ``Linear(D, classes)``.

    The integer model sums instead and folds ``1 / (T N)`` into the head scale.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(0, 2)))


class HwSpikeformer(nn.Module):
    """Hardware Spikeformer (see the module docstring); build it with ``create_model``.

    Attributes
    ----------
    cfg:
        The :class:`HwSpikeformerConfig`.
    tokenizer:
        :class:`ConvBNLIF` stages.
    blocks:
        :class:`HwBlock` s.
    head:
        :class:`SumPoolHead`.
    """

    def __init__(self, cfg: HwSpikeformerConfig) -> None:
        super().__init__()
        if not isinstance(cfg, HwSpikeformerConfig):
            raise TypeError(f"HwSpikeformer needs a HwSpikeformerConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        pool = (cfg.pool_kernel, cfg.pool_stride, cfg.pool_padding)
        widths = (cfg.in_channels, *cfg.stage_channels)
        self.tokenizer = nn.ModuleList(
            ConvBNLIF(
                cin,
                cout,
                kernel=cfg.tokenizer_kernel,
                lif=_lif(cfg),
                pool=SpikeMaxPool(*pool) if pooled else None,
            )
            for cin, cout, pooled in zip(widths[:-1], widths[1:], cfg.tokenizer_pools, strict=True)
        )
        self.blocks = nn.ModuleList(HwBlock(cfg) for _ in range(cfg.depth))
        self.head = SumPoolHead(cfg.embed_dim, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Integer-valued ``[B, T, C, H, W]`` or ``[B, C, H, W]`` -> residual stream ``[T, B, N, D]``."""
        cfg = self.cfg
        x = prepare_input(
            x, timesteps=cfg.timesteps, in_channels=cfg.in_channels, img_size=cfg.img_size, model=cfg.name
        )
        x = x.clamp(0, cfg.input_max) / cfg.input_max  # counts clip to input_bits; 1/max folds into layer 0
        for stage in self.tokenizer:
            x = stage(x)
        x = x.flatten(3).transpose(2, 3)  # [T, B, D, H', W'] -> [T, B, N, D]
        for block in self.blocks:
            x = block(x)
        return x

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Residual stream ``[T, B, N, D]`` -> logits ``[B, classes]``."""
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_PRESETS: dict[str, HwSpikeformerConfig] = {
    # Embedded default: sklearn digits (8x8 grey, 0..255 after scaling), 4x4 tokens.
    "hw-tiny": HwSpikeformerConfig(name="hw-tiny"),
    # DVS128 Gesture at Spikformer-2-256 scale (the spiking-attention peer that reaches 98.3%):
    # four conv3x3 stages 2->32->64->128->256, each with max-pool (3, 2, 1): 128 -> 8x8 tokens.
    "hw-gesture": HwSpikeformerConfig(
        name="hw-gesture",
        in_channels=2,
        img_size=128,
        num_classes=11,
        timesteps=16,
        tokenizer_channels=(32, 64, 128),
        tokenizer_pools=(True, True, True, True),
        pool_kernel=3,
        pool_stride=2,
        pool_padding=1,
        embed_dim=256,
        depth=2,
        heads=16,
        mlp_ratio=4,
    ),
}
# CIFAR10-DVS: the same network at T=4 with 10 classes (128x128 events, 8x8 tokens).
_PRESETS["hw-cifar10dvs"] = apply_overrides(
    _PRESETS["hw-gesture"], {"name": "hw-cifar10dvs", "num_classes": 10, "timesteps": 4}
)


def _build(name: str, overrides: dict[str, Any]) -> HwSpikeformer:
    return HwSpikeformer(apply_overrides(_PRESETS[name], overrides))


@register_model
def hw_tiny(**overrides: Any) -> HwSpikeformer:
    """Digits 1x8x8, T=4: conv 1->32, conv 32->64 + pool -> 16 tokens, D=64, depth 2, 4 heads."""
    return _build("hw-tiny", overrides)


@register_model
def hw_gesture(**overrides: Any) -> HwSpikeformer:
    """DVS128 Gesture 2x128x128, T=16, 11 classes: 4 conv+pool stages -> 64 tokens, D=256, depth 2."""
    return _build("hw-gesture", overrides)


@register_model
def hw_cifar10dvs(**overrides: Any) -> HwSpikeformer:
    """CIFAR10-DVS 2x128x128, T=4, 10 classes: 4 conv+pool stages -> 64 tokens, D=256, depth 2."""
    return _build("hw-cifar10dvs", overrides)
