# amaranth: UnusedElaboratable=no
"""The accelerator core in Amaranth's simulator: commands, error flags and a whole small model.

Every run is compared with the functional emulator / the integer model, and every
command's cycle count (the core's profile) with the analytic model. Amaranth's simulator
is slow on this design, so the programs are small; whole models run under Verilator
(``test_accel_verilator.py``).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from golden.intmodel import compare_traces
from golden.numerics import NumericsConfig
from hw.accel.compiler import compile_model
from hw.accel.config import ACCEL_CONFIGS
from hw.accel.descriptors import DESC_WORDS, DESCRIPTOR_LAYOUT, MAGIC, Descriptor, Opcode, field_checks
from hw.accel.emulator import Emulator
from hw.accel.perf import command_cycles, estimate
from hw.accel.program import words_to_stream
from hw.accel.regmap import DescriptorFault, ErrorFlag
from hw.accel.testbench import run_core, run_programs

from intmodel_factory import random_input, random_int_model

SIM = ACCEL_CONFIGS["sim"]


def program(*commands: tuple[Descriptor, list[int]]) -> np.ndarray:
    words: list[int] = []
    for descriptor, payload in commands:
        words += descriptor.words() + list(payload)
    return np.asarray(words, dtype=np.uint64)


def load(index: int, dst: int, values: np.ndarray) -> tuple[Descriptor, list[int]]:
    payload = words_to_stream(values.astype(np.uint64), SIM.timesteps).tolist()
    return Descriptor(Opcode.LOAD, index, {"dst": dst, "count": len(values)}), payload


def end(index: int) -> tuple[Descriptor, list[int]]:
    return Descriptor(Opcode.END, index), []


def raw_descriptor(**fields: int) -> list[int]:
    """Descriptor words with any field values (a valid checksum unless ``check`` is given)."""
    values = {name: fields.get(name, 0) for name, _ in DESCRIPTOR_LAYOUT}
    values["magic"] = fields.get("magic", MAGIC)
    bits = DESCRIPTOR_LAYOUT.const({**values, "check": 0}).as_bits()
    check = fields.get(
        "check", (-sum((bits >> (32 * i)) & 0xFFFF_FFFF for i in range(2 * DESC_WORDS))) & 0xFFFF_FFFF
    )
    bits = DESCRIPTOR_LAYOUT.const({**values, "check": check}).as_bits()
    return [(bits >> (64 * i)) & ((1 << 64) - 1) for i in range(DESC_WORDS)]


def test_load_store_with_backpressure() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 16, 37)
    stream = program(
        load(0, 100, values),
        (Descriptor(Opcode.STORE, 1, {"src0": 103, "count": 30}), []),
        (Descriptor(Opcode.STORE, 2, {"src0": 100, "count": 1}), []),
        end(3),
    )
    expected = Emulator(SIM).run(stream)
    (slow,) = run_programs(SIM, [stream], seed=1, valid_prob=0.6, ready_prob=0.5, max_cycles=2000)
    (quick,) = run_programs(SIM, [stream], max_cycles=2000)
    for run in (slow, quick):
        assert np.array_equal(run.words, expected)
        assert run.lasts == [1, 2] and run.error == 0 and run.commands == 4
    # With both streams always ready the profile equals the cycle model.
    offsets = (0, DESC_WORDS + 3, 2 * DESC_WORDS + 3, 3 * DESC_WORDS + 3)
    descriptors = [Descriptor.from_words(list(stream[i : i + DESC_WORDS])) for i in offsets]
    assert quick.profile == [command_cycles(d, SIM)[0] for d in descriptors]


def _conv_rule_number(name: str) -> int:
    zeros = SimpleNamespace(**{f: 0 for f, _ in DESCRIPTOR_LAYOUT})
    return list(field_checks(zeros, SIM)[Opcode.CONV]).index(name)


#: Programs that the core must refuse: words, expected DETAIL.FAULT and DETAIL.RULE.
BAD_DESCRIPTORS = [
    (raw_descriptor(magic=0x5A, opcode=Opcode.END), DescriptorFault.MAGIC, 0),
    (raw_descriptor(opcode=Opcode.END, check=12345), DescriptorFault.CHECKSUM, 0),
    (raw_descriptor(opcode=0x0F), DescriptorFault.OPCODE, 0),
    (raw_descriptor(opcode=Opcode.END, index=5), DescriptorFault.INDEX, 0),
    (
        raw_descriptor(
            opcode=Opcode.CONV,
            timesteps=4,
            in_h=1,
            in_w=1,
            in_c=100,
            out_h=1,
            out_w=1,
            out_c=1,
            kernel=3,
            stride=1,
            planes_in=1,
        ),
        DescriptorFault.FIELD,
        _conv_rule_number("fan_in"),
    ),
]


def test_errors_and_recovery() -> None:
    """Every descriptor fault, a truncated stream and an out-of-range address, then a good program."""
    streams = [np.asarray(words + [7, 8, 9], dtype=np.uint64) for words, _, _ in BAD_DESCRIPTORS]
    truncated = program(load(0, 0, np.arange(40) % 16), end(1))
    outside = program(load(0, SIM.amem_depth - 8, np.arange(32) % 16), end(1))
    good = program(
        load(0, 5, np.arange(20) % 16), (Descriptor(Opcode.STORE, 1, {"src0": 5, "count": 20}), []), end(2)
    )
    last_at = [None] * len(streams) + [DESC_WORDS + 1, None, None]
    runs = run_programs(SIM, [*streams, truncated, outside, good], last_at=last_at, max_cycles=500)
    for (words, fault, rule), run in zip(BAD_DESCRIPTORS, runs, strict=False):
        assert run.error == ErrorFlag.DESCRIPTOR, fault
        assert run.detail & 0xF == fault and (run.detail >> 8) & 0xFF == rule
        assert (run.detail >> 16) & 0xFF == (int(words[0]) >> 8) & 0xFF
        assert run.error_command == 0 and run.commands == 0 and run.words.size == 0
    cut, wide, ok = runs[len(streams) :]
    assert cut.error == ErrorFlag.TRUNCATED and cut.commands == 0
    assert wide.error == ErrorFlag.ADDRESS and wide.error_command == 0 and wide.commands == 2
    assert ok.error == 0 and ok.commands == 3 and np.array_equal(ok.words, Emulator(SIM).run(good))


def assert_bit_exact_with_exact_cycles(config, model, x: np.ndarray, *, max_cycles: int) -> None:
    """Run sample ``x[0]`` traced on the core: every layer equals the integer model and every
    command's cycle count equals the cycle model."""
    _, trace = model.run(x, trace=True)
    compiled = compile_model(model, config, trace=True)
    run = run_core(config, compiled.stream(x[0]), max_cycles=max_cycles)
    assert run.error == 0
    logits, got = compiled.decode(run.words)
    assert compare_traces(trace, {**got, "head": logits[None]}, names=[*compiled.trace_names, "head"]) is None
    assert run.profile == [e.cycles for e in estimate(compiled)]


