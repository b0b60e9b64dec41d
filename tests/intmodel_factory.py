"""Random, structurally complete integer models for tests that must not depend on training.

The model has every op kind of contract.intmodel: two conv stages (one max-pooled), the token
reshape, one block with the requested attention groupings (``q, k, v, attention, proj, add``
each) and an MLP, and the head. Thresholds are drawn around the typical current so the
layers fire at useful rates instead of always or never.
"""

from __future__ import annotations

import numpy as np

from contract.intmodel import IntModel, Op
from contract.numerics import NumericsConfig


def _synapse(
    rng: np.random.Generator,
    name: str,
    kind: str,
    inputs: tuple[str, ...],
    shape: tuple[int, ...],
    r: int,
    cfg: NumericsConfig,
    *,
    dense: bool = False,
    **params: int,
) -> Op:
    """A conv / linear op on ``inputs`` whose values are at most ``r``; ``dense`` makes it
    fire on most inputs (a positive bias, thresholds near the bottom of the usual spread)."""
    fan_in = int(np.prod(shape[1:]))
    wmax = cfg.weight_max
    weight = rng.integers(-wmax, wmax + 1, shape)
    # Typical |current| ~ sqrt(fan_in) * wmax/2 * r/2 * 2^F; thresholds spread around it.
    typical = max(1, int(np.sqrt(fan_in) * wmax * max(r, 1) / 4) << cfg.frac_bits)
    low = 0 if dense else -typical // 4
    bias = rng.integers(low, typical // 4 + 1, shape[0])
    theta = rng.integers(max(1, typical // 8), (typical // 4 if dense else typical) + 2, shape[0])
    return Op(
        name=name,
        kind=kind,
        inputs=inputs,
        params=params,
        tensors={"weight": weight, "bias": bias, "threshold": theta},
        lif=f"{name}.lif",
        reference={"scale": [0.01] * shape[0]},
    )


def _maxpool(source: str, kernel: int, stride: int, padding: int) -> Op:
    return Op(
        name=f"{source}.pool",
        kind="maxpool",
        inputs=(source,),
        params={"kernel": kernel, "stride": stride, "padding": padding},
    )


def random_int_model(
    seed: int,
    *,
    groupings: tuple[str, ...] = ("joint",),
    timesteps: int = 3,
    channels: tuple[int, int, int] = (2, 4, 8),
    img: int = 6,
    heads: int = 2,
    classes: int = 3,
    numerics: NumericsConfig | None = None,
    event: bool = True,
    firing_attention: bool = False,
    first_conv: tuple[int, int, int] = (3, 1, 1),
) -> IntModel:
    """A small random :class:`IntModel` (see the module docstring).

    ``firing_attention`` makes Q, K and V dense and the attention threshold low, so that
    every attention layer fires even when its groups hold only a few tokens (a model of
    ``img = 4`` has four tokens per step). ``first_conv`` is the ``(kernel, stride,
    padding)`` of the first conv (``tokenizer.0``); the default keeps the models (and
    their random draws) of the tests written before it.
    """
    rng = np.random.default_rng(seed)
    cfg = numerics or NumericsConfig()
    c0, c1, d = channels
    kernel, stride, padding = first_conv
    ops = [
        _synapse(
            rng,
            "tokenizer.0",
            "conv",
            ("input",),
            (c1, c0, kernel, kernel),
            cfg.input_max // 16,
            cfg,
            stride=stride,
            padding=padding,
        ),
        _maxpool("tokenizer.0", 2, 2, 0),
        _synapse(
            rng, "tokenizer.1", "conv", ("tokenizer.0.pool",), (d, c1, 3, 3), 1, cfg, stride=1, padding=1
        ),
        Op(name="tokens", kind="tokens", inputs=("tokenizer.1",)),
    ]
    ops += _transformer(rng, cfg, d, groupings, heads, classes, firing_attention=firing_attention)
    return IntModel(
        numerics=cfg,
        input_shape=(c0, img, img),
        timesteps=timesteps,
        num_classes=classes,
        ops=tuple(ops),
        preset="random",
        model_config={"seed": seed},
        event=event,
    )


def banded_int_model(
    seed: int,
    *,
    timesteps: int = 3,
    img: int = 16,
    d: int = 16,
    heads: int = 2,
    classes: int = 3,
    pool1: tuple[int, int, int] = (2, 2, 0),
) -> IntModel:
    """A random model whose tokenizer dwarfs its transformer (band-tiling tests).

    One input channel of ``img x img``; stage 0: conv 1 -> 4 (3x3, stride 1, pad 1) and a
    3x3 max-pool (stride 2, pad 1); stage 1: conv 4 -> 16 (3x3, stride 2, pad 1) and a 2x2
    max-pool (stride 2; ``pool1`` = kernel, stride, padding); stage 2: conv 16 -> ``d`` (1x1),
    then the tokens (``img / 8`` squared with the default pool).
    """
    rng = np.random.default_rng(seed)
    cfg = NumericsConfig()
    ops = [
        _synapse(
            rng,
            "tokenizer.0",
            "conv",
            ("input",),
            (4, 1, 3, 3),
            cfg.input_max // 16,
            cfg,
            stride=1,
            padding=1,
        ),
        _maxpool("tokenizer.0", 3, 2, 1),
        _synapse(
            rng, "tokenizer.1", "conv", ("tokenizer.0.pool",), (16, 4, 3, 3), 1, cfg, stride=2, padding=1
        ),
        _maxpool("tokenizer.1", *pool1),
        _synapse(
            rng, "tokenizer.2", "conv", ("tokenizer.1.pool",), (d, 16, 1, 1), 1, cfg, stride=1, padding=0
        ),
        Op(name="tokens", kind="tokens", inputs=("tokenizer.2",)),
    ]
    ops += _transformer(rng, cfg, d, ("joint",), heads, classes)
    return IntModel(
        numerics=cfg,
        input_shape=(1, img, img),
        timesteps=timesteps,
        num_classes=classes,
        ops=tuple(ops),
        preset="random-banded",
        model_config={"seed": seed},
        event=True,
    )


def _transformer(
    rng: np.random.Generator,
    cfg: NumericsConfig,
    d: int,
    groupings: tuple[str, ...],
    heads: int,
    classes: int,
    *,
    firing_attention: bool = False,
) -> list[Op]:
    """One block (attention per grouping, MLP) on the ``tokens`` op, and the head."""
    ops: list[Op] = []
    stream, r = "tokens", 1
    # One (Q K^T) V count is a current of 2^F, which charges the membrane to 2^F / 2 in one
    # step: thresholds in [2^F / 2, 2^F) fire on a single count or on a few over time.
    theta_range = (
        (1 << cfg.frac_bits >> 1, 1 << cfg.frac_bits) if firing_attention else (1, 3 << cfg.frac_bits)
    )
    for j, grouping in enumerate(groupings):
        base = f"blocks.0.attn.{j}"
        for part in ("q", "k", "v"):
            ops.append(
                _synapse(rng, f"{base}.{part}", "linear", (stream,), (d, d), r, cfg, dense=firing_attention)
            )
        ops.append(
            Op(
                name=f"{base}.attention",
                kind="attention",
                inputs=(f"{base}.q", f"{base}.k", f"{base}.v"),
                params={"grouping": grouping, "heads": heads, "threshold": int(rng.integers(*theta_range))},
                lif=f"{base}.attn_lif",
                reference={"scale": 0.125},
            )
        )
        ops.append(_synapse(rng, f"{base}.proj", "linear", (f"{base}.attention",), (d, d), 1, cfg))
        ops.append(Op(name=f"{base}.add", kind="add", inputs=(stream, f"{base}.proj")))
        stream, r = f"{base}.add", r + 1
    ops.append(_synapse(rng, "blocks.0.mlp.fc1", "linear", (stream,), (2 * d, d), r, cfg))
    ops.append(_synapse(rng, "blocks.0.mlp.fc2", "linear", ("blocks.0.mlp.fc1",), (d, 2 * d), 1, cfg))
    ops.append(Op(name="blocks.0.mlp.add", kind="add", inputs=(stream, "blocks.0.mlp.fc2")))
    ops.append(
        Op(
            name="head",
            kind="head",
            inputs=("blocks.0.mlp.add",),
            tensors={
                "weight": rng.integers(-cfg.weight_max, cfg.weight_max + 1, (classes, d)),
                "bias": rng.integers(-1000, 1000, classes),
            },
            reference={"logit_scale": 0.001},
        )
    )
    return ops


def silent_attention(model: IntModel, trace: dict[str, np.ndarray]) -> list[str]:
    """Attention layers of ``model`` whose output spikes in ``trace`` (``model.run(x, trace=True)``)
    are all zero: such a layer leaves the attention datapath of a whole-model test unexercised."""
    return [op.name for op in model.ops if op.kind == "attention" and not trace[op.name].any()]


def random_input(model: IntModel, batch: int, seed: int, *, high: int = 40) -> np.ndarray:
    """Event-count-like inputs ``[B, T, C, H, W]`` in ``[0, high]``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, high + 1, (batch, model.timesteps, *model.input_shape))
