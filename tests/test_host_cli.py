"""``python -m host.run`` and the bit-exactness report, on the fake board (tests/host_fakes.py).

The backend is the board backend on the fake Zynq (whose core runs the protocol
emulator), so these tests cover the command line, the sample sources, the report and
the per-layer localisation of a mismatch without a simulator: a fault injected into
one layer of the fake core must be reported as exactly that layer. The same CLI on
the simulated RTL is tested in tests/test_host_e2e.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import host.backends
import host.driver
from contract.manifest import make_test_vectors, write_export
from host.driver import Driver
from host.run import build_parser, main
from protocol.config import get_config
from protocol.descriptors import Opcode

from host_fakes import make_backend
from intmodel_factory import random_input, random_int_model


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    model = random_int_model(11, groupings=("joint",))
    x = random_input(model, 6, seed=12)
    labels = model.run(x)[0].argmax(axis=1)
    labels[:2] = (labels[:2] + 1) % model.num_classes  # two wrong labels: accuracy 66.67 %
    out = write_export(
        model, tmp_path_factory.mktemp("cli") / "export", vectors=make_test_vectors(model, x, labels)
    )
    return out, model


@pytest.fixture()
def fake_board(monkeypatch: pytest.MonkeyPatch):
    """Route ``--backend pynq`` to the fake Zynq; returns the dict of the opened devices."""
    opened: dict[str, object] = {}

    def open_backend(kind: str, *, config, overlay=None, **options):
        assert kind == "pynq" and overlay is not None
        backend, device = make_backend("thin", get_config(config), **opened.get("core", {}))
        opened["device"], opened["options"] = device, options
        return backend

    monkeypatch.setattr(host.backends, "open_backend", open_backend)
    return opened


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_reports_accuracy_bit_exactness_cycles_and_fps(export, fake_board, tmp_path, capsys) -> None:
    path, _ = export
    report = tmp_path / "report.json"
    status = run(
        "--export",
        path,
        "--backend",
        "pynq",
        "--overlay",
        "x.bit",
        "--config",
        "sim",
        "--samples",
        6,
        "--clock-mhz",
        50,
        "--json",
        report,
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "bit-exact yes (6/6 samples" in out
    assert "accuracy accelerator 66.67 %, integer reference 66.67 %" in out
    summary = json.loads(report.read_text())
    cycles = fake_board["device"].core.cycles  # the fake's counter for the last sample
    assert summary["cycles_max"] == cycles and summary["bit_exact"] is True
    assert summary["fps"] == pytest.approx(50e6 / summary["cycles_mean"])
    assert f"FPS      {summary['fps']:.1f} at 50 MHz" in out


def test_names_the_first_differing_layer(export, fake_board, capsys) -> None:
    path, model = export
    fake_board["core"] = {"corrupt_conv": 2}  # the third conv/linear layer computes wrong spikes
    status = run(
        "--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim", "--samples", 3
    )
    out = capsys.readouterr().out
    assert status == 1
    layers = [op.name for op in model.ops if op.kind in ("conv", "linear")]
    assert f"first differing layer {layers[2]!r}: sample 0" in out, out
    assert re.search(r"bit-exact NO \([1-3] of 3 samples differ, first: sample 0\)", out), out


def test_trace_always_checks_every_layer(export, fake_board, capsys) -> None:
    path, _ = export
    status = run(
        "--export",
        path,
        "--backend",
        "pynq",
        "--overlay",
        "x.bit",
        "--config",
        "sim",
        "--samples",
        2,
        "--trace",
        "always",
    )
    assert status == 0
    # The traced rerun streams back a STORE per op: the fake saw them all.
    executed = fake_board["device"].core.emulator.executed
    assert sum(d.opcode == Opcode.STORE for d in executed) > 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "pynq"], "needs --overlay"),
        (["--backend", "pynq", "--overlay", "x.bit", "--samples", "0"], "--samples must be positive"),
        (
            ["--backend", "pynq", "--overlay", "x.bit", "--samples", "7"],
            "stores 6 test vectors, fewer than --samples 7",
        ),
        (
            ["--backend", "pynq", "--overlay", "x.bit", "--config", "nope"],
            "unknown accelerator configuration",
        ),
        # One board runs one sample at a time: no shares in several processes.
        (["--backend", "pynq", "--overlay", "x.bit", "--jobs", "2"], "--backend pynq takes --jobs 1"),
        (["--backend", "sim", "--jobs", "0"], "--jobs must be positive"),
    ],
)
def test_argument_errors(export, fake_board, capsys, argv, message) -> None:
    path, _ = export
    assert run("--export", path, *argv) == 2
    assert message in capsys.readouterr().err


def test_missing_export(tmp_path, capsys) -> None:
    assert run("--export", tmp_path / "none", "--backend", "sim") == 2
    assert "manifest" in capsys.readouterr().err


def test_pynq_backend_without_pynq_or_overlay(export, tmp_path, capsys) -> None:
    # The real open_backend: a missing overlay (or a missing pynq package) is a clear error, exit 2.
    path, _ = export
    assert (
        run(
            "--export",
            path,
            "--backend",
            "pynq",
            "--overlay",
            tmp_path / "none.bit",
            "--config",
            "sim",
            "--samples",
            2,
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "BackendUnavailable" in err and ("pynq" in err or "none.bit" in err)


def test_all_samples_come_from_the_export(export, fake_board, capsys) -> None:
    # The samples are the export's test vectors (golden.quantize --samples N|all stores them):
    # 'all' runs every one, each sent as its own stream.
    path, _ = export
    status = run(
        "--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim", "--samples", "all"
    )
    text = capsys.readouterr().out
    assert status == 0, text
    assert "samples  6 from the export's test vectors (6 of 6)" in text
    sent = fake_board["device"].sent
    assert len(sent) == 6 and not np.array_equal(sent[0], sent[1])


def test_export_without_test_vectors_is_an_error(tmp_path, fake_board, capsys) -> None:
    model = random_int_model(
        13, groupings=("joint",), channels=(1, 4, 8), img=8, classes=10, event=False, timesteps=4
    )
    out = write_export(model, tmp_path / "export", provenance={"data": "digits"})
    assert run("--export", out, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim") == 2
    assert "stores no test vectors" in capsys.readouterr().err
    assert "--data-root" not in build_parser().format_help()  # the board path reads no dataset


def test_clock_comes_from_the_configuration(export, fake_board, monkeypatch, tmp_path) -> None:
    # One clock: the configuration's clock_mhz, unless --clock-mhz overrides it for the frames
    # per second and the driver's timeouts alike; the override keeps the hardware check passing
    # (config_hash leaves the clock out).
    path, _ = export
    drivers: list[Driver] = []

    class Recording(Driver):
        def __init__(self, backend, program, **kwargs) -> None:
            backend.min_timeout_s = 1e-9  # let the clock, not the floor, set the default timeout
            super().__init__(backend, program, **kwargs)
            drivers.append(self)

    monkeypatch.setattr(host.driver, "Driver", Recording)
    sim = get_config("sim")
    summaries = []
    for clock in ([], ["--clock-mhz", str(sim.clock_mhz / 2)]):
        report = tmp_path / f"report{len(summaries)}.json"
        argv = ["--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim"]
        assert run(*argv, "--samples", 2, *clock, "--json", report) == 0
        summaries.append(json.loads(report.read_text()))
    default, halved = summaries
    assert default["clock_mhz"] == sim.clock_mhz and halved["clock_mhz"] == sim.clock_mhz / 2
    assert default["fps"] == pytest.approx(sim.clock_mhz * 1e6 / default["cycles_mean"])
    assert halved["fps"] == pytest.approx(default["fps"] / 2)
    first, second = drivers
    assert first.program.config == sim and second.program.config.clock_mhz == sim.clock_mhz / 2
    assert second.program.config.config_hash == sim.config_hash and second.info is not None
    assert second.timeout_s == pytest.approx(2 * first.timeout_s)


def test_progress_bar_on_stderr_leaves_the_report_alone(export, fake_board, tmp_path, capsys) -> None:
    # Forced on (stderr is no terminal here), the bar counts samples on stderr; stdout and the
    # JSON report are what they are without it.
    path, _ = export
    argv = ["--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim", "--samples", 6]
    outputs = []
    for mode in ("never", "always", "auto"):
        report = tmp_path / f"{mode}.json"
        assert run(*argv, "--progress", mode, "--json", report) == 0
        captured = capsys.readouterr()
        summary = json.loads(report.read_text())
        del summary["stage_seconds"]  # wall clock
        outputs.append((mode, captured, summary))
    (_, never, plain), (_, always, forced), (_, auto, automatic) = outputs
    assert "host.run: running 6 samples on 1 process" in never.err and "samples in" in never.err
    assert "6/6" in always.err and "sample/s" in always.err
    assert "6/6" not in never.err and "6/6" not in auto.err  # auto: stderr is no terminal
    strip = [line for line in always.out.splitlines() if not line.startswith("stages")]
    assert strip == [line for line in never.out.splitlines() if not line.startswith("stages")]
    assert plain == forced == automatic


@pytest.mark.parametrize(("argv", "options"), [((), {}), (("--clock-mhz", "50"), {"clock_mhz": 50.0})])
def test_a_board_keeps_its_clock_unless_asked(export, fake_board, argv, options) -> None:
    """The bitstream's clock stays; only an explicit --clock-mhz reaches the board's PL clock."""
    path, _ = export
    assert run("--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim", *argv) == 0
    assert fake_board["options"] == options
