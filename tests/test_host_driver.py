"""Host driver on the board backend, against a fake Zynq (no board, no simulator).

The fake (tests/host_fakes.py) models DDR with a CPU cache, the AXI DMA registers and
the accelerator (running programs on the protocol emulator), so these tests check the
driver's whole board path: buffer bookkeeping (allocate once, flush before send,
invalidate after receive), packet handling, input validation, hardware identification,
timeouts and recovery from error flags by reset; also the per-sample progress callback and
:mod:`host.parallel` (shares of a batch in spawned processes, each on a fake board of its
own: merged results, a failing or dying worker).

Every test here runs with thin stand-ins for the pynq classes (the ``flavour`` fixture is
``"thin"``). The tests that take ``flavour`` also run through the real ``pynq.Device`` /
``DefaultIP`` / ``DMA`` / ``allocate`` in the board environment (pynq 3.1.2 pins numpy 1.26,
so not in the project's venv): tests/board/test_pynq_driver.py reuses them with the
``"pynq"`` flavour, and ``make test`` runs it there.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from host import packing
from host.driver import STAGES, Driver, RunResult
from host.errors import (
    AcceleratorFault,
    DMAError,
    DMATimeout,
    DoneTimeout,
    InputError,
    ProgramMismatchError,
)
from host.parallel import Share, ShareError, run_shares, split
from protocol import regmap
from protocol.compiler import compile_model
from protocol.config import get_config
from protocol.descriptors import DESC_WORDS, Opcode

from host_fakes import exit_at_open, make_backend, open_thin
from intmodel_factory import random_input, random_int_model

CONFIG = get_config("sim")


@pytest.fixture(scope="module")
def model():
    return random_int_model(3, groupings=("temporal", "spatial"))


@pytest.fixture(scope="module")
def program(model):
    return compile_model(model, CONFIG)


@pytest.fixture(scope="module")
def traced(model):
    return compile_model(model, CONFIG, trace=True)


@pytest.fixture
def flavour() -> str:
    """The pynq stand-ins: ``"thin"`` here, ``"pynq"`` in tests/board/test_pynq_driver.py."""
    return "thin"


def test_logits_and_bookkeeping(flavour, model, program) -> None:
    backend, device = make_backend(flavour, CONFIG)
    driver = Driver(backend, program)
    x = random_input(model, 4, seed=1)
    result = driver.run(x)
    np.testing.assert_array_equal(result.logits, model.run(x)[0])
    np.testing.assert_array_equal(result.predictions, model.run(x)[0].argmax(axis=1))
    # The core's cycle counter reaches the result, one entry per sample.
    assert result.cycles.shape == (4,) and (result.cycles == device.core.cycles).all()
    assert set(result.times.seconds) == set(STAGES) and result.times.total > 0
    # Two buffers for the whole batch; each sample's input is flushed before the DMA reads it
    # (the driver flushes; pynq's send transfer flushes again) and its output invalidated once.
    assert device.allocations == 2
    assert device.invalidates == 4
    assert 4 <= device.flushes <= 8
    # What the DMA sent is exactly the program's stream.
    for sent, sample in zip(device.sent, x, strict=True):
        np.testing.assert_array_equal(sent, program.stream(sample))
    driver.run(x[:1])
    assert device.allocations == 2


def test_traces_match_the_integer_model(flavour, model, traced) -> None:
    backend, _ = make_backend(flavour, CONFIG)
    x = random_input(model, 2, seed=4)
    result = Driver(backend, traced).run(x, profile=True)
    logits, trace = model.run(x, trace=True)
    np.testing.assert_array_equal(result.logits, logits)
    assert list(result.traces) == traced.trace_names
    for name, value in result.traces.items():
        np.testing.assert_array_equal(value, trace[name], err_msg=name)
    assert result.profile.shape == (2, len(traced.commands))


class SkipsFlush(Driver):
    def copy_to_device(self, stream: np.ndarray) -> None:
        self._buffers()[0].array[: stream.size] = stream


class SkipsInvalidate(Driver):
    def copy_from_device(self) -> np.ndarray:
        return np.array(self._buffers()[1].array[: self.program.output_words], dtype=np.uint64)


def test_missing_invalidate_reads_stale_words(model, program) -> None:
    # Thin flavour only: pynq's own channel code flushes/invalidates on its own schedule.
    backend, _ = make_backend("thin", CONFIG)
    result = SkipsInvalidate(backend, program).run(random_input(model, 1, seed=2))
    assert not np.array_equal(result.logits, model.run(random_input(model, 1, seed=2))[0])


def test_missing_flush_is_caught_by_the_fake(model, program) -> None:
    # The thin channel flushes before sending like pynq does, so the stream arrives intact;
    # without that flush (a raw transfer) the core sees zeros and reports a bad descriptor.
    backend, device = make_backend("thin", CONFIG)

    def raw_transfer(array, start=0, nbytes=0):
        backend.dma.mmio.write(0x18, array.physical_address + start)
        backend.dma.mmio.write(0x28, nbytes)

    backend.dma.sendchannel.transfer = raw_transfer
    with pytest.raises(AcceleratorFault, match="DESCRIPTOR"):
        SkipsFlush(backend, program).run(random_input(model, 1, seed=2))
    assert device.core.soft_resets == 1


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda m: np.zeros((2, 9, 9)), r"shape \[2, 9, 9\]; the model takes"),
        (lambda m: np.zeros((0, m.timesteps, *m.input_shape)), "empty"),
        (lambda m: np.full((1, m.timesteps, *m.input_shape), 0.5), "must hold integers"),
        (lambda m: np.full((1, m.timesteps, *m.input_shape), np.nan), "non-finite"),
        (lambda m: np.full((1, m.timesteps, *m.input_shape), -1), r"outside \[0, 255\]"),
        (lambda m: np.full((1, m.timesteps, *m.input_shape), 256), "quantize_input"),
        (lambda m: np.full((1, m.timesteps, *m.input_shape), "a"), "integer dtype"),
        (
            lambda m: np.zeros((1, *m.input_shape)),
            r"the model takes \[B, 3, 2, 6, 6\]",
        ),  # event model: no static
    ],
)
def test_bad_inputs_are_rejected_before_any_transfer(model, program, make, match) -> None:
    backend, device = make_backend("thin", CONFIG)
    with pytest.raises(InputError, match=match):
        Driver(backend, program).run(make(model))
    assert device.core.starts == 0


def test_static_images_are_repeated_over_time() -> None:
    model = random_int_model(5, event=False)
    program = compile_model(model, CONFIG)
    x = random_input(model, 2, seed=3)[:, 0]
    values = packing.validate_batch(x.astype(np.float32), program)
    assert values.dtype == np.int64 and values.shape == x.shape
    backend, _ = make_backend("thin", CONFIG)
    np.testing.assert_array_equal(Driver(backend, program).run(x).logits, model.run(x)[0])


# ---------------------------------------------------------------------- hardware identification
def test_refuses_a_bitstream_of_another_configuration(program) -> None:
    backend, _ = make_backend("thin", CONFIG, config_hash=CONFIG.config_hash ^ 1)
    with pytest.raises(ProgramMismatchError, match="another configuration"):
        Driver(backend, program)


def test_refuses_an_address_without_the_accelerator(program) -> None:
    backend, _ = make_backend("thin", CONFIG, ident=0)
    with pytest.raises(ProgramMismatchError, match="no Spikeformer accelerator"):
        Driver(backend, program)


def test_refuses_a_stream_longer_than_the_dma_allows(program) -> None:
    backend, _ = make_backend("thin", CONFIG)
    backend.max_transfer_words = 100
    with pytest.raises(ProgramMismatchError, match="c_sg_length_width"):
        Driver(backend, program)


# ---------------------------------------------------------------------- faults, timeouts, recovery
def test_missing_output_times_out_resets_and_recovers(flavour, model, program) -> None:
    backend, device = make_backend(flavour, CONFIG, mode="hang")
    driver = Driver(backend, program, timeout_s=0.05)
    x = random_input(model, 2, seed=6)
    with pytest.raises(DMATimeout) as info:
        driver.run(x)
    assert info.value.stage == "receive" and info.value.sample == 0
    assert info.value.status["STATUS"] & 1  # still BUSY when it gave up
    assert device.core.soft_resets == 1 and not device.core.busy
    device.core.mode = "normal"
    np.testing.assert_array_equal(driver.run(x).logits, model.run(x)[0])


def test_stuck_input_stream_times_out(model, program) -> None:
    backend, device = make_backend("thin", CONFIG, mode="stall")
    driver = Driver(backend, program, timeout_s=0.05)
    with pytest.raises(DMATimeout, match="never completed"):
        driver.run(random_input(model, 1, seed=6))
    assert not device.mm2s.active  # the DMA reset aborted the transfer


def test_done_that_never_comes(model, program, monkeypatch) -> None:
    backend, device = make_backend("thin", CONFIG)
    driver = Driver(backend, program, timeout_s=0.05)
    real = device.core.read
    shift, mask = regmap.field_mask("STATUS", "DONE")
    status = regmap.offset("STATUS")
    monkeypatch.setattr(
        device.core,
        "read",
        lambda offset: real(offset) & ~(mask << shift) if offset == status else real(offset),
    )
    with pytest.raises(DoneTimeout, match="DONE never came"):
        driver.run(random_input(model, 1, seed=6))


def test_error_flag_is_reported_and_cleared_by_reset(flavour, model, program) -> None:
    backend, device = make_backend(flavour, CONFIG)
    driver = Driver(backend, program)
    x = random_input(model, 2, seed=8)
    good = driver.pack(x)
    bad = good.copy()
    conv = DESC_WORDS + program.input_words(x[1]).size  # the first CONV descriptor follows the input load
    assert program.commands[1].opcode == Opcode.CONV
    bad[1, conv + 2] ^= np.uint64(1 << 40)  # second sample: break that descriptor's checksum
    driver.pack = lambda _: bad  # type: ignore[method-assign]
    with pytest.raises(AcceleratorFault) as info:
        driver.run(x)
    fault = info.value
    assert fault.sample == 1 and fault.flags == regmap.ErrorFlag.DESCRIPTOR
    assert fault.command == 1 and fault.command_name == program.commands[1].name
    assert "CHECKSUM" in str(fault) and "reset" in str(fault)
    assert device.core.soft_resets == 1 and driver.status()["ERROR"] == 0
    driver.pack = lambda _: good  # type: ignore[method-assign]
    np.testing.assert_array_equal(driver.run(x).logits, model.run(x)[0])


def test_packet_longer_than_the_program_says(flavour, model, program) -> None:
    backend, _ = make_backend(flavour, CONFIG, mode="long_packet")
    with pytest.raises(DMAError, match="DMAIntErr"):
        Driver(backend, program).run(random_input(model, 1, seed=9))


def test_packet_shorter_than_the_program_says(flavour, model, program) -> None:
    backend, device = make_backend(flavour, CONFIG, mode="short_packet")
    last = program.outputs[-1]
    with pytest.raises(
        DMAError, match=rf"{last.name!r} had {last.words - 1} words, the program sends {last.words}"
    ):
        Driver(backend, program).run(random_input(model, 1, seed=9))
    assert device.core.soft_resets == 1


def test_fault_after_both_dma_channels_went_idle(flavour, model, program) -> None:
    """Every packet arrived and both channels are idle: only DONE's error check sees the fault."""
    backend, device = make_backend(flavour, CONFIG, mode="late_fault")
    seen = []  # the DMA channels' idle bits whenever the driver reads ERROR
    read = device.core.read

    def spy(offset: int) -> int:
        if offset == regmap.offset("ERROR"):
            seen.append((device.mm2s.idle, device.s2mm.idle, len(device.core.packets)))
        return read(offset)

    device.core.read = spy
    driver = Driver(backend, program)
    with pytest.raises(AcceleratorFault) as info:
        driver.run(random_input(model, 1, seed=9))
    assert seen == [(True, True, 0)]
    fault = info.value
    assert fault.flags == regmap.ErrorFlag.OVERFLOW and fault.stage == "run" and fault.sample == 0
    assert fault.command == len(program.commands) - 1 and fault.command_name == program.commands[-1].name
    assert device.core.soft_resets == 1


