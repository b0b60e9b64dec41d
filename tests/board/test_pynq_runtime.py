"""The board runtime in the board environment, on the real pynq classes and a fake Zynq.

``python -m host.run --backend pynq`` (its ``main``) runs here as on a board: it loads an
export written with :mod:`contract.manifest` (the integer model built with numpy by
tests/intmodel_factory.py; this environment has no torch), compiles, drives and checks the
stored test vectors bit-exactly through pynq's ``DefaultIP``, ``pynq.lib.dma.DMA`` and
``pynq.allocate`` on a ``pynq.Device`` subclass (tests/host_fakes.py: the protocol emulator
plays the accelerator, a PG021 register model the DMA). Only ``pynq.Overlay`` is stood in
for: it would parse a Vivado ``.hwh``, which no test here can produce; the stand-in
returns pynq's own IP drivers under the block-design names :mod:`host.bitstream` uses.
Also here: the driver on a ``pynq.MMIO`` window, a stuck DMA, a missing ``DONE``, export
and overlay loading errors, and what the environment holds.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pynq
import pytest

from contract.manifest import make_test_vectors, write_export
from host import bitstream
from host.backends.pynq_backend import PynqBackend
from host.driver import Driver
from host.errors import BackendUnavailable, DMATimeout, DoneTimeout
from host.run import main
from protocol import regmap
from protocol.compiler import compile_model
from protocol.config import get_config

from host_fakes import ACCEL_BASE, WINDOW, make_backend, pynq_device, pynq_ip_and_dma
from intmodel_factory import random_input, random_int_model

CONFIG = get_config("sim")


class OverlayStandIn:
    """What ``pynq.Overlay(bitfile)`` gives the backend: ``ip_dict`` and pynq's drivers of the two IPs."""

    def __init__(self, device: Any, names: tuple[str, ...]) -> None:
        ip, dma = pynq_ip_and_dma(device)
        self.ip_dict = {}
        for name, driver in zip(names, (ip, dma), strict=True):
            self.ip_dict[name] = {"phys_addr": driver.mmio.base_addr}
            setattr(self, name, driver)


