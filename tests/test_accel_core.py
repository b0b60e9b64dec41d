# amaranth: UnusedElaboratable=no
"""The accelerator core in Amaranth's simulator: commands, error flags and a whole small model.

Every run is compared with the functional emulator / the integer model, and every
command's cycle count (the core's profile) with the analytic model; the whole-model runs
also check that every command wrote its output regions and no other activation word.
Amaranth's simulator is slow on this design, so the programs are small; whole models run
under Verilator (``test_accel_verilator.py``).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from contract.intmodel import compare_traces
from contract.numerics import NumericsConfig, maxpool2d
from hw.accel.layouts import DESCRIPTOR_LAYOUT
from protocol.compiler import compile_model
from protocol.compiler.payloads import synapse_payload
from protocol.config import ACCEL_CONFIGS
from protocol.descriptors import DESC_WORDS, MAGIC, Descriptor, Opcode, field_checks
from protocol.emulator import Emulator
from protocol.perf import command_cycles, estimate
from protocol.program import activation_words, stream_to_words, unpack_activation, words_to_stream
from protocol.regmap import DescriptorFault, ErrorFlag
from sim.accel.testbench import CoreRun, canary_word, run_core, run_programs, write_problems

from intmodel_factory import random_input, random_int_model, silent_attention

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
    (quick,) = run_programs(SIM, [stream], max_cycles=2000, canary=canary_word(SIM))
    for run in (slow, quick):
        assert np.array_equal(run.words, expected)
        assert run.lasts == [1, 2] and run.error == 0 and run.commands == 4
    # With both streams always ready the profile equals the cycle model.
    offsets = (0, DESC_WORDS + 3, 2 * DESC_WORDS + 3, 3 * DESC_WORDS + 3)
    descriptors = [Descriptor.from_words(list(stream[i : i + DESC_WORDS])) for i in offsets]
    assert quick.profile == [command_cycles(d, SIM)[0] for d in descriptors]
    assert write_problems(descriptors, quick, canary_word(SIM)) == []


def test_write_problems_names_stray_and_missing_words() -> None:
    """The guard of the whole-model runs reports a write outside the running command's
    ``dst``, a changed word outside every ``dst`` and a ``dst`` word left unwritten."""
    descriptors = [
        Descriptor(Opcode.LOAD, 0, {"dst": 4, "count": 3}),
        Descriptor(Opcode.STORE, 1, {"src0": 4, "count": 3}),
        Descriptor(Opcode.END, 2),
    ]
    memory = np.full(16, 9, dtype=np.int64)
    memory[4:7] = 1

    def run_with(writes: list[tuple[int, int]], image: np.ndarray) -> CoreRun:
        return CoreRun(np.zeros(0, dtype=np.uint64), [], 0, 0, 0, 0, 3, [], image, np.asarray(writes))

    assert write_problems(descriptors, run_with([(0, 4), (0, 5), (0, 6)], memory), 9) == []
    stray = memory.copy()
    stray[7] = 1
    problems = write_problems(descriptors, run_with([(0, 4), (0, 5), (0, 6), (0, 7)], stray), 9)
    assert problems == [
        "command 0 (LOAD) wrote word 7 outside its dst [(4, 7)]",
        "word 7, in no command's dst, holds 1, not the canary",
    ]
    late, skipped = write_problems(descriptors, run_with([(0, 4), (0, 6), (1, 5)], memory), 9)
    assert late == "command 1 (STORE) wrote word 5 outside its dst []"
    assert skipped == "command 0 (LOAD) left 1 word(s) of its dst [4, 7) unwritten, the first 5"


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


#: A zero-skipping CONV's modelled cycles may differ from the RTL's by this fraction (the
#: model leaves out when the writer holds the synapse array back); every other count is exact.
ZERO_SKIP_TOLERANCE = 0.01


def assert_cycles_match_model(config, descriptors, measured: list[int], modelled: list[int]) -> None:
    """Per command, the RTL's cycles equal the cycle model's for the data it met (the
    emulator's counts), within :data:`ZERO_SKIP_TOLERANCE` for a zero-skipping CONV."""
    assert len(measured) == len(modelled)
    for d, got, want in zip(descriptors, measured, modelled, strict=True):
        if config.zero_skip and d.opcode == Opcode.CONV:
            assert abs(got - want) <= ZERO_SKIP_TOLERANCE * want, (
                f"command {d.index}: RTL {got}, model {want}"
            )
        else:
            assert got == want, f"command {d.index} ({d.opcode.name}): RTL {got} cycles, model {want}"


def assert_bit_exact_with_exact_cycles(
    config,
    model,
    x: np.ndarray,
    *,
    max_cycles: int,
    attention_fires: bool = True,
    in_place_adds: bool | None = None,
) -> None:
    """Run sample ``x[0]`` traced on the core: every layer equals the integer model, every
    command's cycle count equals the cycle model (:func:`assert_cycles_match_model`), and
    every command wrote its output regions and no other activation word. Every attention
    layer must fire (unless ``attention_fires`` is False: inputs chosen for the conv
    datapath), or the comparison would not exercise the attention datapath. ``in_place_adds``
    goes to :func:`protocol.compiler.compile_model`."""
    _, trace = model.run(x, trace=True)
    if attention_fires:
        assert silent_attention(model, trace) == []
    compiled = compile_model(model, config, trace=True, in_place_adds=in_place_adds)
    canary = canary_word(config)
    run = run_core(config, compiled.stream(x[0]), max_cycles=max_cycles, canary=canary)
    assert run.error == 0
    logits, got = compiled.decode(run.words)
    assert compare_traces(trace, {**got, "head": logits[None]}, names=[*compiled.trace_names, "head"]) is None
    emulator = Emulator(config)
    emulator.run(compiled.stream(x[0]))
    if not config.zero_skip:
        assert emulator.cycles == [e.cycles for e in estimate(compiled)]
    descriptors = [c.descriptor for c in compiled.commands]
    assert_cycles_match_model(config, descriptors, run.profile, emulator.cycles[: config.profile_depth])
    # A write past a layer's output is usually overwritten by a later layer, and the traces
    # cannot see it: the write log and the canary can.
    assert write_problems([c.descriptor for c in compiled.commands], run, canary) == []


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
    model = random_int_model(
        3, groupings=groupings, img=4, channels=channels, numerics=numerics, firing_attention=True
    )
    x = random_input(model, 1, 1, high=min(40, numerics.input_max))
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=40_000)


