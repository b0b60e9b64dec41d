"""Band tiling of conv stages that do not fit the activation memory (docs/accelerator.md, section 6).

The compiler splits such a stage into bands of output rows, LOADs each band's input rows
(halos included) from host tensors and STOREs its output rows back; the host feeds them
to the next segment. These tests pin the band geometry against brute force, the
compiled multi-segment programs on the emulator against the integer model at every
layer, the cycle model's traffic against the real segment streams, the host driver's
segment loop on the fake Zynq, and hw-gesture on pynq-z2.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from contract.intmodel import compare_traces
from golden.workloads import firing_int_model
from host.driver import Driver
from host.errors import AcceleratorFault
from protocol.bands import StageGeometry, Window, plan_bands
from protocol.compiler import CompileError, compile_model
from protocol.config import get_config
from protocol.descriptors import Opcode
from protocol.emulator import Emulator
from protocol.perf import estimate, plan, report
from protocol.program import ProgramError
from protocol.segments import host_tensors, run_program, segment_input_words, segment_stream

from host_fakes import make_backend
from intmodel_factory import banded_int_model, random_input

SIM = get_config("sim")
#: Two banded stages (3 segments) / one banded stage (2 segments) for banded_int_model(img=32).
TWO_STAGES = dataclasses.replace(SIM, amem_depth=2000)
ONE_STAGE = dataclasses.replace(SIM, amem_depth=3000)


@pytest.fixture(scope="module")
def model():
    return banded_int_model(3, img=32)


# ---------------------------------------------------------------------------- geometry
def _reads(window: Window, row: int) -> set[int]:
    return {row * window.stride - window.pad + dy for dy in range(window.kernel)}


def _check_bands(conv: Window, pool: Window | None, in_rows: int, rows: int) -> None:
    conv_rows = (in_rows + 2 * conv.pad - conv.kernel) // conv.stride + 1
    pool_rows = (conv_rows + 2 * pool.pad - pool.kernel) // pool.stride + 1 if pool else 0
    geometry = StageGeometry(in_rows, 5, conv, conv_rows, 7, pool, pool_rows, 3)
    for cover in (False, True):
        bands = plan_bands(geometry, rows, cover_conv=cover)
        assert [r for b in bands for r in range(*b.out)] == list(range(geometry.out_rows))
        for band in bands:
            needed_conv = (
                {r for q in range(*band.out) for r in _reads(pool, q)} & set(range(conv_rows))
                if pool
                else set(range(*band.out))
            )
            assert needed_conv <= set(range(*band.conv))
            # The pool window's first row sits pool_skip rows into the computed rows, or above them.
            if pool:
                top = band.out[0] * pool.stride - pool.pad
                assert band.pool_skip == max(0, top - band.conv[0])
                assert band.pool_pad_top == max(0, -top)
            needed_in = {r for c in range(*band.conv) for r in _reads(conv, c)}
            assert needed_in & set(range(in_rows)) <= set(range(*band.inp))
            assert band.conv_pad_top == max(0, conv.pad - band.conv[0] * conv.stride)
            # Rows below the loaded ones read as zero: right only at the input's bottom edge.
            assert max(needed_in) < band.inp[1] or band.inp[1] == in_rows
        if cover:  # every conv row computed, and reported by exactly one band
            assert [r for b in bands for r in range(*b.owned)] == list(range(conv_rows))
            assert all(b.conv[0] <= b.owned[0] and b.owned[1] <= b.conv[1] for b in bands)


def test_bands_cover_every_row_they_read() -> None:
    """Every band height of small stages (pools that overlap, tile or skip conv rows)."""
    windows = [Window(k, s, p) for k, s, p in itertools.product((1, 2, 3, 5), (1, 2, 3), (0, 1, 2)) if p < k]
    for conv, pool in itertools.product(windows, [None, *windows]):
        for in_rows in (7, 12):
            conv_rows = (in_rows + 2 * conv.pad - conv.kernel) // conv.stride + 1
            out_rows = (conv_rows + 2 * pool.pad - pool.kernel) // pool.stride + 1 if pool else conv_rows
            if out_rows < 1:
                continue
            for rows in range(1, out_rows + 1):
                _check_bands(conv, pool, in_rows, rows)
    with pytest.raises(ValueError, match="rows_per_band"):
        plan_bands(StageGeometry(4, 1, Window(1, 1, 0), 4, 1), 0)
    with pytest.raises(ValueError, match="Window stride"):
        Window(3, 0, 1)


# ---------------------------------------------------------------------------- compiler + emulator
def _silent(model, trace) -> list[str]:
    """Spiking layers without a single spike in ``trace`` (a comparison there proves little)."""
    spiking = [op.name for op in model.ops if op.kind in ("conv", "linear", "attention")]
    return [name for name in spiking if not trace[name].any()]


@pytest.mark.parametrize(("config", "banded"), [(TWO_STAGES, 2), (ONE_STAGE, 1)])
def test_banded_program_equals_integer_model(model, config, banded: int) -> None:
    x = random_input(model, 2, 7)
    logits, trace = model.run(x, trace=True)
    assert not _silent(model, trace)
    for traced in (True, False):
        program = compile_model(model, config, trace=traced)
        assert len(program.stages) == banded and len(program.segments()) == banded + 1
        assert all(stage.bands > 1 for stage in program.stages)
        # Each segment is a complete program: indices from 0, one END at its end.
        for commands, _ in program.segments():
            opcodes = [program.commands[i].opcode for i in commands]
            assert opcodes.count(Opcode.END) == 1 and opcodes[-1] == Opcode.END
            assert [program.commands[i].descriptor.index for i in commands] == list(range(len(commands)))
        # The halos: some band CONV starts inside the top padding, others do not.
        pads = {
            program.commands[i].descriptor.pad_top
            for i in program.stages[0].commands
            if program.commands[i].opcode == Opcode.CONV
        }
        assert pads == {0, 1}
        emulator = Emulator(config)
        for i in range(len(x)):
            got_logits, got_trace = program.decode(run_program(program, x[i], emulator.run))
            np.testing.assert_array_equal(got_logits, logits[i])
            if traced:
                expected = {name: value[:, i : i + 1] for name, value in trace.items()}
                assert program.trace_names == [op.name for op in model.ops if op.kind != "head"]
                assert compare_traces(expected, got_trace, names=program.trace_names) is None
        with pytest.raises(ProgramError, match="segment"):
            program.stream(x[0])


def test_pool_that_skips_conv_rows() -> None:
    """A 2x2 pool of stride 3 reads no conv row 2 mod 3: a traced program computes them anyway."""
    skipping = banded_int_model(6, img=32, pool1=(2, 3, 0))
    x = random_input(skipping, 1, 0)
    logits, trace = skipping.run(x, trace=True)
    assert not _silent(skipping, trace)
    for traced in (True, False):
        program = compile_model(skipping, TWO_STAGES, trace=traced)
        stage = program.stages[1]
        assert stage.ops == ("tokenizer.1", "tokenizer.1.pool") and stage.bands > 1
        commands = [program.commands[i] for i in stage.commands]
        starts = {c.descriptor.src0 for c in commands if c.opcode == Opcode.POOL}
        # Traced, the bands compute the skipped rows too and some POOL starts past its band's first row.
        assert len(starts) == (2 if traced else 1)
        got_logits, got_trace = program.decode(run_program(program, x[0], Emulator(TWO_STAGES).run))
        np.testing.assert_array_equal(got_logits, logits[0])
        if traced:
            assert compare_traces(trace, got_trace, names=program.trace_names) is None


def test_a_band_mismatch_names_the_layer(model) -> None:
    x = random_input(model, 1, 2)
    _, trace = model.run(x, trace=True)
    program = compile_model(model, TWO_STAGES, trace=True)
    words = run_program(program, x[0], Emulator(TWO_STAGES).run)
    # Flip one bit of the first band packet of tokenizer.1 (the second stage's conv rows).
    first = next(i for i, spec in enumerate(program.outputs) if spec.name == "tokenizer.1")
    words[sum(spec.words for spec in program.outputs[:first])] ^= np.uint64(1)
    _, got = program.decode(words)
    mismatch = compare_traces(trace, got, names=program.trace_names)
    assert mismatch is not None and mismatch.name == "tokenizer.1"


def test_band_errors_name_the_op(model) -> None:
    with pytest.raises(CompileError, match=r"op 'tokenizer.0'.*even in bands of one output row.*1280 \+ 384"):
        compile_model(model, dataclasses.replace(SIM, amem_depth=1600))
    # A model whose tokenizer fits band-wise but whose transformer does not: its op is named.
    wide = banded_int_model(3, img=32, d=64)
    with pytest.raises(CompileError, match="op 'blocks.0.attn.0.*amem_depth"):
        compile_model(wide, TWO_STAGES)


# ---------------------------------------------------------------------------- cycle model
def test_report_counts_what_the_segments_stream(model) -> None:
    program = compile_model(model, TWO_STAGES)
    rep = report(program)
    tensors = host_tensors(program, random_input(model, 1, 0)[0])
    streamed = [segment_stream(program, s, tensors).size for s in range(len(program.segments()))]
    assert streamed == [segment_input_words(program, s) for s in range(len(streamed))]
    assert rep.stream_in_bytes == 8 * sum(streamed)
    assert rep.stream_out_bytes == 8 * program.output_words
    assert rep.segments == 3 and rep.stages == program.stages
    assert rep.cycles == sum(c.cycles for c in rep.commands)
    assert rep.amem_words_used <= TWO_STAGES.amem_depth
    # Every band's CONV carries the whole weight payload.
    stage = program.stages[0]
    convs = [program.commands[i] for i in stage.commands if program.commands[i].opcode == Opcode.CONV]
    assert len(convs) == stage.bands and len({c.payload.tobytes() for c in convs}) == 1
    # The fed LOADs bring in the input rows with their halos: more than the input itself.
    assert stage.load_words > model.input_shape[1] * model.input_shape[2] * model.numerics.input_bits
    assert "band tiled in 3 segments" in rep.table()


# ---------------------------------------------------------------------------- host driver
def test_driver_runs_segments_on_the_fake_board(model) -> None:
    program = compile_model(model, TWO_STAGES, trace=True)
    backend, device = make_backend("thin", TWO_STAGES)
    driver = Driver(backend, program)
    x = random_input(model, 2, 4)
    logits, trace = model.run(x, trace=True)
    result = driver.run(x, profile=True)
    np.testing.assert_array_equal(result.logits, logits)
    assert compare_traces(trace, result.traces, names=program.trace_names) is None
    # One START and one DMA send per segment and sample; what was sent is the segment streams
    # the emulator-driven orchestration builds (the fake core runs the same emulator).
    segments = len(program.segments())
    assert device.core.starts == 2 * segments and len(device.sent) == 2 * segments
    emulator, streams = Emulator(TWO_STAGES), []

    def record(stream: np.ndarray) -> np.ndarray:
        streams.append(stream)
        return emulator.run(stream)

    run_program(program, x[1], record)
    for sent, stream in zip(device.sent[segments:], streams, strict=True):
        np.testing.assert_array_equal(sent, stream)
    # Per segment, the profile window keeps the last 64 commands' counts (the fake core
    # reports 100 + the command's index within its segment).
    assert result.profile.shape == (2, len(program.commands))
    longest = max(len(commands) for commands, _ in program.segments())
    assert longest > TWO_STAGES.profile_depth
    for commands, _ in program.segments():
        local = np.arange(len(commands))
        kept = local >= len(commands) - TWO_STAGES.profile_depth
        expected = np.where(kept, 100 + local, -1)
        np.testing.assert_array_equal(result.profile[:, commands.start : commands.stop], [expected] * 2)
    assert result.cycles.shape == (2,) and (result.cycles > 0).all()
    assert driver.input_words == max(segment_input_words(program, s) for s in range(segments))


# ---------------------------------------------------------------------------- hw-gesture
def test_a_fault_in_a_later_segment_names_the_programs_command(model) -> None:
    """The core numbers a segment's commands from 0; the driver's fault names the program's."""
    program = compile_model(model, TWO_STAGES)
    backend, _ = make_backend("thin", TWO_STAGES)
    driver = Driver(backend, program)
    last = len(program.segments()) - 1
    first = program.segments()[last][0].start
    staged = driver.copy_to_device
    sent = []

    def corrupt_last_segment(stream: np.ndarray) -> None:
        sent.append(stream)
        if len(sent) == last + 1:  # the last segment's first descriptor: break its checksum
            stream = stream.copy()
            stream[2] ^= np.uint64(1 << 40)
        staged(stream)

    driver.copy_to_device = corrupt_last_segment  # type: ignore[method-assign]
    with pytest.raises(AcceleratorFault) as info:
        driver.run(random_input(model, 1, 4))
    assert first > 0 and info.value.command == first
    assert info.value.command_name == program.commands[first].name


