"""Shared cocotb test-bench plumbing: parameters from the environment, clock, reset, streams.

A PE testbench runs inside the simulator process, started by :mod:`sim.runner`.
It learns which configuration it is testing from the ``SIM_PE_PARAMS`` environment
variable (the JSON of the ``protocol.params`` object the Verilog was generated from),
rebuilds the Amaranth component from it to read the stream layouts from its
signature, and checks that the design's port widths match those layouts.

Randomness: cocotb seeds Python's :mod:`random` from ``COCOTB_RANDOM_SEED`` and the
test name; :func:`stimulus_rng` derives the numpy generator of the stimuli and the
traffic generators from it, so one seed reproduces a whole regression.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from amaranth.lib import wiring
from cocotb.clock import Clock
from cocotb.handle import SimHandleBase
from cocotb.triggers import RisingEdge

from protocol.params import PEParams, params_from_dict
from sim.payload import PayloadCodec
from sim.streams import CycleCounter, StreamSink, StreamSource

__all__ = [
    "EXPORT_VECTORS_ENV",
    "PARAMS_ENV",
    "VECTORS_ENV",
    "StreamBench",
    "assert_cycles",
    "budget_cycles",
    "load_params",
    "stimulus_rng",
    "vector_budget",
]

#: Environment variable with the JSON of the PE parameters (``params.to_dict()``).
PARAMS_ENV = "SIM_PE_PARAMS"
#: Environment variable with the number of random vectors (beats) per regression.
VECTORS_ENV = "SIM_VECTORS"
#: Environment variable with the ``.npz`` of exported-model vectors (:mod:`sim.vectors`).
EXPORT_VECTORS_ENV = "SIM_EXPORT_VECTORS"

_P = TypeVar("_P", bound=PEParams)


def load_params(expected: type[_P]) -> _P:
    """The parameters of the design under test, from :data:`PARAMS_ENV`."""
    text = os.environ.get(PARAMS_ENV)
    if not text:
        raise RuntimeError(
            f"{PARAMS_ENV} is not set: run the testbench through sim.runner "
            f"(python -m sim or pytest tests/test_sim.py)"
        )
    params = params_from_dict(json.loads(text))
    if not isinstance(params, expected):
        raise TypeError(
            f"{PARAMS_ENV} describes a {type(params).__name__}, this testbench needs a {expected.__name__}"
        )
    return params


def vector_budget(default: int) -> int:
    """Number of random vectors for this run: :data:`VECTORS_ENV` or ``default``."""
    text = os.environ.get(VECTORS_ENV, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{VECTORS_ENV} must be a positive integer, not {text!r}")
    return int(text)


def stimulus_rng() -> np.random.Generator:
    """Numpy generator seeded from cocotb's per-test seeded :mod:`random` state."""
    return np.random.default_rng(random.getrandbits(64))