@pytest.fixture
def board(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the fake Zynq pynq's active device and the overlay stand-in ``pynq.Overlay``.

    ``board(**core)`` builds the device (``core``: :class:`host_fakes.FakeCore` options) and
    returns it; ``device.overlays`` lists the ``(bitfile, download)`` of every Overlay call.
    """

    def make(names: tuple[str, ...] = (bitstream.IP_INSTANCE, bitstream.DMA_INSTANCE), **core: Any) -> Any:
        device = pynq_device(CONFIG, **core)
        device.overlays = []

        def overlay(bitfile: str, download: bool = True) -> OverlayStandIn:
            device.overlays.append((bitfile, download))
            return OverlayStandIn(device, names)

        # pynq.allocate without a target takes the active device, as on a board.
        monkeypatch.setattr(pynq.Device, "_active_device", device, raising=False)
        monkeypatch.setattr(pynq, "Overlay", overlay)
        return device

    return make


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """A small integer model, its export with 3 test vectors, and overlay files (not read)."""
    base = tmp_path_factory.mktemp("board")
    model = random_int_model(31, groupings=("joint",))
    x = random_input(model, 3, seed=2)
    export = write_export(model, base / "export", vectors=make_test_vectors(model, x, [0, 1, 2]))
    overlay = base / f"{bitstream.OVERLAY_NAME}.bit"
    for path in (overlay, overlay.with_suffix(".hwh")):
        path.write_bytes(b"fake")
    return model, export, overlay


def run_cli(export: Path, overlay: Path, *extra: str) -> int:
    return main(
        [
            *("--export", str(export), "--backend", "pynq", "--overlay", str(overlay)),
            *("--config", CONFIG.name, "--progress", "never", *extra),
        ]
    )


def test_environment_is_what_a_pynq_image_has() -> None:
    assert pynq.__version__ == "3.1.2" and np.__version__.startswith("1.26.")
    for absent in ("torch", "amaranth", "cocotb"):
        assert importlib.util.find_spec(absent) is None, absent


# ---------------------------------------------------------------------- host.run on the board path
def test_stored_vectors_run_bit_exact(board, files, tmp_path, capsys) -> None:
    model, export, overlay = files
    device = board()
    report = tmp_path / "report.json"
    assert run_cli(export, overlay, "--samples", "all", "--json", str(report)) == 0
    out = capsys.readouterr().out
    assert "bit-exact yes (3/3 samples" in out
    summary = json.loads(report.read_text())
    assert summary["bit_exact"] and summary["samples"] == 3 and summary["backend"] == "pynq"
    assert device.overlays == [(str(overlay), True)]
    # One stream per stored vector, each the compiled program's, through pynq's buffers.
    program = compile_model(model, CONFIG)
    x = random_input(model, 3, seed=2)
    assert len(device.sent) == 3 and device.allocations == 2
    for sent, sample in zip(device.sent, x, strict=True):
        np.testing.assert_array_equal(sent, program.stream(sample))


def test_a_wrong_layer_is_reported_not_bit_exact(board, files, capsys) -> None:
    _, export, overlay = files
    model = files[0]
    board(corrupt_conv=2)  # the third conv/linear layer computes wrong spikes
    assert run_cli(export, overlay, "--samples", "all") == 1
    out = capsys.readouterr().out
    layers = [op.name for op in model.ops if op.kind in ("conv", "linear")]
    assert f"first differing layer {layers[2]!r}: sample 0" in out and "bit-exact NO" in out, out


def test_a_hung_core_ends_the_run_with_a_dma_timeout(board, files, capsys) -> None:
    _, export, overlay = files
    device = board(mode="hang")
    assert run_cli(export, overlay, "--samples", "1", "--timeout", "0.05") == 2
    assert "DMATimeout" in capsys.readouterr().err
    assert device.core.soft_resets == 1


# ---------------------------------------------------------------------- the driver on pynq classes
def test_driver_on_a_pynq_mmio_window_is_bit_exact() -> None:
    device = pynq_device(CONFIG)
    _, dma = pynq_ip_and_dma(device)
    backend = PynqBackend(
        ip=pynq.MMIO(ACCEL_BASE, WINDOW, device=device),
        dma=dma,
        allocate=lambda shape, dtype: pynq.allocate(shape, dtype, target=device),
        poll_s=1e-5,
        min_timeout_s=0.05,
    )
    model = random_int_model(3, groupings=("temporal", "spatial"))
    x = random_input(model, 2, seed=1)
    driver = Driver(backend, compile_model(model, CONFIG))
    assert backend.read(regmap.offset("ID")) == regmap.ACCEL_ID
    np.testing.assert_array_equal(driver.run(x).logits, model.run(x)[0])


def test_stuck_dma_times_out_and_is_reset() -> None:
    backend, device = make_backend("pynq", CONFIG, mode="stall")
    model = random_int_model(3, groupings=("temporal",))
    driver = Driver(backend, compile_model(model, CONFIG), timeout_s=0.05)
    with pytest.raises(DMATimeout, match="never completed"):
        driver.run(random_input(model, 1, seed=6))
    assert device.sent == [] and not device.mm2s.active  # the DMA reset aborted the transfer


def test_missing_done_times_out_within_the_drivers_timeout(monkeypatch) -> None:
    backend, device = make_backend("pynq", CONFIG)
    model = random_int_model(3, groupings=("temporal",))
    driver = Driver(backend, compile_model(model, CONFIG), timeout_s=0.05)
    real = device.core.read
    shift, mask = regmap.field_mask("STATUS", "DONE")
    status = regmap.offset("STATUS")
    monkeypatch.setattr(
        device.core,
        "read",
        lambda offset: real(offset) & ~(mask << shift) if offset == status else real(offset),
    )
    start = time.monotonic()
    with pytest.raises(DoneTimeout, match="DONE never came"):
        driver.run(random_input(model, 1, seed=6))
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------------- loading errors
def test_export_loading_errors_exit_2(board, files, tmp_path, capsys) -> None:
    _, export, overlay = files
    board()
    assert run_cli(tmp_path, overlay) == 2
    assert "not an export directory" in capsys.readouterr().err
    assert run_cli(export, overlay, "--samples", "4") == 2
    assert "stores 3 test vectors, fewer than --samples 4" in capsys.readouterr().err
    # A tensor altered after export: its size and hash no longer match the manifest.
    copy = tmp_path / "altered"
    copy.mkdir()
    for path in export.rglob("*"):
        target = copy / path.relative_to(export)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    tensor = max(
        (p for p in copy.rglob("*") if p.is_file() and p.name != "manifest.json"),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(tensor.read_bytes())
    data[-1] ^= 1
    tensor.write_bytes(bytes(data))
    assert run_cli(copy, overlay) == 2
    assert "sha256" in capsys.readouterr().err


def test_overlay_loading_errors(board, files, tmp_path, capsys) -> None:
    _, export, overlay = files
    lone = tmp_path / "lone.bit"
    lone.write_bytes(b"fake")
    board()
    with pytest.raises(BackendUnavailable, match=r"lone\.hwh is missing"):
        PynqBackend.from_overlay(lone)
    assert run_cli(export, lone, "--samples", "all") == 2
    assert "BackendUnavailable" in capsys.readouterr().err
    board(names=(bitstream.IP_INSTANCE, "other_dma"))
    with pytest.raises(BackendUnavailable, match=f"no DMA IP named '{bitstream.DMA_INSTANCE}'.*other_dma"):
        PynqBackend.from_overlay(overlay)
