"""Reference Spikeformer (Li, Lei, Yang, arXiv 2211.10686), as in the paper's public code.

A float model for GPU training; it is not deployable to the accelerator (softmax,
LayerNorm and real-valued residuals). Structure (``[T, B, ...]`` layout inside):

* **Convolutional tokenizer**: spiking SEW residual blocks. The residual branch is
  ``conv(k, stride s) -> BN -> PLIF -> conv(k, 1) -> BN -> PLIF``; the shortcut is
  ``AvgPool(s) -> conv 1x1 -> BN -> PLIF`` when the shape changes, the identity
  otherwise; the two are added (SEW ADD, values 0..2). Convolutions have no bias.
* a learnable position embedding ``[N, D]`` and time embedding ``[T, D]``;
* blocks of **divided spatio-temporal attention** (TimeSformer style): temporal
  softmax attention over ``T`` per position, ``x_t = x + temporal_fc(Attn_t(LN(x)))``
  with ``temporal_fc`` zero-initialised, then spatial attention over ``N`` per
  step, ``x = x_t + Attn_s(LN(x_t))``, then the **spiking MLP**
  ``x = x + Dropout(Linear(PLIF(Linear(LN(x)))))`` (pre-LN, stochastic depth);
* final LayerNorm, CCT **sequence pooling** over all ``T N`` tokens, ``Linear`` head.

Neurons are PLIF (learnable tau, init 2, detach_reset). The ImageNet preset uses
PLIAF neurons (``LIFNode(liaf=True)``: output ``ReLU(H)``) in the tokenizer and
MLP, as the public code does.

Parameter counts (``python -m golden.models``): 9,279,900 (gesture), 8,792,993
(CIFAR10-DVS) and 39,320,836 (ImageNet), i.e. the published ~9.3M / 8.8M / 39.3M.
They include BatchNorm/LayerNorm affine weights, the position and time embeddings
and one ``w`` per PLIF layer, and exclude BatchNorm running statistics (buffers).
Position and time embeddings make the count depend on ``img_size`` and ``timesteps``.
"""

from __future__ import annotations

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
    check_int_tuple,
    owner,
    prepare_input,
    where,
)
from .registry import register_model

__all__ = [
    "SpikeformerConfig",
    "ConvBNNeuron",
    "SEWBlock",
    "SoftmaxAttention",
    "DropPath",
    "SpikingMLP",
    "DividedBlock",
    "SequencePool",
    "Spikeformer",
]

NEURONS = ("plif", "pliaf")


