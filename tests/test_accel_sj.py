"""SpikingJelly's Spikformer on the accelerator: compiled for ``sim``, bit-exact at every layer.

The models are converted and quantized exactly as in tests/test_sj_quantize.py (untrained,
BatchNorm statistics that make every layer fire).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from contract.intmodel import IntModel, compare_traces
from golden.workloads import firing_int_model
from protocol.compiler import compile_model
from protocol.config import ACCEL_CONFIGS
from protocol.descriptors import Opcode
from protocol.emulator import Emulator
from protocol.perf import plan, report
from protocol.segments import run_program

from accel_models import assert_emulator_matches_model
from test_sj_quantize import KW, _inputs, _quantized

SIM = ACCEL_CONFIGS["sim"]
LIF_KINDS = ("conv", "conv_maxpool", "linear", "attention")


def _without_current_pools(model: IntModel) -> IntModel:
    """``model`` with every ``conv_maxpool`` a plain ``conv`` of the same weights and stride 2.

    A 3x3 conv of stride 2 and padding 1 has the output size of the stride-1 conv followed
    by ``MaxPool(3, 2, 1)``, so the rest of the model is unchanged.
    """
    ops = tuple(
        dataclasses.replace(op, kind="conv", params={"stride": 2, "padding": op.params["padding"]})
        if op.kind == "conv_maxpool"
        else op
        for op in model.ops
    )
    return dataclasses.replace(model, ops=ops)


def _assert_emulated_equal(model: IntModel, x: np.ndarray) -> None:
    _, trace = model.run(x, trace=True)
    for name, kind in ((op.name, op.kind) for op in model.ops):
        if kind in LIF_KINDS:
            assert 0 < trace[name].mean() < 1, f"{name} must fire for the comparison to prove anything"
    assert_emulator_matches_model(SIM, model, x)


def test_spikformer_without_current_pools_runs_on_the_emulator() -> None:
    # The positional-encoding residual, the split q/k/v, spatial attention and the head map
    # onto the existing commands.
    _, _, int_model = _quantized(4, False)
    model = _without_current_pools(int_model)
    kinds = [op.kind for op in model.ops]
    assert "conv_maxpool" not in kinds and {"add", "attention", "linear", "head"} <= set(kinds)
    assert model.op("blocks.0.attn.attention").params["grouping"] == "spatial"
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 2, seed=5).numpy().astype(np.int64)
    _assert_emulated_equal(model, x)


def test_spikformer_with_current_pools_runs_on_the_emulator() -> None:
    _, _, model = _quantized(4, False)
    assert [op.name for op in model.ops if op.kind == "conv_maxpool"] == ["stem.2", "stem.3"]
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 2, seed=5).numpy().astype(np.int64)
    _assert_emulated_equal(model, x)


@pytest.mark.slow
def test_spikformer_with_current_pools_on_the_core() -> None:
    """The converted Spikformer through the Amaranth-simulated core (about 130,000 cycles, a
    6 minutes on the shared 2-core machine): every layer, per-command cycles and the written regions."""
    from test_accel_core import assert_bit_exact_with_exact_cycles

    _, _, model = _quantized(4, False)
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 1, seed=5).numpy().astype(np.int64)
    assert_bit_exact_with_exact_cycles(SIM, model, x, max_cycles=200_000)


@pytest.mark.slow
@pytest.mark.sim
def test_spikformer_bit_exact_on_the_simulated_rtl_through_the_host_driver() -> None:
    """The converted Spikformer (pooled stem currents included) on the Verilator-simulated
    accelerator, driven by the host driver: logits and every layer equal the integer reference.
    The build is shared with tests/test_host_e2e.py (build/host-sim)."""
    from pathlib import Path

    from host.backends import open_backend
    from host.driver import Driver
    from host.verify import check_bit_exact

    _, _, model = _quantized(4, False)
    x = _inputs(dict(KW[4], T=2, in_channels=1), False, 2, seed=5).numpy().astype(np.int64)
    _, trace = model.run(x, trace=True)
    for op in model.ops:
        if op.kind in LIF_KINDS:
            assert 0 < trace[op.name].mean() < 1, f"{op.name} must fire for the comparison to prove anything"
    root = Path(__file__).resolve().parents[1] / "build" / "host-sim"
    with open_backend("sim", config=SIM, root=root) as backend:
        driver = Driver(backend, compile_model(model, SIM))
        try:
            report = check_bit_exact(driver, model, x, trace="always")
        finally:
            driver.close()
    assert report.exact, report.summary()
    assert report.samples == 2 and (report.result.cycles > 0).all()


# ---------------------------------------------------------------------------- paper-sized
@pytest.fixture(scope="module")
def paper() -> IntModel:
    """Spikformer-2-256 for 2x128x128 DVS at T=16 (the converter's target family, seeded
    statistics), every stem stage pooling its currents."""
    return firing_int_model("sj-spikformer-2-256-gesture")


def test_paper_sized_spikformer_compiles_for_pynq_z2(paper: IntModel) -> None:
    """The stem's first two pooled convs exceed the activation memory and run band tiled."""
    cfg = ACCEL_CONFIGS["pynq-z2"]
    assert [op.name for op in paper.ops if op.kind == "conv_maxpool"] == [f"stem.{i}" for i in range(4)]
    rep, stages, resident = plan(paper, cfg)
    assert [s.ops for s in stages] == [("stem.0",), ("stem.1",)]
    assert all(s.bands > 1 and s.amem_words <= cfg.amem_depth for s in stages)
    assert rep.segments == len(stages) + 1 and rep.amem_words_used <= cfg.amem_depth < resident
    program = compile_model(paper, cfg)
    assert (report(program).cycles, report(program).stream_in_bytes) == (rep.cycles, rep.stream_in_bytes)
    pooled = [c.descriptor for c in program.commands if c.opcode == Opcode.CONV and c.descriptor.pool_kernel]
    assert len(pooled) == sum(s.bands for s in stages) + 2
    assert 5e6 < rep.cycles < 5e7


def test_paper_sized_spikformer_bit_exact_on_the_emulator(paper: IntModel) -> None:
    """The traced band-tiled program on pynq-z2 == the integer model at every layer."""
    cfg = ACCEL_CONFIGS["pynq-z2"]
    program = compile_model(paper, cfg, trace=True)
    x = np.random.default_rng(0).integers(0, 3, (1, paper.timesteps, *paper.input_shape))
    logits, trace = paper.run(x, trace=True)
    for op in paper.ops:
        if op.kind in LIF_KINDS:
            assert 0 < trace[op.name].mean() < 1, f"{op.name} must fire for the comparison to prove anything"
    got_logits, got_trace = program.decode(run_program(program, x[0], Emulator(cfg).run))
    np.testing.assert_array_equal(got_logits, logits[0])
    assert compare_traces(trace, got_trace, names=program.trace_names) is None