def test_partial_lif_jobs_bit_exact_with_exact_cycles() -> None:
    """Channel counts and a head width that are not multiples of the 8 LIF lanes: the last
    LIF job of every output position (conv 5 channels: one job of 5 lanes; 12 channels:
    8 + 4; fc1 24 channels: a second 16-lane group of 8 + 0; attention heads of 6 features)
    writes only its lanes, which :func:`write_problems` checks beside the traces."""
    assert SIM.lif_lanes == 8
    model = random_int_model(4, img=4, channels=(2, 5, 12), heads=2, firing_attention=True)
    x = random_input(model, 1, 1)
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=40_000)


def test_odd_head_width_bit_exact_with_exact_cycles() -> None:
    """Heads of 5 features with two words a read: the transposer's last K pair holds one K
    word and one past the head, the V and Q pairs start on odd feature offsets, and the
    spike writer's pairs of lanes end on a single lane (5-lane LIF jobs)."""
    assert SIM.words_per_beat == 2 and SIM.spike_words_per_cycle == 2
    model = random_int_model(6, img=4, channels=(2, 6, 10), heads=2, firing_attention=True)
    x = random_input(model, 1, 1)
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=40_000)


@pytest.mark.parametrize(("kernel", "img"), [(3, 7), (5, 9)])
def test_strided_conv_bit_exact_with_exact_cycles(kernel: int, img: int) -> None:
    """A stride-2 first conv with padding 1 on an odd input width, so the column and row
    address strides and the right and bottom padding taps all matter."""
    model = random_int_model(5, img=img, channels=(1, 4, 8), first_conv=(kernel, 2, 1), firing_attention=True)
    assert model.shapes["tokenizer.0"][2:] == ((img + 2 - kernel) // 2 + 1,) * 2
    x = random_input(model, 1, 1)
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=40_000)


