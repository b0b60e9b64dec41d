"""Random, structurally complete integer models for tests that must not depend on training.

The model has every op kind of golden.intmodel: two conv stages (one max-pooled), the token
reshape, one block with the requested attention groupings (``q, k, v, attention, proj, add``
each) and an MLP, and the head. Thresholds are drawn around the typical current so the
layers fire at useful rates instead of always or never.
"""

from __future__ import annotations

import numpy as np

from golden.intmodel import IntModel, Op
from golden.numerics import NumericsConfig


def _synapse(rng: np.random.Generator, name: str, kind: str, inputs: tuple[str, ...], shape: tuple[int, ...],
             r: int, cfg: NumericsConfig, **params: int) -> Op:
    fan_in = int(np.prod(shape[1:]))
    wmax = cfg.weight_max
    weight = rng.integers(-wmax, wmax + 1, shape)
    # Typical |current| ~ sqrt(fan_in) * wmax/2 * r/2 * 2^F; thresholds spread around it.
    typical = max(1, int(np.sqrt(fan_in) * wmax * max(r, 1) / 4) << cfg.frac_bits)
    bias = rng.integers(-typical // 4, typical // 4 + 1, shape[0])
    theta = rng.integers(max(1, typical // 8), typical + 2, shape[0])
    return Op(name=name, kind=kind, inputs=inputs, params=params,
              tensors={"weight": weight, "bias": bias, "threshold": theta}, lif=f"{name}.lif",
              reference={"scale": [0.01] * shape[0]})


def random_int_model(seed: int, *, groupings: tuple[str, ...] = ("joint",), timesteps: int = 3,
                     channels: tuple[int, int, int] = (2, 4, 8), img: int = 6, heads: int = 2,
                     classes: int = 3, numerics: NumericsConfig | None = None,
                     event: bool = True) -> IntModel:
    """A small random :class:`IntModel` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    cfg = numerics or NumericsConfig()
    c0, c1, d = channels
    ops = [
        _synapse(rng, "tokenizer.0", "conv", ("input",), (c1, c0, 3, 3), cfg.input_max // 16, cfg,
                 stride=1, padding=1),
        Op(name="tokenizer.0.pool", kind="maxpool", inputs=("tokenizer.0",),
           params={"kernel": 2, "stride": 2, "padding": 0}),
        _synapse(rng, "tokenizer.1", "conv", ("tokenizer.0.pool",), (d, c1, 3, 3), 1, cfg,
                 stride=1, padding=1),
        Op(name="tokens", kind="tokens", inputs=("tokenizer.1",)),
    ]
    ops += _transformer(rng, cfg, d, groupings, heads, classes)
    return IntModel(numerics=cfg, input_shape=(c0, img, img), timesteps=timesteps, num_classes=classes,
                    ops=tuple(ops), preset="random", model_config={"seed": seed}, event=event)


def banded_int_model(seed: int, *, timesteps: int = 3, img: int = 16, d: int = 16, heads: int = 2,
                     classes: int = 3, pool1: tuple[int, int, int] = (2, 2, 0)) -> IntModel:
    """A random model whose tokenizer dwarfs its transformer (band-tiling tests).

    One input channel of ``img x img``; stage 0: conv 1 -> 4 (3x3, stride 1, pad 1) and a
    3x3 max-pool (stride 2, pad 1); stage 1: conv 4 -> 16 (3x3, stride 2, pad 1) and a 2x2
    max-pool (stride 2; ``pool1`` = kernel, stride, padding); stage 2: conv 16 -> ``d`` (1x1),
    then the tokens (``img / 8`` squared with the default pool).
    """
    rng = np.random.default_rng(seed)
    cfg = NumericsConfig()
    ops = [
        _synapse(rng, "tokenizer.0", "conv", ("input",), (4, 1, 3, 3), cfg.input_max // 16, cfg,
                 stride=1, padding=1),
        Op(name="tokenizer.0.pool", kind="maxpool", inputs=("tokenizer.0",),
           params={"kernel": 3, "stride": 2, "padding": 1}),
        _synapse(rng, "tokenizer.1", "conv", ("tokenizer.0.pool",), (16, 4, 3, 3), 1, cfg,
                 stride=2, padding=1),
        Op(name="tokenizer.1.pool", kind="maxpool", inputs=("tokenizer.1",),
           params=dict(zip(("kernel", "stride", "padding"), pool1, strict=True))),
        _synapse(rng, "tokenizer.2", "conv", ("tokenizer.1.pool",), (d, 16, 1, 1), 1, cfg,
                 stride=1, padding=0),
        Op(name="tokens", kind="tokens", inputs=("tokenizer.2",)),
    ]
    ops += _transformer(rng, cfg, d, ("joint",), heads, classes)
    return IntModel(numerics=cfg, input_shape=(1, img, img), timesteps=timesteps, num_classes=classes,
                    ops=tuple(ops), preset="random-banded", model_config={"seed": seed}, event=True)


def _transformer(rng: np.random.Generator, cfg: NumericsConfig, d: int, groupings: tuple[str, ...],
                 heads: int, classes: int) -> list[Op]:
    """One block (attention per grouping, MLP) on the ``tokens`` op, and the head."""
    ops: list[Op] = []
    stream, r = "tokens", 1
    for j, grouping in enumerate(groupings):
        base = f"blocks.0.attn.{j}"
        for part in ("q", "k", "v"):
            ops.append(_synapse(rng, f"{base}.{part}", "linear", (stream,), (d, d), r, cfg))
        ops.append(Op(name=f"{base}.attention", kind="attention",
                      inputs=(f"{base}.q", f"{base}.k", f"{base}.v"),
                      params={"grouping": grouping, "heads": heads,
                              "threshold": int(rng.integers(1, 3 << cfg.frac_bits))},
                      lif=f"{base}.attn_lif", reference={"scale": 0.125}))
        ops.append(_synapse(rng, f"{base}.proj", "linear", (f"{base}.attention",), (d, d), 1, cfg))
        ops.append(Op(name=f"{base}.add", kind="add", inputs=(stream, f"{base}.proj")))
        stream, r = f"{base}.add", r + 1
    ops.append(_synapse(rng, "blocks.0.mlp.fc1", "linear", (stream,), (2 * d, d), r, cfg))
    ops.append(_synapse(rng, "blocks.0.mlp.fc2", "linear", ("blocks.0.mlp.fc1",), (d, 2 * d), 1, cfg))
    ops.append(Op(name="blocks.0.mlp.add", kind="add", inputs=(stream, "blocks.0.mlp.fc2")))
    ops.append(Op(name="head", kind="head", inputs=("blocks.0.mlp.add",),
                  tensors={"weight": rng.integers(-cfg.weight_max, cfg.weight_max + 1, (classes, d)),
                           "bias": rng.integers(-1000, 1000, classes)},
                  reference={"logit_scale": 0.001}))
    return ops


def random_input(model: IntModel, batch: int, seed: int, *, high: int = 40) -> np.ndarray:
    """Event-count-like inputs ``[B, T, C, H, W]`` in ``[0, high]``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, high + 1, (batch, model.timesteps, *model.input_shape))
