# amaranth: UnusedElaboratable=no
"""The activation memory's peak: an ``ADD`` writes its sum over an operand it has read for the last time.

The paper-sized CIFAR10-DVS Spikeformer's first identity SEW block adds a spike tensor to the
2-plane block input into a 2-plane sum; written over the block input, the sum needs no region of
its own, and the whole program fits ``2^20`` activation words (docs/numerics.md, section 14).
``compile_model`` adds in place only when the program does not fit otherwise
(``in_place_adds=None``); ``in_place_adds=True`` asks for it wherever it is safe.
Here: both paper presets compile with exactly ``2^20`` words and are refused with one word fewer;
on a small model that adds in place on either operand (sums of 2 and 3 planes) and must not add
in place over a value a later op still reads through its ``tokens`` alias, the program is
bit-exact on the emulator and, with exact cycles and no stray write, on the Amaranth core.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from test_accel_core import assert_bit_exact_with_exact_cycles
from test_accel_sew import sew_model

from contract.intmodel import IntModel, Op
from contract.numerics import NumericsConfig
from golden.quantize import QuantizationWarning
from golden.workloads import firing_int_model
from protocol.compiler import CompileError, compile_model
from protocol.config import ACCEL_CONFIGS
from protocol.descriptors import Descriptor, Opcode
from protocol.program import Program

from accel_models import assert_emulator_matches_model
from intmodel_factory import _synapse, random_input

SIM = ACCEL_CONFIGS["sim"]
WORDS = 1 << 20
#: What the paper presets need of a configuration besides the activation memory (test_sew_tokenizer.py).
PAPER_NEEDS = {
    "hw-spikeformer-gesture": dict(head_dim=64, max_tokens=256, wmem_depth=6400),
    "hw-spikeformer-cifar10dvs": dict(head_dim=64, max_tokens=256),
}


def _paper_model(name: str) -> IntModel:
    """The paper-sized preset ``name``, untrained, with seeded BatchNorm statistics."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # seeded channels may get clamped biases
        return firing_int_model(name)


def _adds(program: Program) -> dict[str, Descriptor]:
    """The ``ADD`` descriptor of each op, by op name."""
    return {c.name: c.descriptor for c in program.commands if c.opcode == Opcode.ADD}


def _in_place_operand(add: Descriptor) -> str | None:
    """``"src0"`` or ``"src1"`` when the sum is written over that operand, else ``None``."""
    return next((src for src in ("src0", "src1") if getattr(add, src) == add.dst), None)


@pytest.mark.parametrize("name", list(PAPER_NEEDS))
def test_paper_presets_fit_two_to_the_twenty_words(name: str) -> None:
    """Both paper presets compile, unsegmented, with exactly ``2^20`` activation words on the
    ``pynq-z2`` and ``kv260`` datapaths; one word fewer is refused at the first SEW block's sum."""
    torch.set_num_threads(1)
    model = _paper_model(name)
    for base in ("pynq-z2", "kv260"):
        config = dataclasses.replace(ACCEL_CONFIGS[base], **PAPER_NEEDS[name], amem_depth=WORDS)
        program = compile_model(model, config)
        assert not program.segmented and program.commands[-1].opcode == Opcode.END
    adds = _adds(program)
    assert _in_place_operand(adds["tokenizer.0.add"]) is None  # two spike tensors into a 2-plane sum
    if name == "hw-spikeformer-cifar10dvs":  # the identity blocks add over their 2-plane input
        assert [_in_place_operand(adds[f"tokenizer.{i}.add"]) for i in (1, 3, 5)] == ["src1"] * 3
        with pytest.raises(CompileError, match=r"tokenizer\.1\.add.*larger amem_depth"):
            compile_model(model, config, in_place_adds=False)
    else:  # it fits without: every sum keeps a region of its own
        assert all(_in_place_operand(add) is None for add in adds.values())
    # One word fewer (one word per beat, so that the depth is a valid configuration).
    fewer = dataclasses.replace(
        ACCEL_CONFIGS["pynq-z2"], **PAPER_NEEDS[name], words_per_beat=1, amem_depth=WORDS - 1
    )
    with pytest.raises(CompileError, match=r"tokenizer\.0\.add.*larger amem_depth"):
        compile_model(model, fewer)


