"""End to end on the simulated RTL: the host driver's logits equal the integer reference, bit for bit.

* The trained ``hw-tiny`` digits model on 32 test samples, through the command line
  (``python -m host.run --backend sim``), which also checks the report.
* DVS-shaped models (2 x 32 x 32 events, T = 4, 64 tokens) with joint and with divided
  attention on synthetic events, every layer compared (``trace="always"``).
* A deliberately altered layer in the program is named as the first differing layer.
* A band-tiled program (3 segments the driver chains through host memory) bit-exact at
  every layer.
* ``--jobs 2`` (two processes, a simulator each) reports what ``--jobs 1`` does, and the
  traced program run in two shares gives the one-process run's trace of every layer.
* Error flags of the real core (bad descriptor, truncated stream) are reported with the
  failing command and cleared by the driver's reset.

The simulator is the simulated backend (``host.backends.native_backend``) on the ``sim``
accelerator configuration; the Verilator build is cached under build/host-sim (shared with
tests/test_accel_verilator.py).
The trained model and its export with 32 digits test vectors are the suite's shared
``tiny_export`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest

from contract.intmodel import compare_traces, quantize_input
from contract.manifest import load_export, make_test_vectors, write_export
from golden.data import build_dataset
from golden.workloads import firing_int_model
from host.driver import Driver
from host.errors import AcceleratorFault, DMATimeout
from host.verify import check_bit_exact
from protocol import regmap
from protocol.compiler import compile_model
from protocol.config import get_config
from protocol.descriptors import DESC_WORDS

import trained_models

pytestmark = [pytest.mark.sim, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CONFIG = get_config("sim")
DVS = {**trained_models.DVS, "input_bits": 8}
"""The suite's small DVS-shaped hardware model with 8-bit event counts (the ``sim``
configuration's input width)."""


@pytest.fixture(scope="module")
def backend():
    from host.backends.native_backend import NativeSimBackend

    with NativeSimBackend.for_config(CONFIG, root=ROOT / "build" / "host-sim") as sim:
        yield sim