@pytest.mark.parametrize("serial", [False, True])
def test_overflow_on_early_beats_is_flagged(serial: bool) -> None:
    """A dot product whose accumulator leaves the ``acc_bits`` range on an early beat and is
    brought back by the later ones: the wrapped result is right (the emulator's), but the
    core reports ``OVERFLOW`` for that command and runs the program to its end."""
    words = 2 if serial else 1
    config = dataclasses.replace(SIM, serial_synapse=serial, words_per_beat=words, acc_bits=16)
    planes, top = config.numerics.input_bits, config.numerics.input_max
    weights = np.array([[127, 127, -127, -100]])  # channel 1 pushes 127 * 255 past 2**15 - 1
    inputs = activation_words(np.full((3, 1, 4), top), planes=planes, hw_timesteps=config.timesteps)
    # The running sum over the (channel, plane) words, as the array adds them `words` at a time.
    addends = (weights[0, :, None] << np.arange(planes)).reshape(-1)
    partial = np.cumsum(addends)[words - 1 :: words]
    assert partial.max() >= 1 << 15 and abs(partial[-2:]).max() < 1 << 15
    conv = Descriptor(
        Opcode.CONV,
        1,
        dict(
            timesteps=3,
            in_h=1,
            in_w=1,
            in_c=4,
            planes_in=planes,
            out_h=1,
            out_w=1,
            out_c=1,
            kernel=1,
            stride=1,
            src0=0,
            dst=40,
        ),
    )
    payload = synapse_payload(config, weights, np.array([0]), np.array([1 << 14])).tolist()
    stream = program(
        (
            Descriptor(Opcode.LOAD, 0, {"dst": 0, "count": len(inputs)}),
            words_to_stream(inputs, config.timesteps).tolist(),
        ),
        (conv, payload),
        (Descriptor(Opcode.STORE, 2, {"src0": 40, "count": 1}), []),
        end(3),
    )
    expected = Emulator(config).run(stream)
    assert int(expected[0]) != 0  # the recovered sum fires
    run = run_core(config, stream, max_cycles=2000)
    assert run.error == ErrorFlag.OVERFLOW and run.error_command == 1 and run.commands == 4
    assert np.array_equal(run.words, expected)


@pytest.mark.slow
def test_board_datapath_bit_exact_with_exact_cycles() -> None:
    """The ``pynq-z2`` datapath (T = 16, 32 lanes, two words per beat, one LIF lane) with
    small memories, on a small model with T = 16 and divided attention."""
    board = ACCEL_CONFIGS["pynq-z2"]
    config = dataclasses.replace(board, name="pynq-z2-small", amem_depth=8192, wmem_depth=256)
    model = random_int_model(5, groupings=("temporal", "spatial"), timesteps=16, img=4, channels=(2, 4, 16))
    x = random_input(model, 1, 2)
    assert_bit_exact_with_exact_cycles(config, model, x, max_cycles=200_000)