def _residual_model(seed: int = 0) -> IntModel:
    """Spike-sum adds on a ``4 x 4 x 4`` image and on its tokens (``T = 3``).

    ``s0 = c1 + c0`` (two spike tensors: no operand has the sum's 2 planes), ``s1 = c2 + s0``
    (in place over ``s0``, ``src1``, 2 planes), ``s2 = s1 + c3`` (3 planes over a 2-plane
    operand: not in place), ``s3 = s2 + c4`` (in place over ``s2``, ``src0``, 3 planes);
    ``r0 = t + l0`` where ``t = tokens(s3)`` is read for the last time but ``s3`` is read again
    (``t2``): not in place; ``r1 = r0 + t2`` (4 planes), the head.
    """
    rng = np.random.default_rng(seed)
    cfg = NumericsConfig()
    c = 4

    def conv(name: str, source: str, fan_in_max: int, channels: int = c) -> Op:
        return _synapse(
            rng, name, "conv", (source,), (c, channels, 3, 3), fan_in_max, cfg, stride=1, padding=1
        )

    def linear(name: str, source: str, fan_in_max: int) -> Op:
        return _synapse(rng, name, "linear", (source,), (c, c), fan_in_max, cfg)

    def add(name: str, a: str, b: str) -> Op:
        return Op(name=name, kind="add", inputs=(a, b))

    ops = [
        conv("c0", "input", cfg.input_max // 16, channels=1),
        conv("c1", "c0", 1),
        add("s0", "c1", "c0"),
        conv("c2", "s0", 2),
        add("s1", "c2", "s0"),
        conv("c3", "s1", 3),
        add("s2", "s1", "c3"),
        conv("c4", "s2", 4),
        add("s3", "s2", "c4"),
        Op(name="t", kind="tokens", inputs=("s3",)),
        linear("l0", "t", 5),
        add("r0", "t", "l0"),
        Op(name="t2", kind="tokens", inputs=("s3",)),
        add("r1", "r0", "t2"),
        Op(
            name="head",
            kind="head",
            inputs=("r1",),
            tensors={
                "weight": rng.integers(-cfg.weight_max, cfg.weight_max + 1, (3, c)),
                "bias": rng.integers(-1000, 1000, 3),
            },
            reference={"logit_scale": 0.001},
        ),
    ]
    return IntModel(
        numerics=cfg,
        input_shape=(1, 4, 4),
        timesteps=3,
        num_classes=3,
        ops=tuple(ops),
        preset="residual",
        model_config={"seed": seed},
        event=True,
    )


def test_residual_model_adds_in_place_where_safe() -> None:
    """Which sums take an operand's region, and that each operand holds data worth checking."""
    model = _residual_model()
    x = random_input(model, 1, 0)
    _, trace = model.run(x, trace=True)
    adds = _adds(compile_model(model, SIM, in_place_adds=True))
    assert all(_in_place_operand(add) is None for add in _adds(compile_model(model, SIM)).values())
    expected = {"s0": None, "s1": "src1", "s2": None, "s3": "src0", "r0": None, "r1": None}
    assert {name: _in_place_operand(add) for name, add in adds.items()} == expected
    assert (adds["s1"].planes_in2, adds["s1"].planes_out) == (2, 2)
    assert (adds["s3"].planes_in, adds["s3"].planes_out) == (3, 3)
    # The sums carry into their top plane, so an overwritten operand word would show.
    for name, planes in (("s1", 2), ("s3", 3), ("r0", 3)):
        assert trace[name].max() >= 1 << (planes - 1), name
    # r0 may not overwrite t: its source s3 is read again, through t2.
    r0 = adds["r0"]
    assert not r0.src0 <= r0.dst < r0.src0 + adds["s3"].count * adds["s3"].planes_out


def test_in_place_adds_bit_exact_on_the_emulator() -> None:
    """Every layer equals the integer model: the residual model, and the reduced SEW model of
    the CIFAR10-DVS shape (its identity block adds over the block input, the transformer's
    residual adds over the stream)."""
    model = _residual_model()
    assert_emulator_matches_model(SIM, model, random_input(model, 2, 1), in_place_adds=True)
    sew, x = sew_model("cifar10dvs")
    program = assert_emulator_matches_model(SIM, sew, x, in_place_adds=True)
    in_place = {name: _in_place_operand(add) for name, add in _adds(program).items()}
    assert in_place["tokenizer.1.add"] == "src1" and "src0" in in_place.values()


@pytest.mark.parametrize(("words", "per_row"), [(1, 1), (2, 1), (2, 4)])
def test_in_place_adds_bit_exact_with_exact_cycles(words: int, per_row: int) -> None:
    """On the core (one and two activation words per read, and the kv260's four words to a
    physical row): every layer equals the integer model, every command's cycles the cycle
    model's, and every command wrote its output regions and nothing else."""
    model = _residual_model()
    config = dataclasses.replace(SIM, words_per_beat=words, amem_words_per_row=per_row)
    assert_bit_exact_with_exact_cycles(
        config, model, random_input(model, 1, 0), max_cycles=40_000, attention_fires=False, in_place_adds=True
    )