def test_constructor_checks(program) -> None:
    backend, _ = make_backend("thin", CONFIG)
    with pytest.raises(TypeError, match="Backend"):
        Driver(object(), program)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        Driver(backend, program, timeout_s=0)


# ---------------------------------------------------------------------- progress and merged shares
def assert_same_run(actual: RunResult, expected: RunResult) -> None:
    """Logits, predictions, cycles, traces and profile equal (stage times are wall clock)."""
    np.testing.assert_array_equal(actual.logits, expected.logits)
    np.testing.assert_array_equal(actual.predictions, expected.predictions)
    np.testing.assert_array_equal(actual.cycles, expected.cycles)
    assert set(actual.traces) == set(expected.traces)
    for name, trace in expected.traces.items():
        np.testing.assert_array_equal(actual.traces[name], trace, err_msg=name)
    assert (actual.profile is None) == (expected.profile is None)
    if expected.profile is not None:
        np.testing.assert_array_equal(actual.profile, expected.profile)


def test_progress_is_called_once_per_sample_in_order(model, program) -> None:
    backend, device = make_backend("thin", CONFIG)
    x = random_input(model, 5, seed=4)
    calls: list[int] = []

    def progress(index: int) -> None:
        # Real progress: called once the sample has been through the accelerator.
        assert len(device.sent) == index + 1
        calls.append(index)

    result = Driver(backend, program).run(x, progress=progress)
    assert calls == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(result.logits, model.run(x)[0])


