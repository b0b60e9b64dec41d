"""Accelerator configuration, command format, compiler and functional emulator (no RTL).

The emulator executes the exact 64-bit stream the RTL receives, so "compiled program
on the emulator == integer model, at every layer" pins the compiler, the descriptor
format and the activation packing before any hardware is simulated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.intmodel import compare_traces
from contract.numerics import NumericsConfig
from protocol import regmap
from protocol.compiler import CompileError, compile_model
from protocol.config import ACCEL_CONFIGS, AcceleratorConfig, ConfigError
from protocol.descriptors import DESC_WORDS, Descriptor, DescriptorError, Opcode
from protocol.emulator import Emulator, EmulatorError
from protocol.program import (
    activation_words,
    pack_fields,
    stream_to_words,
    unpack_activation,
    words_to_stream,
)

from intmodel_factory import random_input, random_int_model

SIM = ACCEL_CONFIGS["sim"]


# ---------------------------------------------------------------------------- configuration
def test_presets_and_peak_rate() -> None:
    assert ACCEL_CONFIGS["pynq-z2"].peak_synaptic_ops >= 1024
    for cfg in ACCEL_CONFIGS.values():
        assert AcceleratorConfig.from_dict(cfg.to_dict()) == cfg
        assert cfg.synapse_params().lanes == cfg.lanes and cfg.lif_params().timesteps == cfg.timesteps
    assert SIM.config_hash != ACCEL_CONFIGS["pynq-z2"].config_hash
    # The name and clock are informational: the same hardware keeps its hash.
    assert dataclasses.replace(SIM, name="other", clock_mhz=50.0).config_hash == SIM.config_hash


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("timesteps", 3, "power of two"),
        ("lanes", 4, "multiple of 64"),
        ("lif_lanes", 3, "divide lanes"),
        ("head_dim", 12, "divide head_dim"),
        ("amem_depth", 0, "amem_depth"),
    ],
)
def test_bad_config_names_the_field(field: str, value: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(SIM, **{field: value})


def test_config_type_errors() -> None:
    with pytest.raises(TypeError, match="lanes must be an integer"):
        dataclasses.replace(SIM, lanes=8.0)
    with pytest.raises(ConfigError, match="membrane_bits must be <= 31"):
        dataclasses.replace(SIM, numerics=NumericsConfig(membrane_bits=32))


# ---------------------------------------------------------------------------- descriptors and registers
def test_descriptor_round_trip_and_checksum() -> None:
    d = Descriptor(
        Opcode.CONV,
        7,
        {
            "src0": 3,
            "dst": 900,
            "in_h": 8,
            "in_w": 8,
            "in_c": 2,
            "planes_in": 8,
            "out_h": 8,
            "out_w": 8,
            "out_c": 16,
            "kernel": 3,
            "stride": 1,
            "pad_top": 1,
            "pad_left": 1,
            "timesteps": 4,
            "threshold": -5,
        },
    )
    words = d.words()
    assert len(words) == DESC_WORDS and all(0 <= w < 1 << 64 for w in words)
    back = Descriptor.from_words(words)
    assert back == d
    assert words[0] & 0xFF == 0xA5 and (words[0] >> 8) & 0xFF == Opcode.CONV
    for bit in (0, 77, 300, 511):
        flipped = list(words)
        flipped[bit // 64] ^= 1 << (bit % 64)
        with pytest.raises(ValueError, match="checksum"):
            Descriptor.from_words(flipped)


def test_descriptor_field_errors() -> None:
    with pytest.raises(ValueError, match="'in_h' must be an integer in"):
        Descriptor(Opcode.CONV, 0, {"in_h": 1 << 16})
    with pytest.raises(ValueError, match="no field"):
        Descriptor(Opcode.CONV, 0, {"height": 3})
    with pytest.raises(ValueError, match="filled in automatically"):
        Descriptor(Opcode.CONV, 0, {"check": 3})


@pytest.mark.parametrize(
    ("opcode", "fields", "rule"),
    [
        (
            Opcode.CONV,
            {
                "in_h": 1,
                "in_w": 1,
                "in_c": 600,
                "out_h": 1,
                "out_w": 1,
                "out_c": 1,
                "kernel": 1,
                "stride": 1,
                "planes_in": 1,
                "timesteps": 4,
            },
            "fan_in",
        ),
        (
            Opcode.CONV,
            {
                "in_h": 1,
                "in_w": 1,
                "in_c": 1,
                "out_h": 1,
                "out_w": 1,
                "out_c": 1,
                "kernel": 1,
                "stride": 1,
                "planes_in": 1,
                "timesteps": 5,
            },
            "timesteps",
        ),
        (
            Opcode.ATTENTION,
            {"in_w": 16, "in_c": 64, "heads": 2, "head_dim": 32, "timesteps": 4, "threshold": 64},
            "head_dim",
        ),
        (
            Opcode.ATTENTION,
            {"in_w": 65, "in_c": 64, "heads": 4, "head_dim": 16, "timesteps": 4, "threshold": 64},
            "tokens",
        ),
        (Opcode.ADD, {"count": 4, "planes_in": 2, "planes_in2": 1, "planes_out": 1}, "planes_out"),
        (Opcode.LOAD, {"dst": SIM.amem_depth - 2, "count": 4}, "address"),
    ],
)
def test_validate_names_the_rule(opcode: Opcode, fields: dict[str, int], rule: str) -> None:
    with pytest.raises(DescriptorError, match=rule) as info:
        Descriptor(opcode, 3, fields).validate(SIM)
    assert info.value.check == rule and info.value.index == 3


def test_register_map() -> None:
    offsets = [r.offset for r in regmap.REGISTERS]
    assert len(set(offsets)) == len(offsets)
    table = regmap.markdown_table()
    for reg in regmap.REGISTERS:
        assert f"`{reg.name}`" in table
    assert regmap.field_mask("STATUS", "DONE") == (1, 1)
    assert regmap.field_mask("DETAIL", "OPCODE") == (16, 0xFF)
    with pytest.raises(KeyError, match="no register"):
        regmap.offset("NOPE")


# ---------------------------------------------------------------------------- packing
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_activation_round_trip(t: int, positions: int, channels: int, planes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1 << planes, (t, positions, channels))
    words = activation_words(x, planes=planes, hw_timesteps=4)
    assert words.size == positions * channels * planes and words.max(initial=0) < 16
    stream = words_to_stream(words, 4)
    assert stream.size == -(-words.size // 16)
    back = unpack_activation(
        stream_to_words(stream, words.size, 4),
        positions=positions,
        channels=channels,
        planes=planes,
        timesteps=t,
    )
    assert np.array_equal(back, x)


def test_pack_fields_matches_bit_arithmetic() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(-127, 128, (5, 16))
    words = pack_fields(values, 8)
    for row, packed in zip(values, words, strict=True):
        expect = sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(row))
        assert int(packed[0]) | int(packed[1]) << 64 == expect


# ---------------------------------------------------------------------------- compiler + emulator
@pytest.mark.parametrize("groupings", [("joint",), ("temporal", "spatial"), ("spatial",)])
def test_emulated_program_equals_integer_model(groupings: tuple[str, ...]) -> None:
    model = random_int_model(11, groupings=groupings, timesteps=3, channels=(2, 8, 16), img=8, heads=2)
    x = random_input(model, 3, 5)
    logits, trace = model.run(x, trace=True)
    program = compile_model(model, SIM, trace=True)
    emulator = Emulator(SIM)
    for i in range(len(x)):
        got_logits, got_trace = program.decode(emulator.run(program.stream(x[i])))
        expected = {name: value[:, i : i + 1] for name, value in trace.items()}
        assert compare_traces(expected, got_trace, names=program.trace_names) is None
        assert np.array_equal(got_logits, logits[i])
    assert program.commands[0].is_input and program.commands[-1].opcode == Opcode.END
    assert [c.descriptor.index for c in program.commands] == list(range(len(program.commands)))


def test_trace_mismatch_names_the_layer() -> None:
    model = random_int_model(2, timesteps=3)
    x = random_input(model, 1, 0)
    _, trace = model.run(x, trace=True)
    program = compile_model(model, SIM, trace=True)
    words = Emulator(SIM).run(program.stream(x[0]))
    # Corrupt the first word of the packet of the fourth traced layer.
    name = program.trace_names[3]
    offset = sum(spec.words for spec in program.outputs[:3])
    words[offset] ^= np.uint64(1)
    _, got = program.decode(words)
    mismatch = compare_traces({k: v for k, v in trace.items() if k in got}, got, names=program.trace_names)
    assert mismatch is not None and mismatch.name == name


def test_compile_errors_name_the_op() -> None:
    model = random_int_model(0)
    with pytest.raises(CompileError, match="numerics"):
        compile_model(model, dataclasses.replace(SIM, numerics=NumericsConfig(frac_bits=3)))
    with pytest.raises(CompileError, match="time steps"):
        compile_model(random_int_model(0, timesteps=5), SIM)
    small = dataclasses.replace(SIM, amem_depth=64)
    # The first conv stage would run band tiled, but not even one output row fits.
    with pytest.raises(CompileError, match="op 'tokenizer.0'.*bands of one output row.*amem_depth"):
        compile_model(model, small)
    with pytest.raises(CompileError, match="fan_in"):
        compile_model(model, dataclasses.replace(SIM, wmem_depth=16))
    with pytest.raises(TypeError, match="IntModel"):
        compile_model("model", SIM)  # type: ignore[arg-type]


def test_emulator_rejects_malformed_streams() -> None:
    model = random_int_model(0)
    program = compile_model(model, SIM)
    stream = program.stream(random_input(model, 1, 0)[0])
    with pytest.raises(EmulatorError, match="stream ended"):
        Emulator(SIM).run(stream[:-3])
    bad = stream.copy()
    bad[DESC_WORDS + 1] ^= np.uint64(1 << 40)  # inside the input payload: still a valid program
    Emulator(SIM).run(bad)
    bad = stream.copy()
    bad[0] ^= np.uint64(1)
    with pytest.raises(EmulatorError, match="bad descriptor"):
        Emulator(SIM).run(bad)


def test_docs_tables_match_the_code() -> None:
    from pathlib import Path

    from protocol.descriptors import markdown_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "accelerator.md").read_text()
    assert markdown_table() in doc, "docs/accelerator.md: regenerate the descriptor table"
    assert regmap.markdown_table() in doc, "docs/accelerator.md: regenerate the register table"
