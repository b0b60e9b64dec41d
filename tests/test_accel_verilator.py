"""Whole models through the accelerator's Verilog under Verilator, run by the host driver.

The backend is the simulated one (:mod:`host.backends.native_backend`: the top with the C++
AXI4-Lite master and AXI DMA models); the checker is :func:`host.verify.check_bit_exact`.

* the suite's trained hw-tiny digits export on 4 test samples (tests/test_host_e2e.py runs
  32 through the command line): logits == integer reference, bit for bit; every command's
  cycle count (the core's PROFILE registers) within 5% of the analytic model;
* one hw-tiny sample with the per-layer trace: every layer's output streamed back equals
  the integer model's trace;
* DVS-shaped models with joint and divided attention on synthetic events: per-layer
  trace, logits and cycles.

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
from protocol.config import ACCEL_CONFIGS
from protocol.perf import estimate
from protocol.program import Program

from accel_models import dvs_model, tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.sim]

ROOT = Path(__file__).resolve().parents[1]
SIM = ACCEL_CONFIGS["sim"]
#: Largest relative difference between the RTL's cycle counter and the model, per command.
CYCLE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    from host.backends.native_backend import DEFAULT_ROOT, NativeSimBackend

    with NativeSimBackend.for_config(SIM, root=ROOT / DEFAULT_ROOT) as sim:
        # The cycle model assumes an always-ready output. The DMA model, as the board's, holds
        # TREADY low until the driver arms the next receive, which it does when it sees the
        # previous packet done: polling every cycle, it does so within a few cycles, so a traced
        # program's STOREs are timed as the model times them (not a 256-cycle poll late).
        sim.poll_s = 1 / sim.clock_hz
        yield sim


def assert_bit_exact(
    backend: Backend, model: IntModel, inputs: np.ndarray, *, every_layer: bool
) -> tuple[BitExactReport, Program, np.ndarray, int]:
    """Run ``inputs``; on any mismatch (or with ``every_layer``, always) rerun traced and
    compare every layer, naming the first differing one.

    Returns the report, the program that ran last (the traced one with ``every_layer``),
    and that last run's per-command cycles and ``COMMANDS`` register.
    """
    traced = compile_model(model, SIM, trace=True)
    driver = Driver(backend, compile_model(model, SIM))
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


def assert_cycles_match(program: Program, profile: np.ndarray, commands: int, cycles: int) -> None:
    """Every command's measured cycles within CYCLE_TOLERANCE of the analytic model."""
    predicted = estimate(program)
    assert commands == len(predicted)
    assert (profile >= 0).all(), "the program has more commands than the profile registers keep"
    rows = []
    for estimate_, measured in zip(predicted, profile, strict=True):
        error = abs(int(measured) - estimate_.cycles) / estimate_.cycles
        rows.append((estimate_.name, estimate_.cycles, int(measured), error))
    worst = max(rows, key=lambda row: row[3])
    assert worst[3] <= CYCLE_TOLERANCE, f"command {worst[0]}: model {worst[1]} cycles, RTL {worst[2]}"
    total = sum(e.cycles for e in predicted)
    print(f"cycles: model {total}, RTL {cycles}; worst per-command error {100 * worst[3]:.2f}% ({worst[0]})")


def test_hw_tiny_samples(backend: Backend, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 4)
    report, program, profile, commands = assert_bit_exact(backend, model, inputs, every_layer=False)
    cycles = report.result.cycles
    assert report.samples == 4 and cycles.shape == (4,)
    assert (cycles == cycles[0]).all()  # the schedule is data independent
    assert_cycles_match(program, profile, commands, int(cycles[-1]))
    print(f"hw-tiny: 4 samples bit-exact, {cycles[0]} cycles per inference")


def test_hw_tiny_per_layer_trace(backend: Backend, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 6)
    report, program, profile, commands = assert_bit_exact(backend, model, inputs[5:6], every_layer=True)
    assert report.mismatch is None and program.trace_names
    assert_cycles_match(program, profile, commands, int(profile.sum()))


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_dvs_model(backend: Backend, attention: str) -> None:
    model, inputs = dvs_model(attention)
    report, program, profile, commands = assert_bit_exact(backend, model, inputs, every_layer=True)
    assert report.mismatch is None and program.trace_names
    assert_cycles_match(program, profile, commands, int(profile.sum()))
