"""The thin I/O interface the driver runs on: registers, DMA buffers and channels, time.

A :class:`Backend` offers exactly what an AXI4-Lite slave behind an AXI DMA gives a
processor: 32-bit register reads and writes, buffers of 64-bit stream words that
must be flushed before the DMA reads them and invalidated after it wrote them, one
memory-to-stream and one stream-to-memory channel (each transfer of the send
channel ends with TLAST; a receive transfer ends at the first TLAST), a clock and a
way to let time pass. :class:`host.driver.Driver` is written against this interface
only, so the same driver code runs on a board (:mod:`host.backends.pynq_backend`) and
against the simulated RTL (:mod:`host.backends.native_backend`).

On the simulation backend "time" is simulated time: a timeout of ``s`` seconds is
``s * clock`` cycles at the configuration's clock, so a stuck core is detected
deterministically.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

__all__ = ["Buffer", "ShadowBuffer", "ChannelState", "Backend", "WORD_BYTES"]

#: Bytes per stream word (the AXI4-Stream data width is 64 bits).
WORD_BYTES = 8


class Buffer(abc.ABC):
    """A DMA buffer of ``uint64`` stream words.

    Attributes
    ----------
    array:
        The CPU's view (``uint64``, one dimension). Writes become visible to the DMA
        only after :meth:`flush`; DMA writes become visible here only after :meth:`invalidate`.
    """

    array: np.ndarray

    @property
    def words(self) -> int:
        return int(self.array.shape[0])

    @abc.abstractmethod
    def flush(self) -> None:
        """Write the CPU's cached contents back to memory (before a DMA read)."""

    @abc.abstractmethod
    def invalidate(self) -> None:
        """Drop the CPU's cached contents (after a DMA write)."""

    @abc.abstractmethod
    def free(self) -> None:
        """Release the memory; the buffer must not be used afterwards."""


class ShadowBuffer(Buffer):
    """A buffer with an explicit device copy, modelling a non-coherent CPU cache.

    :meth:`flush` copies the CPU array to the device copy and :meth:`invalidate` copies
    the device copy back, so a missing flush sends stale words and a missing
    invalidate reads stale words: the simulation backend and the tests catch the
    bookkeeping errors a board would show as corrupt data.

    Parameters
    ----------
    words:
        Size in 64-bit words.
    """

    def __init__(self, words: int) -> None:
        if isinstance(words, bool) or not isinstance(words, int) or words < 1:
            raise ValueError(f"buffer size must be a positive number of words, not {words!r}")
        self.array = np.zeros(words, dtype=np.uint64)
        self.device = np.zeros(words, dtype=np.uint64)
        self.flushes = 0
        self.invalidates = 0
        self.freed = False

    def flush(self) -> None:
        self._check()
        self.device[:] = self.array
        self.flushes += 1

    def invalidate(self) -> None:
        self._check()
        self.array[:] = self.device
        self.invalidates += 1

    def free(self) -> None:
        self.freed = True

    def _check(self) -> None:
        if self.freed:
            raise RuntimeError("buffer used after free()")


@dataclass(frozen=True)
class ChannelState:
    """State of one DMA channel.

    Attributes
    ----------
    busy:
        A transfer is in progress.
    error:
        The channel reported an error (text from its status register), else ``""``.
    received:
        Words written by the last finished receive transfer (receive channel only).
    """

    busy: bool
    error: str = ""
    received: int = 0


class Backend(abc.ABC):
    """Registers, DMA and time of one accelerator instance (see the module docstring).

    Attributes
    ----------
    name:
        ``"pynq"`` or ``"sim"``.
    poll_s:
        Seconds between two polls of a status register or DMA channel.
    min_timeout_s:
        Smallest time budget of a wait (covers start-up latencies).
    max_transfer_words:
        Longest DMA transfer in 64-bit words (the AXI DMA length register's limit).
    """

    name: str = ""
    poll_s: float = 1e-4
    min_timeout_s: float = 0.5
    max_transfer_words: int = (1 << 26) // WORD_BYTES - 1

    # -------------------------------------------------------------- registers
    @abc.abstractmethod
    def read(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset`` of the accelerator's AXI4-Lite space."""

    @abc.abstractmethod
    def write(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset``."""

    # -------------------------------------------------------------- DMA
    @abc.abstractmethod
    def allocate(self, words: int) -> Buffer:
        """A DMA-able buffer of ``words`` 64-bit words."""

    @abc.abstractmethod
    def start_send(self, buffer: Buffer, words: int) -> None:
        """Start streaming ``buffer``'s first ``words`` (as memory holds them) into ``s_axis``, TLAST last."""

    @abc.abstractmethod
    def start_receive(self, buffer: Buffer, offset: int, words: int) -> None:
        """Start receiving one packet (up to TLAST, at most ``words``) into ``buffer`` at word ``offset``."""

    @abc.abstractmethod
    def send_state(self) -> ChannelState:
        """State of the memory-to-stream channel."""

    @abc.abstractmethod
    def receive_state(self) -> ChannelState:
        """State of the stream-to-memory channel."""

    @abc.abstractmethod
    def reset_dma(self) -> None:
        """Abort both channels and clear their errors."""

    # -------------------------------------------------------------- time
    @abc.abstractmethod
    def now(self) -> float:
        """Monotonic time in seconds (simulated seconds on the simulation backend)."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass (advances the simulation on the simulation backend)."""

    def close(self) -> None:  # noqa: B027 -- optional hook: most backends hold nothing to release
        """Release the backend's resources (simulator process, overlay handles)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