@pytest.fixture(scope="module")
def gesture():
    return firing_int_model("hw-gesture")


def test_hw_gesture_compiles_for_pynq_z2(gesture) -> None:
    cfg = get_config("pynq-z2")
    rep, stages, resident = plan(gesture, cfg)
    assert [s.ops for s in stages] == [(f"tokenizer.{i}", f"tokenizer.{i}.pool") for i in range(3)]
    assert [s.bands for s in stages] == [8, 4, 2]
    assert rep.segments == 4 and rep.amem_words_used <= cfg.amem_depth < resident
    assert all(s.amem_words <= cfg.amem_depth for s in stages)
    # The report is the program's: bands' loads, weights and stores are commands of it.
    program = compile_model(gesture, cfg)
    again = report(program)
    assert (again.cycles, again.stream_in_bytes, again.stream_out_bytes) == (
        rep.cycles,
        rep.stream_in_bytes,
        rep.stream_out_bytes,
    )
    assert sum(c.opcode == Opcode.CONV for c in program.commands) == 8 + 4 + 2 + 1 + 2 * 6
    assert rep.cycles == sum(e.cycles for e in estimate(program))
    assert 5e6 < rep.cycles < 20e6  # about 12 M: the tokenizer's 128 x 128 stages dominate


@pytest.mark.slow
def test_hw_gesture_runs_bit_exact_on_the_emulator(gesture) -> None:
    """The traced band-tiled program on pynq-z2 == the integer model at every layer (~50 s)."""
    cfg = get_config("pynq-z2")
    program = compile_model(gesture, cfg, trace=True)
    assert [s.bands for s in program.stages] == [8, 4, 2]
    x = np.random.default_rng(0).integers(0, 5, (1, gesture.timesteps, *gesture.input_shape))
    logits, trace = gesture.run(x, trace=True)
    # Not vacuous: every spiking layer fires on this sample.
    assert not _silent(gesture, trace)
    got_logits, got_trace = program.decode(run_program(program, x[0], Emulator(cfg).run))
    np.testing.assert_array_equal(got_logits, logits[0])
    assert compare_traces(trace, got_trace, names=program.trace_names) is None