class StreamBench:
    """Clock, reset and stream drivers around one PE with ``lib.stream`` ports.

    Parameters
    ----------
    dut:
        cocotb handle of the top module (Amaranth ports ``clk``, ``rst``, ``<port>__*``).
    component:
        The Amaranth component the Verilog was generated from; its signature gives
        the payload layouts.
    inputs, outputs:
        Names of the stream ports driven (sources) and received (sinks).
    period_ns:
        Clock period.
    """

    def __init__(
        self,
        dut: SimHandleBase,
        *,
        component: wiring.Component,
        inputs: Sequence[str],
        outputs: Sequence[str],
        period_ns: int = 10,
    ) -> None:
        self.dut = dut
        self.rng = random.Random(random.getrandbits(64))
        self.codecs = {name: PayloadCodec.of(component, name) for name in (*inputs, *outputs)}
        for name, codec in self.codecs.items():
            width = len(getattr(dut, f"{name}__payload"))
            if width != codec.size:
                raise AssertionError(
                    f"port {name}__payload is {width} bits in the Verilog but "
                    f"{codec.size} bits in {type(component).__name__}'s signature"
                )
        self.counter = CycleCounter(dut.clk, period_ps=period_ns * 1000)
        self._clock = Clock(dut.clk, period_ns, unit="ns")
        self._clock.start()
        dut.rst.value = 1
        # Each port draws its traffic pattern from its own generator.
        self.sources = {
            name: StreamSource(dut, name, counter=self.counter, rng=self._port_rng()) for name in inputs
        }
        self.sinks = {
            name: StreamSink(dut, name, counter=self.counter, rng=self._port_rng()) for name in outputs
        }

    def _port_rng(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    async def reset(self, cycles: int = 3) -> None:
        """Hold the synchronous reset for ``cycles`` edges, then release it."""
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def check_sticky(self, flag: str, cause: str) -> None:
        """After the stimulus ``cause`` (which must raise the sticky output ``flag``) has drained:
        ``flag`` is 1 one edge later, and the next :meth:`reset` clears it."""
        await RisingEdge(self.dut.clk)
        assert int(getattr(self.dut, flag).value) == 1, f"{cause} did not raise {flag}"
        await self.reset()
        assert int(getattr(self.dut, flag).value) == 0, f"{flag} not cleared by reset"

    def set_traffic(self, *, valid_prob: float = 1.0, ready_prob: float = 1.0) -> None:
        """Idle probability ``1 - valid_prob`` on every source, stall ``1 - ready_prob`` on every sink."""
        for source in self.sources.values():
            source.valid_prob = valid_prob
        for sink in self.sinks.values():
            sink.ready_prob = ready_prob

    def send(self, port: str, values: Sequence[object]) -> None:
        """Pack ``values`` with ``port``'s layout and queue them on its source."""
        codec = self.codecs[port]
        self.sources[port].send(codec.pack(value) for value in values)

    def received(self, port: str, start: int = 0) -> list[object]:
        """Beats received on ``port`` from index ``start``, unpacked with its layout."""
        codec = self.codecs[port]
        return [codec.unpack(word) for word in self.sinks[port].words[start:]]

    async def expect_quiet(self, cycles: int) -> None:
        """Assert that no output beat appears during the next ``cycles`` cycles (nothing left over)."""
        counts = {name: len(sink.words) for name, sink in self.sinks.items()}
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        extra = {
            name: len(sink.words) - counts[name]
            for name, sink in self.sinks.items()
            if len(sink.words) != counts[name]
        }
        if extra:
            raise AssertionError(f"unexpected extra output beats: {extra}")


def budget_cycles(beats: int, *, valid_prob: float, ready_prob: float, latency: int) -> int:
    """Generous cycle budget for ``beats`` beats under random idle and back-pressure."""
    return int(beats / (valid_prob * ready_prob) * 3) + 4 * latency + 200


def assert_cycles(
    accepted: Sequence[int], produced: Sequence[int], *, latency: int, expected: int, every_cycle: bool
) -> int:
    """Check measured cycle counts against the analytic model; return the measured total.

    Parameters
    ----------
    accepted, produced:
        Cycle stamps of the accepted input beats and of the output beats.
    latency:
        Cycles from the last input beat a result depends on to that result's beat.
    expected:
        Analytic cycles from the first accepted input to the last output, inclusive.
    every_cycle:
        Also require one input beat per cycle (a fully pipelined PE with no stalls).
    """
    if not accepted or not produced:
        raise AssertionError("no beats were transferred")
    if every_cycle:
        gaps = [b - a for a, b in zip(accepted, accepted[1:], strict=False) if b - a != 1]
        if gaps:
            raise AssertionError(f"input beats not accepted every cycle: gaps {gaps[:8]}")
    if produced[-1] - accepted[-1] != latency:
        raise AssertionError(
            f"last output {produced[-1] - accepted[-1]} cycles after the last input, "
            f"params.latency = {latency}"
        )
    measured = produced[-1] - accepted[0] + 1
    if measured != expected:
        raise AssertionError(
            f"measured {measured} cycles from first input to last output, analytic model says {expected}"
        )
    return measured
