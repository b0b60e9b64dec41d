"""The fabric clock through ``pynq.Clocks`` of PYNQ 3.1 and of PYNQ 4.0.

Both versions set a PL clock with ``Clocks.set_pl_clk(idx, div0=None, div1=None,
clk_mhz=...)`` and read clock 0 with the ``fclk0_mhz`` property (both defined on the
``Clocks`` metaclass); they differ in ``Clocks.get_pl_clk``, which returns nothing in 3.1
and the rate in 4.0. The installed 3.1.2 is checked directly; 4.0.0 cannot share this
environment (it drops the Pynq-Z2), so its signatures, read from its ``pynq/ps.py``, are
recorded here, and :func:`host.backends.pynq_backend.set_fabric_clock` runs on stand-ins
of both shapes.
"""

from __future__ import annotations

import inspect
from typing import Any

import pynq
import pytest

from host import bitstream
from host.backends.pynq_backend import PynqBackend, set_fabric_clock

from host_fakes import pynq_device
from test_pynq_runtime import CONFIG, OverlayStandIn

#: ``_ClocksMeta.set_pl_clk``'s parameters in pynq 3.1.2 and 4.0.0 (pynq/ps.py), and whether
#: ``get_pl_clk`` returns the rate.
SET_PL_CLK = ["cls", "clk_idx", "div0", "div1", "clk_mhz"]
VERSIONS = {"3.1.2": False, "4.0.0": True}


def stand_in(returns_rate: bool) -> Any:
    """A ``pynq.Clocks`` of one version's shape over a PLL that makes 100 MHz / n."""

    class Meta(type):
        rate = 100.0
        calls: list[tuple[int, Any, Any, float]] = []

        @property
        def fclk0_mhz(cls) -> float:
            return cls.rate

        def get_pl_clk(cls, clk_idx: int) -> float | None:
            return cls.rate if returns_rate else None

        def set_pl_clk(cls, clk_idx: int, div0: Any = None, div1: Any = None, clk_mhz: float = 100.0) -> None:
            cls.calls.append((clk_idx, div0, div1, clk_mhz))
            cls.rate = 100.0 / max(1, round(100.0 / clk_mhz))

    return Meta("Clocks", (), {})


def test_installed_pynq_has_the_31_shape() -> None:
    meta = type(pynq.Clocks)
    assert list(inspect.signature(meta.set_pl_clk).parameters) == SET_PL_CLK
    assert isinstance(meta.fclk0_mhz, property) and meta.fclk0_mhz.fset is not None
    assert pynq.__version__ in VERSIONS


@pytest.mark.parametrize("version", list(VERSIONS))
def test_set_fabric_clock_on_each_versions_shape(version: str) -> None:
    clocks = stand_in(VERSIONS[version])
    assert list(inspect.signature(type(clocks).set_pl_clk).parameters) == SET_PL_CLK
    assert set_fabric_clock(clocks, 50) == 50.0
    assert set_fabric_clock(clocks, 30.0) == pytest.approx(100 / 3)  # the nearest the dividers make
    assert type(clocks).calls == [(0, None, None, 50.0), (0, None, None, 30.0)]
    for bad in (0, -5.0, True, "100"):
        with pytest.raises(ValueError, match="clock_mhz"):
            set_fabric_clock(clocks, bad)


def test_from_overlay_sets_the_clock_only_when_asked(monkeypatch, tmp_path) -> None:
    device = pynq_device(CONFIG)
    names = (bitstream.IP_INSTANCE, bitstream.DMA_INSTANCE)
    monkeypatch.setattr(pynq, "Overlay", lambda bitfile, download=True: OverlayStandIn(device, names))
    clocks = stand_in(False)
    monkeypatch.setattr(pynq, "Clocks", clocks)
    overlay = tmp_path / "x.bit"
    for path in (overlay, overlay.with_suffix(".hwh")):
        path.write_bytes(b"fake")
    assert PynqBackend.from_overlay(overlay).clock_mhz is None and type(clocks).calls == []
    assert PynqBackend.from_overlay(overlay, clock_mhz=25).clock_mhz == 25.0
    assert type(clocks).calls == [(0, None, None, 25.0)]