@dataclass(frozen=True)
class SpikeformerConfig:
    """Architecture of a reference Spikeformer.

    Parameters
    ----------
    name:
        Preset name.
    in_channels, img_size, num_classes, timesteps:
        Input ``[T, C, H, W]`` with ``H = W = img_size``; classes; time steps (and time embeddings).
    kernel_size:
        Odd kernel of the tokenizer convolutions (``same`` padding).
    strides, channels:
        Stride and output width of every SEW block; the last width is ``embed_dim``.
    embed_dim, depth, heads, mlp_ratio:
        Token width, number of blocks, attention heads, MLP hidden width ``int(mlp_ratio * D)``.
    neuron:
        ``plif`` (spikes) or ``pliaf`` (analog ``ReLU(H)`` output).
    tau, v_threshold, surrogate:
        Initial tau and threshold of every neuron; surrogate gradient.
    drop_rate, attn_drop_rate, drop_path_rate:
        Dropout after projections/MLP/embeddings, on attention weights, and the
        largest stochastic-depth rate (linear over the blocks).
    norm_eps:
        LayerNorm epsilon.
    """

    name: str = "spikeformer"
    in_channels: int = 2
    img_size: int = 128
    num_classes: int = 11
    timesteps: int = 16
    kernel_size: int = 5
    strides: tuple[int, ...] = (2, 2, 2)
    channels: tuple[int, ...] = (64, 128, 256)
    embed_dim: int = 256
    depth: int = 7
    heads: int = 4
    mlp_ratio: float = 2.0
    neuron: str = "plif"
    tau: float = 2.0
    v_threshold: float = 1.0
    surrogate: str = "sigmoid"
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for field in (
            "in_channels",
            "img_size",
            "num_classes",
            "timesteps",
            "kernel_size",
            "embed_dim",
            "depth",
            "heads",
        ):
            check_int(self, field)
        strides = check_int_tuple(self, "strides")
        channels = check_int_tuple(self, "channels", length=len(strides))
        check_float(self, "mlp_ratio")
        check_float(self, "v_threshold")
        check_float(self, "norm_eps")
        check_choice(self, "neuron", NEURONS)
        check_choice(self, "surrogate", SURROGATES)
        for field in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= check_float(self, field, inclusive=True) < 1.0:
                raise ConfigError(f"{where(self, field)} must lie in [0, 1), not {getattr(self, field)!r}")
        if check_float(self, "tau") <= 1.0:
            raise ConfigError(f"{where(self, 'tau')} must be > 1 (PLIF), not {self.tau!r}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where(self, 'kernel_size')} must be odd, not {self.kernel_size!r}")
        if channels[-1] != self.embed_dim:
            raise ConfigError(
                f"{owner(self)}: the last tokenizer width channels[-1] = "
                f"{channels[-1]} must equal embed_dim = {self.embed_dim}"
            )
        if self.embed_dim % self.heads:
            raise ConfigError(
                f"{where(self, 'heads')} ({self.heads}) must divide embed_dim ({self.embed_dim})"
            )
        size = self.img_size
        for stride in strides:
            # The conv branch gives ceil(size / s), the AvgPool shortcut floor(size / s).
            if size % stride:
                raise ConfigError(
                    f"{owner(self)}: img_size {self.img_size} is not divisible "
                    f"by the tokenizer strides {strides}"
                )
            size //= stride

    @property
    def token_grid(self) -> int:
        """Side of the token grid after the tokenizer."""
        size = self.img_size
        for stride in self.strides:
            size //= stride
        return size

    @property
    def num_tokens(self) -> int:
        """Spatial tokens per time step ``N``."""
        return self.token_grid**2

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


def _neuron(cfg: SpikeformerConfig) -> LIFNode:
    return LIFNode(
        tau=cfg.tau,
        v_threshold=cfg.v_threshold,
        surrogate=cfg.surrogate,
        learnable_tau=True,
        liaf=cfg.neuron == "pliaf",
    )


class ConvBNNeuron(nn.Module):
    """``conv (no bias) -> BatchNorm2d -> PLIF`` on ``[T, B, C, H, W]``."""

    def __init__(
        self, cfg: SpikeformerConfig, in_channels: int, out_channels: int, *, kernel: int, stride: int
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.lif = _neuron(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x.flatten(0, 1)))
        return self.lif(y.view(*x.shape[:2], *y.shape[1:]))


