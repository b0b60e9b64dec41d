"""Whole models through the accelerator's Verilog under Verilator + cocotb (AXI4-Lite + AXI4-Stream).

* the suite's trained hw-tiny digits export on 4 test samples (tests/test_host_e2e.py runs
  32 through the host driver): logits == integer reference, bit for bit; every command's cycle count
  (the core's PROFILE registers) within 5% of the analytic model;
* one hw-tiny sample with the per-layer trace: every layer's output streamed back equals
  the integer model's trace;
* DVS-shaped models with joint and divided attention on synthetic events: per-layer
  trace, logits and cycles.

A mismatch reruns the sample with the trace program and names the first differing
layer and index. The Verilator build (several minutes) is cached in ``build/accel``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from accel_models import dvs_model, tiny_model

from golden.intmodel import IntModel
from hw.accel.compiler import compile_model
from hw.accel.config import ACCEL_CONFIGS
from hw.accel.perf import estimate
from hw.accel.program import Program
from hw.accel.verilator import DEFAULT_ROOT, RunResult, VerilatorAccelerator, check_outputs

pytestmark = [pytest.mark.slow, pytest.mark.sim]

SIM = ACCEL_CONFIGS["sim"]
#: Largest relative difference between the RTL's cycle counter and the model, per command.
CYCLE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def accel() -> VerilatorAccelerator:
    accelerator = VerilatorAccelerator(SIM, root=DEFAULT_ROOT)
    accelerator.build()
    return accelerator


def _sample_trace(trace: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {name: value[:, i : i + 1] for name, value in trace.items() if value.ndim >= 2}


def assert_bit_exact(
    accel: VerilatorAccelerator, model: IntModel, program: Program, inputs: np.ndarray
) -> list[RunResult]:
    """Run ``inputs``; on any mismatch rerun that sample traced and name the first differing layer."""
    runs, _ = accel.run(program, inputs)
    logits, trace = model.run(inputs, trace=bool(program.trace_names))
    for i, run in enumerate(runs):
        mismatch = check_outputs(program, run, logits[i], _sample_trace(trace, i) if trace else None)
        if mismatch is None:
            continue
        if not program.trace_names:
            traced = compile_model(model, program.config, trace=True)
            (rerun,), _ = accel.run(traced, inputs[i : i + 1])
            _, full = model.run(inputs[i : i + 1], trace=True)
            mismatch = check_outputs(traced, rerun, logits[i], _sample_trace(full, 0)) or mismatch
        pytest.fail(f"sample {i}: RTL differs from the integer model: {mismatch}")
    return runs


def assert_cycles_match(program: Program, run: RunResult) -> None:
    """Every command's measured cycles within CYCLE_TOLERANCE of the analytic model."""
    predicted = estimate(program)
    assert run.commands == len(predicted)
    rows = []
    for estimate_, measured in zip(predicted, run.profile, strict=True):
        error = abs(int(measured) - estimate_.cycles) / estimate_.cycles
        rows.append((estimate_.name, estimate_.cycles, int(measured), error))
    worst = max(rows, key=lambda row: row[3])
    assert worst[3] <= CYCLE_TOLERANCE, f"command {worst[0]}: model {worst[1]} cycles, RTL {worst[2]}"
    total = sum(e.cycles for e in predicted)
    print(
        f"cycles: model {total}, RTL {run.cycles}; worst per-command error {100 * worst[3]:.2f}% ({worst[0]})"
    )


def test_hw_tiny_samples(accel: VerilatorAccelerator, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 4)
    program = compile_model(model, SIM)
    runs = assert_bit_exact(accel, model, program, inputs)
    assert len(runs) == 4
    for run in runs:
        assert run.cycles == runs[0].cycles  # the schedule is data independent
    assert_cycles_match(program, runs[0])
    print(f"hw-tiny: 4 samples bit-exact, {runs[0].cycles} cycles per inference")


def test_hw_tiny_per_layer_trace(accel: VerilatorAccelerator, tiny_export: Path) -> None:
    model, inputs = tiny_model(tiny_export, 6)
    program = compile_model(model, SIM, trace=True)
    (run,) = assert_bit_exact(accel, model, program, inputs[5:6])
    assert_cycles_match(program, run)


@pytest.mark.parametrize("attention", ["joint", "divided"])
def test_dvs_model(accel: VerilatorAccelerator, attention: str) -> None:
    model, inputs = dvs_model(attention)
    program = compile_model(model, SIM, trace=True)
    runs = assert_bit_exact(accel, model, program, inputs)
    assert_cycles_match(program, runs[0])