def test_results_of_consecutive_batches_concatenate(model, traced) -> None:
    # What host.parallel does with the shares' results: they read as one run of the whole batch.
    backend, _ = make_backend("thin", CONFIG)
    driver = Driver(backend, traced)
    x = random_input(model, 5, seed=5)
    parts = [driver.run(x[:2], profile=True), driver.run(x[2:], profile=True)]
    merged = RunResult.concatenate(parts)
    assert traced.trace_names and set(merged.traces) == set(traced.trace_names)
    assert_same_run(merged, driver.run(x, profile=True))
    for stage in STAGES:
        assert merged.times.seconds[stage] == pytest.approx(sum(p.times.seconds[stage] for p in parts))
    with pytest.raises(ValueError, match="at least one"):
        RunResult.concatenate([])


def test_split_into_contiguous_shares() -> None:
    assert split(5, 2) == [Share(0, 0, 2), Share(1, 2, 5)] and str(split(5, 2)[1]) == "share 1 (samples 2-4)"
    assert [(s.start, s.stop) for s in split(3, 8)] == [(0, 1), (1, 2), (2, 3)]  # at most one per sample
    assert [s.stop - s.start for s in split(359, 2)] == [180, 179]
    with pytest.raises(ValueError):
        split(0, 2)


# Workers are spawned processes: each opens a fake board of its own by a module-level opener.
@pytest.mark.timeout(300)
def test_shares_in_processes_merge_to_the_one_process_run(model, traced) -> None:
    backend, _ = make_backend("thin", CONFIG)
    driver = Driver(backend, traced)
    x = random_input(model, 5, seed=6)
    calls: list[int] = []
    merged = run_shares(
        functools.partial(open_thin, CONFIG.name),
        traced,
        x,
        jobs=2,
        timeout_s=driver.timeout_s,
        profile=True,
        progress=calls.append,
    )
    assert_same_run(merged, driver.run(x, profile=True))
    # Every sample once, each share's in order (the shares interleave).
    assert sorted(calls) == [0, 1, 2, 3, 4]
    assert [i for i in calls if i < 2] == [0, 1] and [i for i in calls if i >= 2] == [2, 3, 4]


@pytest.mark.timeout(300)
def test_a_failing_worker_fails_the_run_at_once_with_its_error(model, program) -> None:
    x = random_input(model, 6, seed=7)
    x[4] = -1  # share 1 (samples 3-5) holds a sample the driver rejects
    # Share 0 would take a minute (20 s per DMA send): the run must not wait for it.
    opener = functools.partial(open_thin, CONFIG.name, send_delay_s=20.0)
    start = time.monotonic()
    with pytest.raises(ShareError) as info:
        run_shares(opener, program, x, jobs=2, timeout_s=120.0)
    assert time.monotonic() - start < 30
    assert str(info.value).startswith("share 1 (samples 3-5) failed: InputError: ")
    assert r"outside [0, 255]" in str(info.value)
    assert info.value.error_type == "InputError" and info.value.share == Share(1, 3, 6)
    assert "Traceback" in info.value.details


@pytest.mark.timeout(300)
def test_a_dying_worker_fails_the_run(model, program) -> None:
    x = random_input(model, 4, seed=8)
    with pytest.raises(ShareError, match=r"the worker of share [01] \(samples \d-\d\) exited \(status 3\)"):
        run_shares(functools.partial(exit_at_open, 3), program, x, jobs=2, timeout_s=1.0)