class SEWBlock(nn.Module):
    """Spike-element-wise residual block (ADD): ``residual(x) + shortcut(x)``."""

    def __init__(self, cfg: SpikeformerConfig, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        k = cfg.kernel_size
        self.residual = nn.Sequential(
            ConvBNNeuron(cfg, in_channels, out_channels, kernel=k, stride=stride),
            ConvBNNeuron(cfg, out_channels, out_channels, kernel=k, stride=1),
        )
        self.pool: nn.Module | None = None
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.pool = nn.AvgPool2d(stride) if stride != 1 else None
            self.shortcut = ConvBNNeuron(cfg, in_channels, out_channels, kernel=1, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        if self.pool is not None:
            y = self.pool(x.flatten(0, 1))
            skip = y.view(*x.shape[:2], *y.shape[1:])
        if self.shortcut is not None:
            skip = self.shortcut(skip)
        return self.residual(x) + skip


class SoftmaxAttention(nn.Module):
    """Multi-head softmax self-attention on ``[groups, L, D]``; qkv without bias, scale ``dh**-0.5``."""

    def __init__(self, dim: int, heads: int, *, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, n, d = x.shape
        q, k, v = self.qkv(x).view(g, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(g, n, d)))


class DropPath(nn.Module):
    """Stochastic depth: drop a whole sample's residual branch with probability ``p``.

    Samples are along dimension ``batch_dim`` (1 in the ``[T, B, ...]`` layout).
    """

    def __init__(self, p: float, *, batch_dim: int = 1) -> None:
        super().__init__()
        self.p, self.batch_dim = p, batch_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [1] * x.dim()
        shape[self.batch_dim] = x.shape[self.batch_dim]
        keep = x.new_empty(shape).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpikingMLP(nn.Module):
    """``Dropout(fc2(PLIF(fc1(x))))`` on ``[T, B, N, D]``; the neuron runs over ``T``."""

    def __init__(self, cfg: SpikeformerConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.mlp_hidden)
        self.lif = _neuron(cfg)
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.lif(self.fc1(x))))