@pytest.mark.parametrize(
    ("groupings", "serial", "words", "input_bits"),
    [
        (("joint",), False, 1, 8),
        (("temporal", "spatial"), True, 1, 8),
        (("joint", "spatial"), True, 2, 8),
        # Three input planes of two channels: a beat's two words straddle a channel boundary.
        (("joint",), True, 2, 3),
    ],
)
def test_small_model_bit_exact_with_exact_cycles(
    groupings: tuple[str, ...], serial: bool, words: int, input_bits: int
) -> None:
    """A whole model, every layer traced: with the synapse PE, and with the serial synapse
    array taking one or two activation words per beat (two-bank activation and weight memories)."""
    numerics = NumericsConfig(input_bits=input_bits)
    config = dataclasses.replace(SIM, serial_synapse=serial, words_per_beat=words, numerics=numerics)
    channels = (1, 4, 8) if input_bits == 8 else (2, 4, 8)
    model = random_int_model(3, groupings=groupings, img=4, channels=channels, numerics=numerics)
    x = random_input(model, 1, 1, high=min(40, numerics.input_max))
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=40_000)


@pytest.mark.slow
def test_board_datapath_bit_exact_with_exact_cycles() -> None:
    """The ``pynq-z2`` datapath (T = 16, 32 lanes, two words per beat, one LIF lane) with
    small memories, on a small model with T = 16 and divided attention."""
    board = ACCEL_CONFIGS["pynq-z2"]
    config = dataclasses.replace(board, name="pynq-z2-small", amem_depth=8192, wmem_depth=256)
    model = random_int_model(5, groupings=("temporal", "spatial"), timesteps=16, img=4, channels=(2, 4, 16))
    x = random_input(model, 1, 2)
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=200_000)
