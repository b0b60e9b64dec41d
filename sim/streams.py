"""cocotb drivers for Amaranth ``lib.stream`` ports: a source with random idle cycles, a sink
with random back-pressure, and a cycle counter they share.

A stream port ``p`` appears in the Verilog as ``p__valid``, ``p__ready`` and
``p__payload``. Both drivers sample the handshake right after the rising edge,
where cocotb returns the values the flip-flops saw at that edge, so a transfer is
recorded exactly when the design performed it. The source obeys the stream rules
(once ``valid`` is high, it and the payload hold until ``ready``); idle cycles
are only inserted between beats.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

import cocotb
from cocotb.handle import SimHandleBase
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["CycleCounter", "StreamSink", "StreamSource", "StreamTimeout"]


class StreamTimeout(AssertionError):
    """A stream did not make the expected progress within its cycle budget (a hang)."""


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a probability in (0, 1], not {value!r}")
    return float(value)


def _port(dut: SimHandleBase, prefix: str, name: str) -> SimHandleBase:
    full = f"{prefix}__{name}"
    try:
        return getattr(dut, full)
    except AttributeError:
        raise AttributeError(f"design {dut._name} has no port {full}") from None


class CycleCounter:
    """Cycle number of the current clock edge, derived from simulation time.

    Deriving it from time (not from a counting coroutine) makes every driver that
    wakes on the same edge see the same number, whatever order cocotb resumes them in.

    Parameters
    ----------
    clock:
        The clock signal the drivers wait on.
    period_ps:
        Clock period in picoseconds.
    """

    def __init__(self, clock: SimHandleBase, *, period_ps: int) -> None:
        if isinstance(period_ps, bool) or not isinstance(period_ps, int) or period_ps < 2:
            raise ValueError(f"period_ps must be an integer >= 2, not {period_ps!r}")
        self.clock = clock
        self.period_ps = period_ps

    @property
    def cycle(self) -> int:
        return int(get_sim_time(unit="ps")) // self.period_ps


class _StreamEnd:
    """What a source and a sink share: the port's three signals, the shared cycle counter,
    the random traffic pattern, and a task that calls :meth:`_edge` on every rising edge.
    Subclasses set their own state, then call :meth:`_start`."""

    def __init__(self, dut: SimHandleBase, prefix: str, *, counter: CycleCounter, rng: random.Random) -> None:
        self.name = prefix
        self.valid = _port(dut, prefix, "valid")
        self.ready = _port(dut, prefix, "ready")
        self.payload = _port(dut, prefix, "payload")
        self.counter = counter
        self.rng = rng

    def _start(self) -> None:
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        edge = RisingEdge(self.counter.clock)
        while True:
            await edge
            self._edge()

    def _edge(self) -> None:
        raise NotImplementedError


class StreamSource(_StreamEnd):
    """Drives ``prefix__valid`` / ``prefix__payload`` from a queue of packed payloads.

    Parameters
    ----------
    dut, prefix:
        Design handle and stream port name (``"inp"``).
    counter:
        Shared cycle counter; accepted beats are stamped with its cycle.
    rng:
        Random source of the idle pattern (seeded from cocotb's seed by the caller).
    valid_prob:
        Probability that an idle source offers its next queued beat in a cycle.
    """

    def __init__(
        self,
        dut: SimHandleBase,
        prefix: str,
        *,
        counter: CycleCounter,
        rng: random.Random,
        valid_prob: float = 1.0,
    ) -> None:
        super().__init__(dut, prefix, counter=counter, rng=rng)
        self.valid_prob = _check_probability("valid_prob", valid_prob)
        self.queue: deque[int] = deque()
        #: Cycle at which each beat was accepted, in order.
        self.accepted: list[int] = []
        self.valid.value = 0
        self._offering = False
        self._start()

    def send(self, words: Iterable[int]) -> None:
        """Queue packed payloads; they are offered in order."""
        self.queue.extend(int(w) for w in words)

    def _edge(self) -> None:
        if self._offering and self.ready.value:
            self.accepted.append(self.counter.cycle)
            self.queue.popleft()
            self._offering = False
        if self.queue and (self._offering or self.rng.random() < self.valid_prob):
            if not self._offering:
                self.payload.value = self.queue[0]
                self._offering = True
            self.valid.value = 1
        else:
            self.valid.value = 0


class StreamSink(_StreamEnd):
    """Drives ``prefix__ready`` and records every beat the design transfers.

    Parameters
    ----------
    dut, prefix:
        Design handle and stream port name (``"out"``).
    counter:
        Shared cycle counter; received beats are stamped with its cycle.
    rng:
        Random source of the back-pressure pattern.
    ready_prob:
        Probability that the sink is ready in a cycle.
    """

    def __init__(
        self,
        dut: SimHandleBase,
        prefix: str,
        *,
        counter: CycleCounter,
        rng: random.Random,
        ready_prob: float = 1.0,
    ) -> None:
        super().__init__(dut, prefix, counter=counter, rng=rng)
        self.ready_prob = _check_probability("ready_prob", ready_prob)
        #: Received payload words and the cycle of each transfer.
        self.words: list[int] = []
        self.cycles: list[int] = []
        self.ready.value = 1 if self.ready_prob == 1.0 else 0
        self._ready = self.ready_prob == 1.0
        self._start()

    def _edge(self) -> None:
        if self._ready and self.valid.value:
            self.words.append(self.payload.value.to_unsigned())
            self.cycles.append(self.counter.cycle)
        self._ready = self.ready_prob == 1.0 or self.rng.random() < self.ready_prob
        self.ready.value = int(self._ready)

    async def wait_for(self, count: int, *, max_cycles: int) -> None:
        """Wait until ``count`` beats have arrived, at most ``max_cycles`` cycles from now."""
        edge = RisingEdge(self.counter.clock)
        deadline = self.counter.cycle + max_cycles
        while len(self.words) < count:
            if self.counter.cycle >= deadline:
                raise StreamTimeout(
                    f"{self.name}: {len(self.words)} of {count} beats after {max_cycles} cycles"
                )
            await edge