class DividedBlock(nn.Module):
    """Temporal attention, spatial attention, spiking MLP; pre-LN residuals on ``[T, B, N, D]``."""

    def __init__(self, cfg: SpikeformerConfig, drop_path: float) -> None:
        super().__init__()
        dim, eps = cfg.embed_dim, cfg.norm_eps
        drops = {"attn_drop": cfg.attn_drop_rate, "proj_drop": cfg.drop_rate}
        self.temporal_norm = nn.LayerNorm(dim, eps=eps)
        self.temporal_attn = SoftmaxAttention(dim, cfg.heads, **drops)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SoftmaxAttention(dim, cfg.heads, **drops)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = SpikingMLP(cfg)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, n, d = x.shape
        # Temporal groups: one sequence of T tokens per (sample, position).
        xt = self.temporal_norm(x).permute(1, 2, 0, 3).reshape(b * n, t, d)
        res = self.temporal_attn(xt).view(b, n, t, d).permute(2, 0, 1, 3)
        x = x + self.temporal_fc(self.drop_path(res))
        # Spatial groups: one sequence of N tokens per (step, sample).
        res = self.attn(self.norm1(x).reshape(t * b, n, d)).view(t, b, n, d)
        x = x + self.drop_path(res)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SequencePool(nn.Module):
    """CCT sequence pooling: a softmax-weighted mean of all ``T N`` tokens -> ``[B, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention_pool = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, n, d = x.shape
        tokens = x.permute(1, 0, 2, 3).reshape(b, t * n, d)
        weights = torch.softmax(self.attention_pool(tokens), dim=1)  # [B, T N, 1]
        return (weights.transpose(1, 2) @ tokens).squeeze(1)


class Spikeformer(nn.Module):
    """Reference Spikeformer (see the module docstring); build it with ``create_model``.

    Attributes
    ----------
    cfg:
        The :class:`SpikeformerConfig`.
    tokenizer:
        :class:`SEWBlock` s.
    pos_embed, time_embed:
        Learnable ``[1, 1, N, D]`` and ``[T, 1, 1, D]`` embeddings.
    blocks:
        :class:`DividedBlock` s.
    norm, pool, head:
        Final LayerNorm, :class:`SequencePool`, ``Linear(D, classes)``.
    """

    def __init__(self, cfg: SpikeformerConfig) -> None:
        super().__init__()
        if not isinstance(cfg, SpikeformerConfig):
            raise TypeError(f"Spikeformer needs a SpikeformerConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        widths = (cfg.in_channels, *cfg.channels)
        self.tokenizer = nn.ModuleList(
            SEWBlock(cfg, cin, cout, stride=s)
            for cin, cout, s in zip(widths[:-1], widths[1:], cfg.strides, strict=True)
        )
        d = cfg.embed_dim
        self.pos_embed = nn.Parameter(torch.zeros(1, 1, cfg.num_tokens, d))
        self.time_embed = nn.Parameter(torch.zeros(cfg.timesteps, 1, 1, d))
        self.embed_drop = nn.Dropout(cfg.drop_rate)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linear decay
        self.blocks = nn.ModuleList(DividedBlock(cfg, rate) for rate in rates)
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.pool = SequencePool(d)
        self.head = nn.Linear(d, cfg.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the public code: truncated-normal linears and position embedding, zero time
        # embedding, Kaiming-normal tokenizer convs, zero temporal_fc (blocks start as spatial-only).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that optimizers should not decay."""
        return {"pos_embed", "time_embed"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` or ``[B, C, H, W]`` -> normalized tokens ``[T, B, N, D]``."""
        cfg = self.cfg
        x = prepare_input(
            x, timesteps=cfg.timesteps, in_channels=cfg.in_channels, img_size=cfg.img_size, model=cfg.name
        )
        for block in self.tokenizer:
            x = block(x)
        x = x.flatten(3).transpose(2, 3)  # [T, B, D, H', W'] -> [T, B, N, D]
        x = self.embed_drop(x + self.pos_embed + self.time_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Tokens ``[T, B, N, D]`` -> logits ``[B, classes]``."""
        return self.head(self.pool(feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_PRESETS: dict[str, SpikeformerConfig] = {
    # DVS128 Gesture: k=5, three stride-2 SEW blocks 2->64->128->256, 128 -> 16x16 tokens.
    "spikeformer-gesture": SpikeformerConfig(name="spikeformer-gesture"),
    # CIFAR10-DVS: k=3, six SEW blocks, strides 2,1,2,1,2,1, widths 64,64,128,128,256,256.
    "spikeformer-cifar10dvs": SpikeformerConfig(
        name="spikeformer-cifar10dvs",
        num_classes=10,
        timesteps=4,
        kernel_size=3,
        strides=(2, 1, 2, 1, 2, 1),
        channels=(64, 64, 128, 128, 256, 256),
    ),
    # ImageNet: k=3, eight SEW blocks (strides 2,1 x4) 3->64..512, 224 -> 14x14, PLIAF neurons.
    "spikeformer-imagenet": SpikeformerConfig(
        name="spikeformer-imagenet",
        in_channels=3,
        img_size=224,
        num_classes=1000,
        timesteps=4,
        kernel_size=3,
        strides=(2, 1, 2, 1, 2, 1, 2, 1),
        channels=(64, 64, 128, 128, 256, 256, 512, 512),
        embed_dim=512,
        heads=8,
        mlp_ratio=3.0,
        neuron="pliaf",
    ),
}


def _build(name: str, overrides: dict[str, Any]) -> Spikeformer:
    return Spikeformer(apply_overrides(_PRESETS[name], overrides))


@register_model
def spikeformer_gesture(**overrides: Any) -> Spikeformer:
    """DVS128 Gesture: 2x128x128 events, T=16, 11 classes, D=256, 4 heads, depth 7, mlp 2 (~9.3M)."""
    return _build("spikeformer-gesture", overrides)


@register_model
def spikeformer_cifar10dvs(**overrides: Any) -> Spikeformer:
    """CIFAR10-DVS: 2x128x128 events, T=4, 10 classes, D=256, 4 heads, depth 7, mlp 2 (~8.8M)."""
    return _build("spikeformer-cifar10dvs", overrides)


@register_model
def spikeformer_imagenet(**overrides: Any) -> Spikeformer:
    """ImageNet: 3x224x224 repeated T=4 times, 1000 classes, D=512, 8 heads, depth 7, mlp 3 (~39.3M)."""
    return _build("spikeformer-imagenet", overrides)
