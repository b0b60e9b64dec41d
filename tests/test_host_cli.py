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
from golden.export import make_test_vectors, write_export
from host.run import main
from hw.accel.config import get_config
from hw.accel.descriptors import Opcode

from host_fakes import make_backend
from intmodel_factory import random_input, random_int_model


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    model = random_int_model(11, groupings=("joint",))
    x = random_input(model, 6, seed=12)
    labels = model.run(x)[0].argmax(axis=1)
    labels[:2] = (labels[:2] + 1) % model.num_classes       # two wrong labels: accuracy 66.67 %
    out = write_export(model, tmp_path_factory.mktemp("cli") / "export",
                       vectors=make_test_vectors(model, x, labels))
    return out, model


@pytest.fixture()
def fake_board(monkeypatch: pytest.MonkeyPatch):
    """Route ``--backend pynq`` to the fake Zynq; returns the dict of the opened devices."""
    opened: dict[str, object] = {}

    def open_backend(kind: str, *, config, overlay=None, **options):
        assert kind == "pynq" and overlay is not None
        backend, device = make_backend("thin", get_config(config), **opened.get("core", {}))
        opened["device"] = device
        return backend

    monkeypatch.setattr(host.backends, "open_backend", open_backend)
    return opened


def run(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_reports_accuracy_bit_exactness_cycles_and_fps(export, fake_board, tmp_path, capsys) -> None:
    path, _ = export
    report = tmp_path / "report.json"
    status = run("--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim",
                 "--samples", 6, "--clock-mhz", 50, "--json", report)
    out = capsys.readouterr().out
    assert status == 0, out
    assert "bit-exact yes (6/6 samples" in out
    assert "accuracy accelerator 66.67 %, integer reference 66.67 %" in out
    summary = json.loads(report.read_text())
    cycles = fake_board["device"].core.cycles   # the fake's counter for the last sample
    assert summary["cycles_max"] == cycles and summary["bit_exact"] is True
    assert summary["fps"] == pytest.approx(50e6 / summary["cycles_mean"])
    assert f"FPS      {summary['fps']:.1f} at 50 MHz" in out


def test_names_the_first_differing_layer(export, fake_board, capsys) -> None:
    path, model = export
    fake_board["core"] = {"corrupt_conv": 2}   # the third conv/linear layer computes wrong spikes
    status = run("--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim",
                 "--samples", 3)
    out = capsys.readouterr().out
    assert status == 1
    layers = [op.name for op in model.ops if op.kind in ("conv", "linear")]
    assert f"first differing layer {layers[2]!r}: sample 0" in out, out
    assert re.search(r"bit-exact NO \([1-3] of 3 samples differ, first: sample 0\)", out), out


def test_trace_always_checks_every_layer(export, fake_board, capsys) -> None:
    path, _ = export
    status = run("--export", path, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim",
                 "--samples", 2, "--trace", "always")
    assert status == 0
    # The traced rerun streams back a STORE per op: the fake saw them all.
    executed = fake_board["device"].core.emulator.executed
    assert sum(d.opcode == Opcode.STORE for d in executed) > 10


@pytest.mark.parametrize(("argv", "message"), [
    (["--backend", "pynq"], "needs --overlay"),
    (["--backend", "pynq", "--overlay", "x.bit", "--samples", "0"], "--samples must be positive"),
    (["--backend", "pynq", "--overlay", "x.bit", "--samples", "7"],
     "stores 6 test vectors, fewer than --samples 7"),
    (["--backend", "pynq", "--overlay", "x.bit", "--config", "nope"], "unknown accelerator configuration"),
])
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
    assert run("--export", path, "--backend", "pynq", "--overlay", tmp_path / "none.bit", "--config", "sim",
               "--samples", 2) == 2
    err = capsys.readouterr().err
    assert "BackendUnavailable" in err and ("pynq" in err or "none.bit" in err)


def test_samples_from_the_dataset(tmp_path, capsys, fake_board) -> None:
    model = random_int_model(13, groupings=("joint",), channels=(1, 4, 8), img=8, classes=10, event=False,
                             timesteps=4)
    out = write_export(model, tmp_path / "export", provenance={"data": "digits"})
    status = run("--export", out, "--backend", "pynq", "--overlay", "x.bit", "--config", "sim",
                 "--samples", 3, "--data-root", tmp_path / "data")
    text = capsys.readouterr().out
    assert status == 0, text
    assert "the first 3 samples of the digits test split" in text
    sent = fake_board["device"].sent
    assert len(sent) == 3 and not np.array_equal(sent[0], sent[1])
