# amaranth: UnusedElaboratable=no
"""The ops of the paper's Spikeformer (issue 14) on the accelerator core in Amaranth's simulator.

Each run goes through :func:`test_accel_core.assert_bit_exact_with_exact_cycles`: every layer
equals the integer model, every command's cycles equal the cycle model's, and every command
wrote its output regions and nothing else.

* reduced SEW tokenizers of the Gesture shape (k = 5, stride 2, padding 2, every block with a
  pooled shortcut) and of the CIFAR10-DVS shape (k = 3, strides 2, 1, 2: an identity shortcut
  whose sum carries into a third value), then the spike embedding (``add_const``: a LOAD of the
  constant and an ADD) and one block of divided attention;
* ``add_const`` on a token stream of every input value, so the carry runs through all planes;
* attention of head width 64 over one group of 256 tokens (a widened ``sim`` configuration).

The whole reduced model runs end to end under Verilator in ``test_accel_verilator.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_accel_core import assert_bit_exact_with_exact_cycles

from contract.intmodel import IntModel, Op
from golden.workloads import firing_int_model
from protocol.compiler import compile_model
from protocol.config import ACCEL_CONFIGS
from protocol.descriptors import Opcode

from accel_models import with_embedding

SIM = ACCEL_CONFIGS["sim"]

#: Block structures of the two paper presets, shrunk to an 8x8 event input and 2x2 tokens.
SEW_SHAPES = {
    "gesture": dict(tokenizer_kernel=5, tokenizer_channels=(4,), tokenizer_strides=(2, 2)),
    "cifar10dvs": dict(tokenizer_kernel=3, tokenizer_channels=(4, 4), tokenizer_strides=(2, 1, 2)),
}
#: Weight seeds whose attention stages fire on the 4-token groups of these models.
SEW_SEEDS = {"gesture": 2, "cifar10dvs": 0}


def _events(shape: tuple[int, ...], batch: int, seed: int) -> np.ndarray:
    """Event counts ``0..40`` of shape ``[batch, *shape]``."""
    return np.random.default_rng(seed).integers(0, 41, (batch, *shape))


def sew_model(structure: str) -> tuple[IntModel, np.ndarray]:
    """``hw-spikeformer-mini`` with the ``structure`` block shape on 2x8x8 events, ``D = 8``,
    one head and one block; BatchNorm calibrated on events; the input ``[1, 4, 2, 8, 8]``."""
    shape = (4, 2, 8, 8)
    model = firing_int_model(
        "hw-spikeformer-mini",
        seed=SEW_SEEDS[structure],
        calibration=_events(shape, 16, 1),
        img_size=8,
        embed_dim=8,
        depth=1,
        heads=1,
        **SEW_SHAPES[structure],
    )
    return with_embedding(model, 3), _events(shape, 1, 2)


@pytest.mark.parametrize("structure", list(SEW_SHAPES))
def test_sew_model_bit_exact_with_exact_cycles(structure: str) -> None:
    """Strided convs (k = 5, padding 2 for Gesture), pooled shortcuts on the 8-plane input and
    on a 2-plane spike sum, the spike-sum adds, the embedding and both attention stages."""
    model, x = sew_model(structure)
    kernel = SEW_SHAPES[structure]["tokenizer_kernel"]
    _, trace = model.run(x, trace=True)
    ops = {op.name: op for op in model.ops}
    # The ops under test are there and carry data (a silent layer would compare zeros).
    for name in (
        "tokenizer.0.conv1",
        "tokenizer.2.conv1" if structure == "cifar10dvs" else "tokenizer.1.conv1",
    ):
        w = ops[name].tensors["weight"]
        assert w.shape[2:] == (kernel, kernel) and ops[name].params == {"stride": 2, "padding": kernel // 2}
    shortcuts = [op for op in model.ops if op.name.endswith(".shortcut")]
    assert len(shortcuts) == 2
    for op in shortcuts:  # AvgPool(2) folded into the 1x1 conv: one weight per 2x2 window
        w = op.tensors["weight"]
        assert w.shape[2:] == (2, 2) and op.params == {"stride": 2, "padding": 0}
        assert (w == w[:, :, :1, :1]).all()
    image_adds = [op.name for op in model.ops if op.kind == "add" and len(model.shapes[op.name]) == 4]
    assert image_adds and max(int(trace[name].max()) for name in image_adds) == (
        3 if structure == "cifar10dvs" else 2
    )
    assert ops["embed"].kind == "add_const" and (trace["embed"] != trace["tokens"]).any()
    for op in model.ops:
        if op.kind in ("conv", "linear", "attention"):
            assert trace[op.name].any(), op.name
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=40_000)


def test_add_const_carries_into_a_new_plane() -> None:
    """The spike embedding on tokens of the CIFAR10-DVS shape's identity block (values 0..3 in
    two planes): where a token of 3 meets a constant 1 the sum carries through both planes into
    a third. The model ends at the embedding (its transformer is cut off)."""
    full = firing_int_model(
        "hw-spikeformer-mini",
        calibration=_events((4, 2, 8, 8), 16, 1),
        img_size=8,
        embed_dim=4,
        depth=1,
        heads=1,
        tokenizer_channels=(4,),
        tokenizer_strides=(2, 1),
    )
    x = _events((4, 2, 8, 8), 1, 2)
    _, trace = full.run(x, trace=True)
    tokens = trace["tokens"][:, 0]
    assert tokens.max() == 3
    spikes = np.random.default_rng(4).integers(0, 2, tokens.shape)
    spikes[tokens == 3] = 1
    embed = dataclasses.replace(full.op("embed"), tensors={"spikes": spikes})
    rng = np.random.default_rng(5)
    d, classes = full.shapes["tokens"][2], full.num_classes
    head = Op(
        "head",
        "head",
        ("embed",),
        tensors={"weight": rng.integers(-127, 128, (classes, d)), "bias": np.zeros(classes, np.int64)},
        reference={"logit_scale": 0.001},
    )
    cut = full.op_names.index("embed")
    model = dataclasses.replace(full, ops=(*full.ops[:cut], embed, head))
    _, trace = model.run(x, trace=True)
    assert trace["embed"].max() == 4
    program = compile_model(model, SIM, trace=True)
    load, add = (program.commands[i] for i in program.op_commands["embed"])
    assert load.opcode == Opcode.LOAD and not load.is_input and load.feed is None and len(load.payload)
    assert add.opcode == Opcode.ADD and add.descriptor.fields["planes_out"] == 3
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=20_000, attention_fires=False)


#: (head width, token grid side): the paper-sized STA's head width 64 (on 64 tokens) and its
#: groups of 16x16 = 256 tokens (at head width 16); together they would take ~150 k cycles,
#: 13 minutes in Amaranth's simulator.
WIDE_ATTENTION = {"head-width-64": (64, 8), "group-256": (16, 16)}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(WIDE_ATTENTION))
def test_attention_wide_heads_and_large_groups_bit_exact_with_exact_cycles(case: str) -> None:
    """One head over one spatial group of all tokens (T = 1) on ``sim`` widened to the case's
    head width and group. Q, K and V are one spike tensor (the smaller models above and in
    test_accel_core.py check three distinct operands)."""
    d, side = WIDE_ATTENTION[case]
    tokens = side * side
    config = dataclasses.replace(SIM, head_dim=d, max_tokens=tokens, max_group=tokens, amem_depth=1 << 14)
    rng = np.random.default_rng(0)
    cfg = config.numerics
    spikes = Op(
        "tokenizer.0",
        "conv",
        ("input",),
        params={"stride": 1, "padding": 0},
        tensors={
            "weight": rng.integers(-cfg.weight_max // 4, cfg.weight_max + 1, (d, 1, 1, 1)),
            "bias": rng.integers(0, 1 << cfg.frac_bits + 9, d),
            "threshold": rng.integers(1 << cfg.frac_bits + 7, 1 << cfg.frac_bits + 10, d),
        },
        lif="tokenizer.0.lif",
        reference={"scale": [0.01] * d},
    )
    ops = (
        spikes,
        Op("tokens", "tokens", ("tokenizer.0",)),
        Op(
            "attention",
            "attention",
            ("tokens",) * 3,
            params={
                "grouping": "spatial",
                "heads": 1,
                # Currents grow with tokens x head width: a threshold that fires about half.
                "threshold": (1 << cfg.frac_bits + 11) * tokens * d // (256 * 64),
            },
            lif="attn_lif",
            reference={"scale": 0.125},
        ),
        Op(
            "head",
            "head",
            ("attention",),
            tensors={"weight": rng.integers(-127, 128, (3, d)), "bias": np.zeros(3, np.int64)},
            reference={"logit_scale": 0.001},
        ),
    )
    model = IntModel(
        numerics=cfg, input_shape=(1, side, side), timesteps=1, num_classes=3, ops=ops, event=True
    )
    assert model.shapes["attention"] == (1, tokens, d)
    x = rng.integers(0, 41, (1, 1, 1, side, side))
    _, trace = model.run(x, trace=True)
    # Neither silent nor saturated: the comparison sees both values of most outputs.
    for name in ("tokenizer.0", "attention"):
        assert 0.2 < trace[name].mean() < 0.8, (name, trace[name].mean())
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=200_000)
