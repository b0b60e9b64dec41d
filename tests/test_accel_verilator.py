"""Whole models through the accelerator's Verilog under Verilator, run by the host driver.

The backend is the simulated one (:mod:`host.backends.native_backend`: the top with the C++
AXI4-Lite master and AXI DMA models); the checker is :func:`host.verify.check_bit_exact`.

* the suite's trained hw-tiny digits export on 4 test samples (tests/test_host_e2e.py runs
  32 through the command line): logits == integer reference, bit for bit; every command's
  cycle count (the core's PROFILE registers) within 5% of the analytic model;
* one hw-tiny sample with the per-layer trace: every layer's output streamed back equals
  the integer model's trace;
* DVS-shaped models with joint and divided attention on synthetic events: per-layer
  trace, logits and cycles;
* ``hw-spikeformer-mini``, the paper's network reduced (SEW tokenizer, spike embedding,
  divided attention), on synthetic events: per-layer trace, logits and cycles.

A mismatch reruns the differing samples with the traced program and names the first
differing layer and index. The Verilator build (several minutes) is cached under
``build/host-sim``, shared with tests/test_host_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from contract.intmodel import IntModel
from host.backends.base import Backend
from host.driver import Driver
from host.verify import BitExactReport, check_bit_exact
from protocol.compiler import compile_model
from protocol.config import ACCEL_CONFIGS, AcceleratorConfig
from protocol.emulator import Emulator
from protocol.perf import estimate
from protocol.program import Program

from accel_models import dvs_model, spikeformer_mini_model, tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.sim]

ROOT = Path(__file__).resolve().parents[1]
#: Largest relative difference between the RTL's cycle counter and the model, per command.
CYCLE_TOLERANCE = 0.05


@pytest.fixture(scope="module", params=["sim", "sim-zero-skip"])
def config(request: pytest.FixtureRequest) -> AcceleratorConfig:
    """The dense engine, and the one that skips zero activation words (data-dependent cycles)."""
    return ACCEL_CONFIGS[request.param]


@pytest.fixture(scope="module")
def backend(config: AcceleratorConfig) -> Iterator[Backend]:
    from host.backends.native_backend import DEFAULT_ROOT, NativeSimBackend

    with NativeSimBackend.for_config(config, root=ROOT / DEFAULT_ROOT) as sim:
        # The cycle model assumes an always-ready output. The DMA model, as the board's, holds
        # TREADY low until the driver arms the next receive, which it does when it sees the
        # previous packet done: polling every cycle, it does so within a few cycles, so a traced
        # program's STOREs are timed as the model times them (not a 256-cycle poll late).
        sim.poll_s = 1 / sim.clock_hz
        yield sim


def assert_bit_exact(
    backend: Backend, config: AcceleratorConfig, model: IntModel, inputs: np.ndarray, *, every_layer: bool
) -> tuple[BitExactReport, Program, np.ndarray, int]:
    """Run ``inputs``; on any mismatch (or with ``every_layer``, always) rerun traced and
    compare every layer, naming the first differing one.

    Returns the report, the program that ran last (the traced one with ``every_layer``),
    and that last run's per-command cycles and ``COMMANDS`` register.
    """
    traced = compile_model(model, config, trace=True)
    driver = Driver(backend, compile_model(model, config))
    try:
        report = check_bit_exact(
            driver,
            model,
            inputs,
            trace="always" if every_layer else "on-failure",
            max_traced=len(inputs),
            traced=traced,
        )
    finally:
        driver.close()
    if not report.exact:
        pytest.fail(f"RTL differs from the integer model: {report.summary()}")
    last = traced if every_layer else driver.program
    # The PROFILE and COMMANDS registers hold the last run's counts; a driver of that program reads them.
    probe = Driver(backend, last)
    return report, last, probe.profile(), probe.status()["COMMANDS"]


def assert_cycles_match(
    program: Program, x: np.ndarray, profile: np.ndarray, commands: int, cycles: int
) -> None:
    """Every command's measured cycles on input ``x`` within CYCLE_TOLERANCE of the cycle
    model for the data it met (the emulator's counts: with zero skipping they follow the
    input; without, they are :func:`protocol.perf.estimate`'s)."""
    emulator = Emulator(program.config)
    emulator.run(program.stream(x))
    predicted = emulator.cycles
    if not program.config.zero_skip:
        assert predicted == [e.cycles for e in estimate(program)]
    assert commands == len(predicted)
    assert (profile >= 0).all(), "the program has more commands than the profile registers keep"
    rows = []
    for command, model, measured in zip(program.commands, predicted, profile, strict=True):
        rows.append((command.name, model, int(measured), abs(int(measured) - model) / model))
    worst = max(rows, key=lambda row: row[3])
    assert worst[3] <= CYCLE_TOLERANCE, f"command {worst[0]}: model {worst[1]} cycles, RTL {worst[2]}"
    print(
        f"cycles: model {sum(predicted)}, RTL {cycles}; "
        f"worst per-command error {100 * worst[3]:.2f}% ({worst[0]})"
    )


def test_hw_tiny_samples(backend: Backend, config: AcceleratorConfig, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 4)
    report, program, profile, commands = assert_bit_exact(backend, config, model, inputs, every_layer=False)
    cycles = report.result.cycles
    assert report.samples == 4 and cycles.shape == (4,)
    if config.zero_skip:  # the cycles follow each sample's non-zero words, below the dense bound
        assert len(set(cycles.tolist())) > 1 and (cycles < sum(e.cycles for e in estimate(program))).all()
    else:
        assert (cycles == cycles[0]).all()  # the schedule is data independent
    assert_cycles_match(program, inputs[-1], profile, commands, int(cycles[-1]))
    print(f"hw-tiny: 4 samples bit-exact, {cycles[0]} cycles per inference")


def test_hw_tiny_per_layer_trace(backend: Backend, config: AcceleratorConfig, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 6)
    report, program, profile, commands = assert_bit_exact(
        backend, config, model, inputs[5:6], every_layer=True
    )
    assert report.mismatch is None and program.trace_names
    assert_cycles_match(program, inputs[5], profile, commands, int(profile.sum()))


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_dvs_model(backend: Backend, config: AcceleratorConfig, attention: str) -> None:
    model, inputs = dvs_model(attention)
    report, program, profile, commands = assert_bit_exact(backend, config, model, inputs, every_layer=True)
    assert report.mismatch is None and program.trace_names
    assert_cycles_match(program, inputs[-1], profile, commands, int(profile.sum()))


def test_hw_spikeformer_mini(backend: Backend, config: AcceleratorConfig) -> None:
    """The reduced paper network end to end through the driver. Its traced program (109
    commands) outruns the 64 profile registers, so the cycles are checked on the plain one."""
    model, inputs = spikeformer_mini_model()
    report, program, profile, commands = assert_bit_exact(backend, config, model, inputs, every_layer=False)
    assert report.samples == len(inputs) and len(program.commands) <= config.profile_depth
    assert_cycles_match(program, inputs[-1], profile, commands, int(report.result.cycles[-1]))
    report, program, _, _ = assert_bit_exact(backend, config, model, inputs, every_layer=True)
    assert report.mismatch is None and {op.name for op in model.ops if op.kind != "head"} <= set(
        program.trace_names
    )
