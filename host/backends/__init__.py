"""Backends of the host driver, chosen by one option: ``"sim"`` or ``"pynq"``.

All implement :class:`host.backends.base.Backend`; :func:`open_backend` builds one by
name. ``"sim"`` has two engines: ``native`` (:mod:`host.backends.native_backend`, the
top and C++ bus models in this process) and ``cocotb``
(:mod:`host.backends.cocotb_backend`, cocotbext-axi's AXI4-Lite master in a cocotb
simulator process). The modules are imported on use, so a board without cocotb and
a workstation without pynq each import only what they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Backend, Buffer, ChannelState, ShadowBuffer
from .simcommon import ENGINES

__all__ = ["BACKENDS", "ENGINES", "Backend", "Buffer", "ChannelState", "ShadowBuffer", "open_backend"]

#: Backend names accepted by :func:`open_backend` (and ``python -m host.run --backend``).
BACKENDS = ("sim", "pynq")


def open_backend(kind: str, *, config: Any = "sim", overlay: str | Path | None = None, engine: str = "native",
                 **options: Any) -> Backend:
    """Open the backend ``kind``.

    Parameters
    ----------
    kind:
        ``"sim"``: the accelerator top for ``config`` under Verilator (built on first
        use); ``"pynq"``: the overlay ``overlay`` on a PYNQ board.
    config:
        Accelerator configuration (name or object) the simulator is generated for.
    overlay:
        The ``.bit`` file (``.hwh`` beside it) for ``"pynq"``.
    engine:
        Simulation engine of ``"sim"``: ``"native"`` (the top and C++ bus models in this
        process, fast) or ``"cocotb"`` (a Verilator process with cocotb and
        cocotbext-axi's AXI4-Lite master, the independent cross-check).
    options:
        Passed to the simulation engine's ``for_config`` or to
        :meth:`PynqBackend.from_overlay`.
    """
    if kind == "sim":
        if engine == "native":
            from .native_backend import NativeSimBackend

            return NativeSimBackend.for_config(config, **options)
        if engine == "cocotb":
            from .cocotb_backend import CocotbSimBackend

            return CocotbSimBackend.for_config(config, **options)
        raise ValueError(f"unknown simulation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if kind == "pynq":
        if overlay is None:
            raise ValueError("the pynq backend needs an overlay: the .bit file (with its .hwh beside it)")
        from .pynq_backend import PynqBackend

        return PynqBackend.from_overlay(overlay, **options)
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
