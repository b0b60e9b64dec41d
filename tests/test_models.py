"""Model presets: shapes, structure, parameter counts, spiking invariants, configuration errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from golden.models import create_model, list_models
from golden.models.common import ConfigError, count_parameters
from golden.models.hw_spikeformer import (
    ATTENTION_MODES,
    ConvBNLIF,
    HwSpikeformer,
    LinearBNLIF,
    SpikeAttention,
    SpikeMaxPool,
    group_attention,
)
from golden.models.spikeformer import Spikeformer
from golden.neuron import LIFNode, set_backend

HW_PRESETS = [
    "hw-tiny",
    "hw-gesture",
    "hw-cifar10dvs",
    "hw-spikeformer-gesture",
    "hw-spikeformer-cifar10dvs",
    "hw-spikeformer-mini",
]
REF_PRESETS = ["spikeformer-gesture", "spikeformer-cifar10dvs", "spikeformer-imagenet"]
# Small enough to run quickly, large enough to keep every stage (hw: 4 pools; ref: up to 4 stride-2).
# spikeformer-imagenet runs two of its seven blocks: initialising all 39M weights would dominate.
SMALL = {
    "hw-tiny": {},
    "hw-gesture": {"img_size": 32, "timesteps": 4},
    "hw-cifar10dvs": {"img_size": 32},
    # The paper's SEW tokenizer (three / six blocks) at 32x32; one block each keeps it quick.
    "hw-spikeformer-gesture": {"img_size": 32, "timesteps": 4, "depth": 1},
    "hw-spikeformer-cifar10dvs": {"img_size": 32, "depth": 1},
    "hw-spikeformer-mini": {},
    "spikeformer-gesture": {"img_size": 32, "timesteps": 2},
    "spikeformer-cifar10dvs": {"img_size": 32},
    "spikeformer-imagenet": {"img_size": 32, "timesteps": 2, "depth": 2},
}


def _integer_input(cfg: Any, batch: int, *, seed: int = 0, static: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, cfg.in_channels, cfg.img_size, cfg.img_size)
    if not static:
        shape = (batch, cfg.timesteps, *shape[1:])
    return torch.randint(0, 256 if static else 4, shape, generator=g).float()


def test_registry_lists_every_preset() -> None:
    assert set(HW_PRESETS + REF_PRESETS) <= set(list_models())
    with pytest.raises(KeyError, match="hw-tiny"):
        create_model("hw-huge")


@pytest.mark.parametrize("name", HW_PRESETS + REF_PRESETS)
def test_preset_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name]).eval()
    cfg = model.cfg
    assert {"timesteps", "num_classes", "in_channels", "img_size"} <= set(dataclasses.asdict(cfg))
    x = _integer_input(cfg, 1)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
    assert feats.shape == (cfg.timesteps, 1, cfg.num_tokens, model.cfg.embed_dim)
    assert logits.shape == (1, cfg.num_classes) and torch.isfinite(logits).all()
    assert torch.equal(model(x), logits)


# ---------------------------------------------------------------------------
# Parameter counts, computed here from the architecture description (not from the modules).


def _conv_bn_plif(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + 2 * cout + 1  # conv (no bias) + BN affine + PLIF w


def _reference_count(
    *,
    cin: int,
    img: int,
    classes: int,
    t: int,
    k: int,
    strides: list[int],
    widths: list[int],
    d: int,
    ratio: float,
) -> int:
    total, size = 0, img
    for c_in, c_out, s in zip([cin, *widths[:-1]], widths, strides, strict=True):
        total += _conv_bn_plif(c_in, c_out, k) + _conv_bn_plif(c_out, c_out, k)
        if s != 1 or c_in != c_out:
            total += _conv_bn_plif(c_in, c_out, 1)
        size //= s
    hidden = int(d * ratio)
    attention = 3 * d * d + d * d + d  # qkv (no bias) + proj
    block = 2 * attention + (d * d + d) + 3 * 2 * d + (d * hidden + hidden + hidden * d + d + 1)
    embeddings = size * size * d + t * d
    return total + embeddings + 7 * block + 2 * d + (d + 1) + (d * classes + classes)


REFERENCE_COUNTS = {
    # name: (analytic count, the published figure it should be close to)
    "spikeformer-gesture": (
        _reference_count(
            cin=2, img=128, classes=11, t=16, k=5, strides=[2, 2, 2], widths=[64, 128, 256], d=256, ratio=2
        ),
        9.3e6,
    ),
    "spikeformer-cifar10dvs": (
        _reference_count(
            cin=2,
            img=128,
            classes=10,
            t=4,
            k=3,
            strides=[2, 1, 2, 1, 2, 1],
            widths=[64, 64, 128, 128, 256, 256],
            d=256,
            ratio=2,
        ),
        8.8e6,
    ),
    "spikeformer-imagenet": (
        _reference_count(
            cin=3,
            img=224,
            classes=1000,
            t=4,
            k=3,
            strides=[2, 1, 2, 1, 2, 1, 2, 1],
            widths=[64, 64, 128, 128, 256, 256, 512, 512],
            d=512,
            ratio=3,
        ),
        39.3e6,
    ),
}


def _hw_count(
    *, cin: int, widths: list[int], classes: int, d: int, depth: int, ratio: int, stages: int
) -> int:
    tokenizer = sum(a * b * 9 + 2 * b for a, b in zip([cin, *widths[:-1]], widths, strict=True))

    def linear_bn(i: int, o: int) -> int:
        return i * o + 2 * o  # Linear (no bias) + BN affine

    block = stages * 4 * linear_bn(d, d) + linear_bn(d, ratio * d) + linear_bn(ratio * d, d)
    return tokenizer + depth * block + d * classes + classes


HW_COUNTS = {
    ("hw-tiny", "joint"): _hw_count(cin=1, widths=[32, 64], classes=10, d=64, depth=2, ratio=2, stages=1),
    ("hw-tiny", "divided"): _hw_count(cin=1, widths=[32, 64], classes=10, d=64, depth=2, ratio=2, stages=2),
    ("hw-gesture", "joint"): _hw_count(
        cin=2, widths=[32, 64, 128, 256], classes=11, d=256, depth=2, ratio=4, stages=1
    ),
    ("hw-cifar10dvs", "spatial"): _hw_count(
        cin=2, widths=[32, 64, 128, 256], classes=10, d=256, depth=2, ratio=4, stages=1
    ),
}


@pytest.mark.parametrize("name", REF_PRESETS)
def test_reference_parameter_count(name: str) -> None:
    analytic, published = REFERENCE_COUNTS[name]
    with torch.device("meta"):  # full size, without allocating or initialising weights
        model = create_model(name)
    assert count_parameters(model) == analytic
    assert abs(analytic - published) / published < 0.005


@pytest.mark.parametrize(("name", "attention"), list(HW_COUNTS))
def test_hw_parameter_count(name: str, attention: str) -> None:
    with torch.device("meta"):
        model = create_model(name, attention=attention)
    assert count_parameters(model) == HW_COUNTS[(name, attention)]


def test_hw_tiny_size() -> None:
    assert 50_000 <= count_parameters(create_model("hw-tiny")) <= 150_000


# ---------------------------------------------------------------------------
# Hardware model: structure the quantizer walks, and the spiking invariants.


@pytest.mark.parametrize("attention", list(ATTENTION_MODES))
def test_hw_structure(attention: str) -> None:
    model = create_model("hw-tiny", attention=attention)
    assert isinstance(model, HwSpikeformer)
    for stage in model.tokenizer:
        assert isinstance(stage, ConvBNLIF) and stage.conv.bias is None
        assert isinstance(stage.bn, torch.nn.BatchNorm2d) and isinstance(stage.lif, LIFNode)
        assert stage.pool is None or isinstance(stage.pool, SpikeMaxPool)
    for block in model.blocks:
        assert [a.grouping for a in block.attn] == list(ATTENTION_MODES[attention])
        for attn in block.attn:
            assert isinstance(attn, SpikeAttention) and attn.scale == 0.125 and attn.heads == 4
            assert attn.attn_lif.v_threshold == 0.5
            for layer in (attn.q, attn.k, attn.v, attn.proj):
                assert isinstance(layer, LinearBNLIF) and layer.linear.bias is None
        assert block.mlp.fc1.linear.out_features == 2 * block.mlp.fc2.linear.out_features
    assert model.head.linear.bias is not None
    for lif in (m for m in model.modules() if isinstance(m, LIFNode)):
        assert (lif.tau, lif.surrogate, lif.alpha, lif.detach_reset, lif.learnable_tau) == (
            2.0,
            "sigmoid",
            4.0,
            True,
            False,
        )


@pytest.mark.parametrize("attention", list(ATTENTION_MODES))
def test_hw_tensors_are_spikes_or_small_integers(attention: str) -> None:
    torch.manual_seed(1)
    model = create_model("hw-tiny", attention=attention).train()
    seen: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, (LIFNode, SpikeMaxPool)):
            module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    feats = model.forward_features(_integer_input(model.cfg, 8, static=True))
    assert len(seen) == sum(isinstance(m, (LIFNode, SpikeMaxPool)) for m in model.modules())
    for name, out in seen.items():
        assert set(out.unique().tolist()) <= {0.0, 1.0}, name
    # Tokenizer spikes plus one spike tensor per attention stage and one per MLP, per block.
    residual_max = 1 + (len(ATTENTION_MODES[attention]) + 1) * model.cfg.depth
    assert torch.equal(feats, feats.round()) and feats.min() >= 0 and feats.max() <= residual_max


def test_hw_input_scaling_and_direct_encoding() -> None:
    model = create_model("hw-tiny").eval()
    image = _integer_input(model.cfg, 2, static=True)
    seen = []
    model.tokenizer[0].conv.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        static = model(image)
        repeated = model(image.unsqueeze(1).repeat(1, model.cfg.timesteps, 1, 1, 1))
    assert torch.equal(static, repeated)
    assert seen[0].shape == (model.cfg.timesteps * 2, 1, 8, 8)
    torch.testing.assert_close(seen[0][:2], image / 255.0, rtol=0, atol=0)


def _naive_group_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, grouping: str
) -> torch.Tensor:
    t, b, n, d = q.shape
    q, k, v = (z.reshape(t, b, n, heads, d // heads) for z in (q, k, v))
    out = torch.zeros_like(q)
    for ti in range(t):
        for ni in range(n):
            for tj in range(t):
                for nj in range(n):
                    if grouping == "temporal" and ni != nj or grouping == "spatial" and ti != tj:
                        continue
                    score = (q[ti, :, ni] * k[tj, :, nj]).sum(-1, keepdim=True)  # [B, H, 1]
                    out[ti, :, ni] += score * v[tj, :, nj]
    return out.reshape(t, b, n, d)


@pytest.mark.parametrize("grouping", ["joint", "temporal", "spatial"])
@pytest.mark.parametrize(("t", "n", "dh"), [(3, 5, 2), (2, 3, 8)])  # groups larger / smaller than dh
def test_group_attention_against_naive(grouping: str, t: int, n: int, dh: int) -> None:
    g = torch.Generator().manual_seed(t * n)
    q, k, v = ((torch.rand(t, 2, n, 2 * dh, generator=g) < 0.4).float() for _ in range(3))
    out = group_attention(q, k, v, heads=2, grouping=grouping)
    assert torch.equal(out, _naive_group_attention(q, k, v, 2, grouping))


def test_hw_backends_agree() -> None:
    torch.manual_seed(2)
    model = create_model("hw-tiny", attention="divided").train()
    x = _integer_input(model.cfg, 4, static=True)
    y = torch.tensor([0, 3, 5, 9])
    results = {}
    for backend in ("loop", "fused"):
        set_backend(model, backend)
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        results[backend] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.equal(results["loop"][0], results["fused"][0])
    for a, b in zip(results["loop"][1], results["fused"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_no_state_between_forwards() -> None:
    model = create_model("hw-tiny").eval()
    a, b = _integer_input(model.cfg, 3, seed=1), _integer_input(model.cfg, 5, seed=2)
    with torch.no_grad():
        first = model(a)
        model(b)
        assert torch.equal(model(a), first)


def test_hw_tiny_learns() -> None:
    # A few Adam steps on a batch of real 8x8 digits (pixels 0..255) must lower the loss.
    from sklearn.datasets import load_digits

    torch.manual_seed(3)
    digits = load_digits()
    x = torch.tensor(digits.images[:64] * 255 / 16).round().float().unsqueeze(1)
    y = torch.tensor(digits.target[:64])
    model = create_model("hw-tiny", depth=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


# ---------------------------------------------------------------------------
# Reference model.


def test_reference_structure() -> None:
    model = create_model("spikeformer-cifar10dvs", img_size=32)
    assert isinstance(model, Spikeformer)
    # SEW shortcut (avg-pool + 1x1 conv) exactly where stride or width changes.
    plan = [(b.pool is not None, b.shortcut is not None) for b in model.tokenizer]
    assert plan == [(True, True), (False, False), (True, True), (False, False), (True, True), (False, False)]
    for block in model.blocks:
        assert not block.temporal_fc.weight.any() and not block.temporal_fc.bias.any()
        assert block.attn.qkv.bias is None and block.temporal_attn.qkv.bias is None
    lifs = [m for m in model.modules() if isinstance(m, LIFNode)]
    assert lifs and all(m.learnable_tau and not m.liaf for m in lifs)
    assert model.pos_embed.shape == (1, 1, 16, 256) and model.time_embed.shape == (4, 1, 1, 256)
    imagenet = create_model("spikeformer-imagenet", img_size=32, depth=1)
    assert all(m.liaf for m in imagenet.modules() if isinstance(m, LIFNode))


def test_reference_temporal_attention_is_off_at_init() -> None:
    # temporal_fc starts at zero, so permuting the time steps of the tokens only permutes
    # what the time embedding and the spiking MLP see; with T=1 there is nothing to mix.
    torch.manual_seed(4)
    model = create_model("spikeformer-gesture", img_size=16, timesteps=3, depth=1).eval()
    block = model.blocks[0]
    x = torch.randn(3, 2, model.cfg.num_tokens, 256)
    calls = []
    block.temporal_attn.register_forward_hook(lambda m, i, o: calls.append(o))
    with torch.no_grad():
        y = block(x)
    assert calls and calls[0].abs().sum() > 0
    block.temporal_attn.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    with torch.no_grad():
        assert torch.equal(block(x), y)


def test_reference_trains_one_step() -> None:
    torch.manual_seed(5)
    model = create_model("spikeformer-gesture", img_size=16, timesteps=2, depth=1).train()
    x = torch.poisson(torch.full((2, 2, 2, 16, 16), 1.0))
    F.cross_entropy(model(x), torch.tensor([1, 4])).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.tokenizer[0].residual[0].lif.w.grad.abs() > 0


# ---------------------------------------------------------------------------
# Configuration and input errors.


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("hw-tiny", {"attention": "global"}, "attention"),
        ("hw-tiny", {"heads": 5}, "heads"),
        ("hw-tiny", {"tau": 3.0}, "power of two"),
        ("hw-tiny", {"depth": 0}, "depth"),
        ("hw-tiny", {"tokenizer_pools": (True,)}, "tokenizer_pools"),
        ("hw-tiny", {"img_size": 1}, "tokens"),
        ("hw-tiny", {"tokenizer": "sew"}, "tokenizer_strides"),
        ("hw-spikeformer-mini", {"img_size": 36}, "multiple of its stride"),
        ("hw-tiny", {"widht": 3}, "no field"),
        ("spikeformer-gesture", {"img_size": 100}, "divisible"),
        ("spikeformer-gesture", {"channels": (64, 128, 512)}, "embed_dim"),
        ("spikeformer-gesture", {"neuron": "izhikevich"}, "neuron"),
        ("spikeformer-gesture", {"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_config(name: str, overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_model(name, **overrides)


def test_config_lists_become_tuples() -> None:
    cfg = create_model("hw-tiny", tokenizer_channels=[16], tokenizer_pools=[False, True]).cfg
    assert cfg.tokenizer_channels == (16,) and cfg.tokenizer_pools == (False, True)
    hash(cfg)


@pytest.mark.parametrize("shape", [(2, 4, 1, 8, 9), (2, 3, 1, 8, 8), (2, 4, 2, 8, 8), (8, 8)])
def test_bad_input_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="hw-tiny"):
        create_model("hw-tiny")(torch.zeros(shape))
