"""Board backend: a PYNQ overlay with the accelerator and an AXI DMA in simple mode.

:meth:`PynqBackend.from_overlay` loads ``<name>.bit`` with its ``<name>.hwh`` beside it
(``pynq.Overlay``), binds the accelerator IP and the DMA by their block-design names
(:data:`host.bitstream.IP_INSTANCE`, :data:`host.bitstream.DMA_INSTANCE`) and takes
``pynq.allocate`` for buffers. The constructor itself accepts any objects with the
same small surface (``ip.read/write``, the DMA's ``sendchannel`` / ``recvchannel`` /
``mmio`` / ``buffer_max_size``, an ``allocate(shape, dtype)``), which is how the tests
run it on a fake ``pynq.Device`` and, without ``pynq`` installed, on plain fakes.

``pynq`` is imported only by :meth:`PynqBackend.from_overlay`: it is an optional extra
(``pip install spikeformer-codesign[board-z2]`` or ``[board-zynqmp]``) that pins an
older numpy.

The channels' ``wait()`` of pynq spins without a time limit, so this backend never
calls it: it polls the DMA status registers itself (PG021 register map) and the
driver bounds every wait.

PYNQ versions: the Pynq-Z2 (Zynq-7000) needs pynq 3.x (3.1 is the last release with that
board); ZynqMP boards take 3.1 or 4.0. Loading an overlay sets the fabric clocks its
``.hwh`` names on both. To change FCLK0 / pl_clk0 afterwards (``clock_mhz``), this backend
uses the one call both versions share, ``pynq.Clocks.set_pl_clk(0, clk_mhz=...)``, and
reads the clock back with the ``fclk0_mhz`` property: 3.1's ``Clocks.get_pl_clk``
returns nothing (4.0's returns the rate), so it is not used.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import BackendUnavailable, DMAError
from .base import WORD_BYTES, Backend, Buffer, ChannelState

__all__ = ["PynqBackend", "DMA_REGISTERS", "dma_error_text", "set_fabric_clock"]

#: AXI DMA (PG021, simple mode) register byte offsets used here.
DMA_REGISTERS = {
    "MM2S_DMACR": 0x00,
    "MM2S_DMASR": 0x04,
    "MM2S_LENGTH": 0x28,
    "S2MM_DMACR": 0x30,
    "S2MM_DMASR": 0x34,
    "S2MM_LENGTH": 0x58,
}
_DMASR_IDLE = 1 << 1
_DMACR_RESET = 1 << 2
_DMASR_ERRORS = {
    4: "DMAIntErr (length or TLAST mismatch)",
    5: "DMASlvErr (memory access error)",
    6: "DMADecErr (invalid address)",
}


def dma_error_text(status: int) -> str:
    """The error bits of a DMASR value as text (``""`` when there is none)."""
    return ", ".join(text for bit, text in _DMASR_ERRORS.items() if status >> bit & 1)


def set_fabric_clock(clocks: Any, clock_mhz: float) -> float:
    """Set the fabric clock 0 to ``clock_mhz`` through ``clocks`` (``pynq.Clocks``); the rate it got.

    The PS derives the clock from its PLL with two integer dividers, so the rate set is the
    nearest it can make; the caller decides whether that is close enough.
    """
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be a positive number of MHz, not {clock_mhz!r}")
    clocks.set_pl_clk(0, clk_mhz=float(clock_mhz))
    return float(clocks.fclk0_mhz)


class _Registers(Protocol):
    def read(self, offset: int) -> int: ...
    def write(self, offset: int, value: int) -> None: ...


class _PynqBuffer(Buffer):
    """A ``pynq.allocate`` buffer (a ``PynqBuffer``, an ndarray subclass) behind the Buffer interface."""

    def __init__(self, array: Any) -> None:
        self.array = array

    def flush(self) -> None:
        self.array.flush()

    def invalidate(self) -> None:
        self.array.invalidate()

    def free(self) -> None:
        self.array.freebuffer()


class PynqBackend(Backend):
    """Registers over MMIO, DMA over an AXI DMA, wall-clock time.

    Parameters
    ----------
    ip:
        The accelerator's register window (a ``pynq.DefaultIP`` or ``pynq.MMIO``).
    dma:
        The AXI DMA (``pynq.lib.dma.DMA``).
    allocate:
        ``allocate(shape=..., dtype=...)`` returning contiguous buffers with
        ``flush``, ``invalidate``, ``freebuffer`` and ``physical_address``.
    poll_s:
        Seconds between polls.
    min_timeout_s:
        Smallest time budget of a wait.
    """

    name = "pynq"

    def __init__(
        self, *, ip: _Registers, dma: Any, allocate: Any, poll_s: float = 50e-6, min_timeout_s: float = 1.0
    ) -> None:
        for what, value in (("poll_s", poll_s), ("min_timeout_s", min_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"PynqBackend {what} must be a positive number of seconds, not {value!r}")
        self.ip, self.dma, self._allocate = ip, dma, allocate
        self.poll_s, self.min_timeout_s = float(poll_s), float(min_timeout_s)
        self.max_transfer_words = int(dma.buffer_max_size) // WORD_BYTES
        self.clock_mhz: float | None = None

    @classmethod
    def from_overlay(
        cls,
        bitfile: str | Path,
        *,
        ip_name: str | None = None,
        dma_name: str | None = None,
        download: bool = True,
        clock_mhz: float | None = None,
        **kwargs: Any,
    ) -> PynqBackend:
        """Load the overlay ``bitfile`` (its ``.hwh`` beside it) and bind the accelerator and the DMA.

        ``clock_mhz``: set the fabric clock 0 to this rate after loading (default: keep the
        overlay's); the rate it got is the backend's ``clock_mhz``, else ``None``.
        """
        try:
            import pynq
        except ImportError as exc:
            raise BackendUnavailable(
                f"the pynq backend needs the pynq package ({exc}); it comes with PYNQ board images, "
                f"elsewhere `pip install 'spikeformer-codesign[board-z2]'` (or [board-zynqmp])"
            ) from None
        from ..bitstream import DMA_INSTANCE, IP_INSTANCE

        bit = Path(bitfile)
        for path in (bit, bit.with_suffix(".hwh")):
            if not path.is_file():
                raise BackendUnavailable(
                    f"overlay file {path} is missing (a PYNQ overlay is NAME.bit with "
                    f"NAME.hwh beside it; `make bitstream` writes both)"
                )
        overlay = pynq.Overlay(str(bit), download=download)
        names = list(overlay.ip_dict)
        ip_name = ip_name or IP_INSTANCE
        dma_name = dma_name or DMA_INSTANCE
        for role, name in (("accelerator", ip_name), ("DMA", dma_name)):
            if name not in overlay.ip_dict:
                raise BackendUnavailable(
                    f"overlay {bit.name} has no {role} IP named {name!r}; its IPs: {', '.join(names)}"
                )
        backend = cls(
            ip=getattr(overlay, ip_name), dma=getattr(overlay, dma_name), allocate=pynq.allocate, **kwargs
        )
        if clock_mhz is not None:
            backend.clock_mhz = set_fabric_clock(pynq.Clocks, clock_mhz)
        return backend

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int:
        return int(self.ip.read(offset))

    def write(self, offset: int, value: int) -> None:
        self.ip.write(offset, int(value) & 0xFFFF_FFFF)

    # ------------------------------------------------------------------ DMA
    def allocate(self, words: int) -> Buffer:
        if isinstance(words, bool) or not isinstance(words, int) or words < 1:
            raise ValueError(f"buffer size must be a positive number of words, not {words!r}")
        return _PynqBuffer(self._allocate(shape=(words,), dtype=np.uint64))

    def _transfer(self, channel: Any, buffer: Buffer, offset: int, words: int, what: str) -> None:
        try:
            channel.transfer(buffer.array, start=offset * WORD_BYTES, nbytes=words * WORD_BYTES)
        except (RuntimeError, ValueError) as exc:
            raise DMAError(f"{what} transfer of {words} words refused: {exc}", stage=what) from None

    def start_send(self, buffer: Buffer, words: int) -> None:
        self._transfer(self.dma.sendchannel, buffer, 0, words, "send")

    def start_receive(self, buffer: Buffer, offset: int, words: int) -> None:
        self._transfer(self.dma.recvchannel, buffer, offset, words, "receive")

    def _status(self, register: str) -> int:
        return int(self.dma.mmio.read(DMA_REGISTERS[register]))

    def send_state(self) -> ChannelState:
        status = self._status("MM2S_DMASR")
        return ChannelState(busy=not status & _DMASR_IDLE, error=dma_error_text(status))

    def receive_state(self) -> ChannelState:
        status = self._status("S2MM_DMASR")
        busy = not status & _DMASR_IDLE
        # After completion S2MM_LENGTH holds the bytes actually written (the packet ended at TLAST).
        received = 0 if busy else self._status("S2MM_LENGTH") // WORD_BYTES
        return ChannelState(busy=busy, error=dma_error_text(status), received=received)

    def reset_dma(self) -> None:
        # DMACR.Reset on either channel resets the whole DMA; it clears itself when done.
        self.dma.mmio.write(DMA_REGISTERS["MM2S_DMACR"], _DMACR_RESET)
        deadline = time.monotonic() + self.min_timeout_s
        while self._status("MM2S_DMACR") & _DMACR_RESET:
            if time.monotonic() > deadline:
                raise DMAError("the AXI DMA did not leave reset", stage="reset")
            time.sleep(self.poll_s)
        self.dma.sendchannel.start()
        self.dma.recvchannel.start()

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