def test_trained_tiny_digits_bit_exact_on_32_samples(tiny_export, backend, tmp_path, capsys) -> None:
    from host.run import main

    report = tmp_path / "report.json"
    status = main(
        [
            "--export",
            str(tiny_export),
            "--backend",
            "sim",
            "--config",
            "sim",
            "--samples",
            "32",
            "--json",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    summary = json.loads(report.read_text())
    assert summary["bit_exact"] and summary["samples"] == 32 and not summary["differing_samples"]
    assert summary["accuracy"] == summary["reference_accuracy"] > 50.0  # a trained model, identical argmax
    assert summary["cycles_min"] > 0 and summary["clock_mhz"] == CONFIG.clock_mhz  # the configuration's clock
    # The dense engine's cycles do not depend on the data: no per-input model count.
    assert summary["cycles_min"] == summary["cycles_median"] == summary["cycles_max"]
    assert summary["model_cycles_for_data"] is None
    assert summary["fps"] == pytest.approx(CONFIG.clock_mhz * 1e6 / summary["cycles_mean"])
    assert "bit-exact yes (32/32 samples" in out


def test_zero_skipping_run_reports_cycles_per_input(tiny_export, tmp_path, capsys) -> None:
    """``host.run --config sim-zero-skip``: bit-exact, cycles that follow each input (min /
    median / max differ), and the cycle model's count for those inputs within 1 % of the RTL's."""
    from host.run import main

    report = tmp_path / "report.json"
    args = ["--export", str(tiny_export), "--backend", "sim", "--config", "sim-zero-skip", "--samples", "8"]
    status = main([*args, "--jobs", "1", "--json", str(report)])
    out = capsys.readouterr().out
    assert status == 0, out
    summary = json.loads(report.read_text())
    assert summary["bit_exact"] and summary["samples"] == 8
    assert summary["cycles_min"] < summary["cycles_max"] < summary["model_cycles"]
    assert summary["model_cycles_for_data"] == pytest.approx(summary["cycles_mean"], rel=0.01)
    assert "median" in out and "dense-equivalent synaptic ops per cycle" in out


def test_two_jobs_equal_one_job(tiny_export, backend, tmp_path, monkeypatch, capsys) -> None:
    # --jobs 2 simulates two shares of the samples in two processes, each with a simulator of
    # its own (the build is this process's): the report, logits and cycles are those of --jobs 1,
    # and the traced program run in shares gives every layer's trace of the one-process run.
    import host.verify
    from host.backends import open_backend
    from host.parallel import run_shares
    from host.run import main

    reports = []
    check = host.verify.check_bit_exact

    def recording(*args, **kwargs):
        reports.append(check(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(host.verify, "check_bit_exact", recording)
    summaries = []
    for jobs in (1, 2):
        path = tmp_path / f"jobs{jobs}.json"
        argv = ["--export", tiny_export, "--backend", "sim", "--config", "sim", "--samples", 6]
        assert main([str(a) for a in [*argv, "--trace", "always", "--jobs", jobs, "--json", path]]) == 0
        summary = json.loads(path.read_text())
        del summary["stage_seconds"]  # wall clock
        summaries.append(summary)
    err = capsys.readouterr().err
    assert "simulating 6 samples on 1 process" in err and "simulating 6 samples on 2 processes" in err
    assert "the simulator is up to date" in err  # built by the fixture, once
    assert summaries[0] == summaries[1] and summaries[0]["bit_exact"]
    one, two = (report.result for report in reports)
    np.testing.assert_array_equal(one.logits, two.logits)
    np.testing.assert_array_equal(one.cycles, two.cycles)
    export = load_export(tiny_export)
    traced = compile_model(export.model, CONFIG, trace=True)
    x = export.vectors.inputs[:6]
    driver = Driver(backend, traced)
    whole = driver.run(x)
    opener = functools.partial(open_backend, "sim", config=CONFIG, root=ROOT / "build" / "host-sim")
    shares = run_shares(opener, traced, x, jobs=2, timeout_s=driver.timeout_s)
    np.testing.assert_array_equal(shares.logits, whole.logits)
    np.testing.assert_array_equal(shares.cycles, whole.cycles)
    assert set(shares.traces) == set(traced.trace_names) == set(whole.traces)
    assert compare_traces(whole.traces, shares.traces, names=traced.trace_names) is None


def dvs_model(attention: str, seed: int) -> tuple[object, np.ndarray]:
    """An untrained DVS-shaped model whose BatchNorm statistics make every layer fire; 2 test samples."""
    int_model = firing_int_model("hw-tiny", seed=seed, attention=attention, **DVS)
    events = build_dataset(
        "synthetic-events", None, "test", timesteps=4, size=32, num_classes=4, samples_per_class=1
    )
    x = np.stack([np.asarray(events[i][0]) for i in range(2)])
    return int_model, quantize_input(x, input_max=int_model.numerics.input_max)


@pytest.fixture(scope="module", params=["joint", "divided"])
def dvs(request) -> tuple[object, np.ndarray]:
    return dvs_model(request.param, seed=7)


def test_dvs_shaped_attention_bit_exact_at_every_layer(dvs, backend) -> None:
    model, x = dvs
    groupings = {op.params["grouping"] for op in model.ops if op.kind == "attention"}
    assert groupings in ({"joint"}, {"temporal", "spatial"})
    # Not a vacuous comparison: every spiking layer fires on these samples.
    _, trace = model.run(x, trace=True)
    silent = [
        op.name for op in model.ops if op.kind in ("conv", "linear", "attention") and not trace[op.name].any()
    ]
    assert not silent, silent
    report = check_bit_exact(Driver(backend, compile_model(model, CONFIG)), model, x, trace="always")
    assert report.exact, report.summary()
    assert (report.result.cycles > 0).all()


def test_altered_layer_is_named_as_the_first_difference(dvs, backend) -> None:
    model, x = dvs
    target = next(op for op in model.ops if op.kind == "linear" and op.name.endswith(".v"))
    weight = target.tensors["weight"].copy()
    weight[0] = -weight[0]  # one output channel of V with inverted weights
    altered = dataclasses.replace(
        model,
        ops=tuple(
            dataclasses.replace(op, tensors={**op.tensors, "weight": weight}) if op is target else op
            for op in model.ops
        ),
    )
    driver = Driver(backend, compile_model(altered, CONFIG))
    report = check_bit_exact(
        driver, model, x, trace="always", traced=compile_model(altered, CONFIG, trace=True)
    )
    assert report.mismatch is not None and report.mismatch.layer == target.name, report.summary()


def test_band_tiled_program_bit_exact_at_every_layer(backend) -> None:
    from intmodel_factory import banded_int_model, random_input

    model = banded_int_model(3, img=32)
    x = random_input(model, 2, 7)
    logits, trace = model.run(x, trace=True)
    # Compiled for a 2000-word activation memory, so that two tokenizer stages run band
    # tiled; every address lies below 2000, so the program runs on the sim top's larger
    # memory (the configuration hashes differ: no hardware check).
    small = dataclasses.replace(CONFIG, amem_depth=2000)
    program = compile_model(model, small, trace=True)
    assert len(program.segments()) == 3 and [s.bands for s in program.stages] == [16, 2]
    done: list[int] = []
    result = Driver(backend, program, check_hardware=False).run(x, profile=True, progress=done.append)
    assert done == [0, 1]  # once per sample, after all its segments
    np.testing.assert_array_equal(result.logits, logits)
    assert compare_traces(trace, result.traces, names=program.trace_names) is None
    # Per command, the core's counters agree with the cycle model (the first command of
    # each segment also counts the sender's start-up).
    from protocol.perf import estimate

    predicted = np.array([c.cycles for c in estimate(program)])
    measured = result.profile[0]
    kept = measured >= 0  # the profile window keeps each segment's last 64 commands
    assert kept.sum() > 64 and not kept.all()
    # A trace STORE right after another packet may wait for the driver to arm the next
    # receive (the model assumes an always-ready output): at least the model's cycles there.
    traced = np.array([c.name.startswith("trace:") for c in program.commands])
    close = np.abs(measured - predicted) <= np.maximum(2, 0.05 * predicted)
    assert close[kept & ~traced].all() and (measured[kept] >= predicted[kept] - 2).all()


def test_core_errors_are_reported_and_cleared(dvs, backend) -> None:
    model, x = dvs
    program = compile_model(model, CONFIG)
    driver = Driver(backend, program)
    good = driver.pack(x[:1])
    conv = DESC_WORDS + program.input_words(x[0]).size  # the first CONV descriptor
    bad = good.copy()
    bad[0, conv + 3] ^= np.uint64(1 << 17)
    driver.pack = lambda _: bad  # type: ignore[method-assign]
    with pytest.raises(AcceleratorFault) as info:
        driver.run(x[:1])
    assert info.value.flags & regmap.ErrorFlag.DESCRIPTOR and info.value.command == 1
    assert "CHECKSUM" in str(info.value)
    driver.pack = lambda _: good  # type: ignore[method-assign]
    np.testing.assert_array_equal(driver.run(x[:1]).logits, model.run(x[:1])[0])
    # A stream cut before END: the DMA's TLAST arrives early.
    full = driver.input_words
    driver.input_words = conv + DESC_WORDS
    with pytest.raises(AcceleratorFault) as info:
        driver.run(x[:1])
    assert info.value.flags & regmap.ErrorFlag.TRUNCATED
    driver.input_words = full
    np.testing.assert_array_equal(driver.run(x[:1]).logits, model.run(x[:1])[0])


def test_lost_start_times_out_and_recovers(dvs, backend, monkeypatch) -> None:
    # Without START the core never takes the stream: the wait for the first output packet
    # times out (in simulated time), the driver resets core and DMA, and the next run works.
    model, x = dvs
    driver = Driver(backend, compile_model(model, CONFIG), timeout_s=2e-4)
    write = backend.write
    start = regmap.offset("CONTROL"), 1 << regmap.field_mask("CONTROL", "START")[0]
    monkeypatch.setattr(
        backend, "write", lambda offset, value: None if (offset, value) == start else write(offset, value)
    )
    with pytest.raises(DMATimeout) as info:
        driver.run(x[:1])
    assert info.value.stage == "receive" and info.value.waited_s >= 2e-4
    assert not info.value.status["STATUS"] & 1  # the core never started
    monkeypatch.setattr(backend, "write", write)
    driver.timeout_s = 1.0  # room for a whole inference again
    np.testing.assert_array_equal(driver.run(x[:1]).logits, model.run(x[:1])[0])


def test_export_round_trip_on_the_rtl(dvs, backend, tmp_path) -> None:
    # The loaded export (what the CLI and a board use) runs as the in-memory model does.
    model, x = dvs
    vectors = make_test_vectors(model, x, [0, 1])
    loaded = load_export(write_export(model, tmp_path / "export", vectors=vectors))
    driver = Driver.from_export(backend, loaded, config=CONFIG)
    np.testing.assert_array_equal(driver.run(x).logits, loaded.vectors.logits)
