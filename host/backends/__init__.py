"""Backends of the host driver, chosen by one option: ``"sim"`` or ``"pynq"``.

All implement :class:`host.backends.base.Backend`; :func:`open_backend` builds one by
name. ``"sim"`` is :mod:`host.backends.native_backend` (the accelerator top under
Verilator and C++ models of the AXI4-Lite master and the AXI DMA, in this process);
``"pynq"`` is :mod:`host.backends.pynq_backend` (an overlay on a PYNQ board). Both are
imported on use: the simulated backend pulls in the RTL generator (Amaranth) and
Verilator, which a board has not, and the board backend pulls in ``pynq``, which a
workstation has not. Importing this package costs numpy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Backend, Buffer, ChannelState, ShadowBuffer

__all__ = ["BACKENDS", "Backend", "Buffer", "ChannelState", "ShadowBuffer", "open_backend"]

#: Backend names accepted by :func:`open_backend` (and ``python -m host.run --backend``).
BACKENDS = ("sim", "pynq")


def open_backend(
    kind: str,
    *,
    config: Any = "sim",
    overlay: str | Path | None = None,
    **options: Any,
) -> Backend:
    """Open the backend ``kind``.

    Parameters
    ----------
    kind:
        ``"sim"``: the accelerator top for ``config`` under Verilator (built on first
        use); ``"pynq"``: the overlay ``overlay`` on a PYNQ board.
    config:
        Accelerator configuration (name or object) the simulator is generated for;
        its ``clock_mhz`` is the simulated clock unless ``options`` names another.
    overlay:
        The ``.bit`` file (``.hwh`` beside it) for ``"pynq"``.
    options:
        Passed to :meth:`NativeSimBackend.for_config
        <host.backends.native_backend.NativeSimBackend.for_config>` or to
        :meth:`PynqBackend.from_overlay <host.backends.pynq_backend.PynqBackend.from_overlay>`.
    """
    if kind == "sim":
        from .native_backend import NativeSimBackend

        return NativeSimBackend.for_config(config, **options)
    if kind == "pynq":
        if overlay is None:
            raise ValueError("the pynq backend needs an overlay: the .bit file (with its .hwh beside it)")
        from .pynq_backend import PynqBackend

        return PynqBackend.from_overlay(overlay, **options)
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