@pytest.mark.parametrize(
    ("words", "planes_a", "planes_out", "src0", "dst"),
    [
        (1, 3, 4, 0, 400),
        (2, 3, 4, 0, 400),
        # An odd number of output planes (the last visit writes one word), operands and
        # output at odd addresses (a plane pair straddles the banks' rows).
        (2, 2, 3, 1, 401),
        (2, 1, 2, 3, 400),
    ],
)
def test_add_carries_through_every_plane(
    words: int, planes_a: int, planes_out: int, src0: int, dst: int
) -> None:
    """ADD of a ``planes_a``-plane value and a spike, one or two planes per visit: the
    largest values carry through every plane; the sum, the cycles (the model's) and the
    words written (exactly the output's) are checked."""
    config = dataclasses.replace(SIM, words_per_beat=words)
    t, n = config.timesteps, 24
    rng = np.random.default_rng(5)
    top = (1 << planes_a) - 1
    a = rng.integers(0, top + 1, (t, n, 1))
    b = rng.integers(0, 2, (t, n, 1))
    a[:, :4], b[:, :4] = top, 1
    a[:, 4:8], b[:, 4:8] = top >> 1, 1
    fields = {
        "src0": src0,
        "src1": 200,
        "dst": dst,
        "count": n,
        "planes_in": planes_a,
        "planes_in2": 1,
        "planes_out": planes_out,
    }
    commands = (
        load(0, src0, activation_words(a, planes=planes_a, hw_timesteps=t)),
        load(1, 200, activation_words(b, planes=1, hw_timesteps=t)),
        (Descriptor(Opcode.ADD, 2, fields), []),
        (Descriptor(Opcode.STORE, 3, {"src0": dst, "count": planes_out * n}), []),
        end(4),
    )
    canary = canary_word(config)
    run = run_core(config, program(*commands), max_cycles=5000, canary=canary)
    assert run.error == 0
    words_out = stream_to_words(run.words, planes_out * n, t)
    got = unpack_activation(words_out, positions=n, channels=1, planes=planes_out, timesteps=t)
    assert np.array_equal(got, a + b)
    descriptors = [descriptor for descriptor, _ in commands]
    assert run.profile[2] == command_cycles(descriptors[2], config)[0]
    assert write_problems(descriptors, run, canary) == []


@pytest.mark.parametrize(
    ("words", "channels", "kernel", "stride", "padding", "src0"),
    [
        (1, 3, 3, 2, 1, 0),
        (2, 4, 3, 2, 1, 0),
        # An odd channel count (the last visit has one channel) from an odd address.
        (2, 5, 3, 2, 1, 1),
        (2, 2, 2, 2, 0, 0),
        # k = 1: every element ends a window, so each pair's second word waits a cycle.
        (2, 3, 1, 2, 0, 0),
    ],
)
def test_pool_bit_exact_with_exact_cycles(
    words: int, channels: int, kernel: int, stride: int, padding: int, src0: int
) -> None:
    """POOL one or two channels per window element: the OR of every window (zero padding)
    equals :func:`contract.numerics.maxpool2d`, the cycles the model's, and it writes exactly
    its output."""
    config = dataclasses.replace(SIM, words_per_beat=words)
    t, img = config.timesteps, 5
    rng = np.random.default_rng(channels * 10 + kernel)
    spikes = (rng.random((t, img, img, channels)) < 0.3).astype(np.int64)
    want = maxpool2d(spikes.transpose(0, 3, 1, 2), kernel=kernel, stride=stride, padding=padding)
    out = want.shape[-1]
    dst = 300
    fields = dict(
        timesteps=t,
        in_h=img,
        in_w=img,
        in_c=channels,
        planes_in=1,
        out_h=out,
        out_w=out,
        kernel=kernel,
        stride=stride,
        pad_top=padding,
        pad_left=padding,
        src0=src0,
        dst=dst,
    )
    values = spikes.reshape(t, img * img, channels)
    commands = (
        load(0, src0, activation_words(values, planes=1, hw_timesteps=t)),
        (Descriptor(Opcode.POOL, 1, fields), []),
        (Descriptor(Opcode.STORE, 2, {"src0": dst, "count": out * out * channels}), []),
        end(3),
    )
    canary = canary_word(config)
    run = run_core(config, program(*commands), max_cycles=5000, canary=canary)
    assert run.error == 0
    words_out = stream_to_words(run.words, out * out * channels, t)
    got = unpack_activation(words_out, positions=out * out, channels=channels, planes=1, timesteps=t)
    assert np.array_equal(got.reshape(t, out, out, channels).transpose(0, 3, 1, 2), want)
    descriptors = [descriptor for descriptor, _ in commands]
    assert run.profile[1] == command_cycles(descriptors[1], config)[0]
    assert write_problems(descriptors, run, canary) == []
